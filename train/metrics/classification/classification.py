"""Chunk-level classification metrics of the paper, plus clip-level aggregation as a labelled extra.

Load by path (offline): `evaluate.load("train/metrics/classification")`.

    metric.compute(predictions=logits, references=labels)                      # chunk level (paper)
    metric.compute(predictions=logits, references=labels, clip_ids=clip_ids)   # + clip_majority_*, clip_mean_logit_*

`predictions` are per-class scores (logits or probabilities), one row per chunk.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """Macro-F1, accuracy, balanced accuracy (mean per-class recall), top-2 and top-3 accuracy on
chunks (as in Yamamoto, APSIPA 2023). With `clip_ids`, chunks of the same clip are also aggregated by majority
vote of the chunk predictions and by the mean of their logits, giving `clip_majority_*` and `clip_mean_logit_*`."""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `float`): per-class scores, shape (num_chunks, num_classes).
    references (`list` of `int`): true class index per chunk.
    clip_ids (`list` of `str`, *optional*): source clip of each chunk, for the clip-level extras.
    num_classes (`int`, *optional*): number of classes (default: width of `predictions`).
Returns:
    macro_f1, accuracy, balanced_accuracy, top2_accuracy, top3_accuracy (fractions in [0, 1]), num_examples,
    and with clip_ids: clip_majority_{accuracy,macro_f1}, clip_mean_logit_{accuracy,macro_f1}, num_clips.
"""


def macro_f1(predicted, references, num_classes):
    """Mean F1 over the classes present in references or predictions (sklearn's `average="macro"`)."""
    scores = []
    for c in range(num_classes):
        tp = np.sum((predicted == c) & (references == c))
        fp = np.sum((predicted == c) & (references != c))
        fn = np.sum((predicted != c) & (references == c))
        if tp + fp + fn == 0:
            continue
        scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else 0.0


def balanced_accuracy(predicted, references):
    recalls = [np.mean(predicted[references == c] == c) for c in np.unique(references)]
    return float(np.mean(recalls))


def top_k_accuracy(scores, references, k):
    k = min(k, scores.shape[1])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == references[:, None], axis=1)))


def chunk_metrics(scores, references, num_classes):
    predicted = scores.argmax(axis=1)
    return {
        "macro_f1": macro_f1(predicted, references, num_classes),
        "accuracy": float(np.mean(predicted == references)),
        "balanced_accuracy": balanced_accuracy(predicted, references),
        "top2_accuracy": top_k_accuracy(scores, references, 2),
        "top3_accuracy": top_k_accuracy(scores, references, 3),
    }


def clip_metrics(scores, references, clip_ids, num_classes):
    clips = sorted(set(clip_ids))
    index = {clip: i for i, clip in enumerate(clips)}
    rows = np.array([index[c] for c in clip_ids])
    clip_refs, majority, mean_logit = [], [], []
    for i, clip in enumerate(clips):
        members = rows == i
        labels = np.unique(references[members])
        if len(labels) != 1:
            raise ValueError(f"Clip {clip!r} has chunks with different labels {labels.tolist()}.")
        clip_refs.append(labels[0])
        votes = np.bincount(scores[members].argmax(axis=1), minlength=num_classes)
        majority.append(int(votes.argmax()))  # ties -> lowest class index
        mean_logit.append(int(scores[members].mean(axis=0).argmax()))
    clip_refs, majority, mean_logit = map(np.asarray, (clip_refs, majority, mean_logit))
    return {
        "clip_majority_accuracy": float(np.mean(majority == clip_refs)),
        "clip_majority_macro_f1": macro_f1(majority, clip_refs, num_classes),
        "clip_mean_logit_accuracy": float(np.mean(mean_logit == clip_refs)),
        "clip_mean_logit_macro_f1": macro_f1(mean_logit, clip_refs, num_classes),
        "num_clips": len(clips),
    }


class Classification(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Y. Yamamoto, APSIPA ASC 2023.",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.List(datasets.Value("float32")), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, clip_ids=None, num_classes=None):
        scores = np.asarray(predictions, dtype=np.float64)
        references = np.asarray(references, dtype=np.int64)
        if scores.ndim != 2 or len(scores) != len(references) or len(scores) == 0:
            raise ValueError(
                f"predictions must be (num_chunks, num_classes) scores matching {len(references)} references; "
                f"got shape {scores.shape}."
            )
        num_classes = num_classes or scores.shape[1]
        results = chunk_metrics(scores, references, num_classes)
        results["num_examples"] = len(references)
        if clip_ids is not None:
            if len(clip_ids) != len(references):
                raise ValueError(f"{len(clip_ids)} clip_ids for {len(references)} references.")
            results.update(clip_metrics(scores, references, list(clip_ids), num_classes))
        return results
