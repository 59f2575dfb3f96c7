"""The SVU tasks: each declared once, in one table that the model, training, data, card and CLI code all read.

    from svu.modeling_svu.tasks import TASKS, get_task
    task = get_task("technique")        # one ValueError line listing the known tasks if the name is unknown
    task.model_class, task.target_column, task.selection_metrics[0], task.pipeline_tag

An entry holds facts (names, columns, flags, text), not code from other packages: this file is Hub remote code
and imports only the standard library. Code elsewhere is found from the entry's values: the model class by
`model_class` (`modeling_svu.TASK_MODELS`), the collate of a target column by its name
(`train.data.TARGET_COLLATES`), the scoring by `metric` (`train/metrics/<metric>/` and `train.evaluation.SCORING`).
No code outside this table branches on a task's name.

Adding a task: an entry here, its model class (head), its corpus builders, its metric, its configs; a new kind
of target column or metric also adds its collate / evaluator next to the others.
"""

from dataclasses import dataclass
from typing import Callable, Optional

CLASSIFICATION_METRICS = ("macro_f1", "accuracy", "balanced_accuracy", "top2_accuracy", "top3_accuracy")


def as_is(value: str) -> str:
    return value


def recording_of_clip(clip_id: str) -> str:
    """The recording (album) of a singer-ID chunk's clip: Artist20 clip ids are `artist/album/track`, so the album
    is all but the track; a synthetic `singer/recordingN` clip is its own recording."""
    return clip_id.rsplit("/", 1)[0] if clip_id.count("/") >= 2 else clip_id


@dataclass(frozen=True)
class Task:
    # ---- model ----
    name: str  # the value of `SVUConfig.task`, `TrainConfig.task` and `svu_meta.json` "task"
    model_class: str  # its class in modeling_svu.py
    head_shape: str  # what sizes the head, formatted with `config=` (load errors quote it)
    classes: bool  # named classes: id2label / num_labels / class weights and a ClassLabel column apply
    pooled: bool  # one prediction per chunk from a time-pooled head (a stage-1 cache of pooled states is exact)
    auto_classes: tuple  # auto classes mapped to the model class in a saved repo's auto_map, besides AutoModel
    pipeline: str  # the transformers pipeline running a saved model (a custom one is saved with the model)
    native_unsupported: Optional[str]  # why transformers has no class of its own computing the model; None: it has
    # ---- data ----
    target_column: str  # the dataset column the loss reads (collated by `train.data.TARGET_COLLATES[column]`)
    leakage: str  # what must not appear in two splits (in words)
    leakage_column: str  # the column it is read from ...
    leakage_group: Callable[[str], str]  # ... by this function of the column value
    # ---- training ----
    class_weighted: bool  # the loss weighs class c by w_c = 1/n_c^0.2 of the training split (`svu_meta.json`)
    metric: str  # the local `evaluate` module train/metrics/<metric>/ scoring validation and test
    selection_metrics: tuple  # validation metrics that may pick the best epoch; the first is the default
    # ---- model and dataset cards, command line ----
    title: str
    pipeline_tag: str
    dataset_category: str  # Hub `task_categories` of a prepared dataset of the task
    card_tags: tuple
    card_metrics: tuple  # test metrics reported in the card's model-index and table, in this order
    paper_corpus: Optional[str]  # the paper's corpus of the task (`model_cards.paper_results`); None: not in the paper
    loss: str  # the loss, in words
    outputs: str  # what the model outputs, in words (a card shows the class names instead when there are some)
    usage: str  # a call of the pipeline (the variable before the parenthesis) on a file, for cards
    long_audio: str  # how longer recordings are handled, in words
    cli_verb: Optional[str] = None  # `svu <verb>` running such a model on audio files (several tasks may share one)
    # `SVUConfig` fields and pipeline call options that apply to this task's models only (`check_task_options`)
    options: tuple = ()

    @property
    def default_selection_metric(self) -> str:
        return self.selection_metrics[0]

    def describe_head(self, config) -> str:
        return f"task={self.name}, " + self.head_shape.format(config=config)


_CLASSIFIER = dict(
    head_shape="num_labels={config.num_labels}",
    classes=True,
    pooled=True,
    auto_classes=("AutoModelForAudioClassification",),
    pipeline="audio-classification",
    native_unsupported=None,  # the family's *ForSequenceClassification with use_weighted_layer_sum
    target_column="label",
    metric="classification",
    pipeline_tag="audio-classification",
    dataset_category="audio-classification",
    outputs="one class per chunk",
    usage='classifier("take.wav", top_k=3)',
    long_audio="clip-level aggregation is reported as an extra",
    cli_verb="classify",
    options=("class_weights", "top_k", "function_to_apply"),
)

TASKS = {
    task.name: task
    for task in (
        Task(
            name="singer_id",
            model_class="SVUForSingerID",
            leakage="recording/album",  # every singer is in every split, a recording in one only
            leakage_column="clip_id",
            leakage_group=recording_of_clip,
            class_weighted=False,
            selection_metrics=CLASSIFICATION_METRICS,
            title="Singer identification",
            card_tags=("singer-id",),
            card_metrics=("macro_f1", "top2_accuracy", "top3_accuracy", "accuracy", "balanced_accuracy"),
            paper_corpus="Artist20",
            loss="Cross entropy.",
            **_CLASSIFIER,
        ),
        Task(
            name="technique",
            model_class="SVUForTechniqueClassification",
            leakage="singer",
            leakage_column="singer",
            leakage_group=as_is,
            class_weighted=True,
            selection_metrics=CLASSIFICATION_METRICS,
            title="Singing technique classification",
            card_tags=("technique",),
            card_metrics=CLASSIFICATION_METRICS,
            paper_corpus="VocalSet",
            loss="Weighted cross entropy, w_c = 1/n_c^0.2.",
            **_CLASSIFIER,
        ),
        Task(
            name="transcription",
            model_class="SVUForNoteTranscription",
            head_shape="num_octaves={config.num_octaves} -> {config.num_transcription_logits} logits",
            classes=False,
            pooled=False,
            # frame logits; its `singing-transcription` pipeline loads the model through this auto class
            auto_classes=("AutoModelForAudioFrameClassification",),
            pipeline="singing-transcription",
            native_unsupported="transcription has no transformers class (frame-wise onset/silence/octave/pitch-class head)",
            target_column="notes_unclipped",
            leakage="song",
            leakage_column="song_id",
            leakage_group=as_is,
            class_weighted=False,
            metric="transcription",
            selection_metrics=(
                "COnPOff_f1", "COnP_f1", "COn_f1", "frame_onset_f1", "frame_voicing_accuracy", "frame_note_accuracy",
            ),
            title="Singing note transcription",
            pipeline_tag="other",
            dataset_category="audio-classification",
            card_tags=("transcription",),
            card_metrics=(
                "COnPOff_f1", "COnP_f1", "COn_f1", "frame_note_accuracy", "frame_onset_f1", "frame_voicing_accuracy",
            ),
            paper_corpus="MIR-ST500",
            loss="Transcription loss: BCE(onset, pos_weight 15) + BCE(silence) + CE(octave) + CE(pitch class).",
            outputs="frame-wise onset / silence / octave / pitch class",
            usage='transcriber("song.wav", return_midi=True, onset_threshold=0.4)    # {"notes": [...], "midi": b"MThd..."}',
            long_audio="the pipeline transcribes any length in overlapping windows",
            cli_verb="transcribe",
            options=(
                "lowest_midi", "num_octaves", "onset_pos_weight", "onset_threshold", "onset_window", "silence_threshold",
                "return_midi", "return_posteriors", "pitch_model",
            ),
        ),
        Task(
            name="pitch",
            model_class="SVUForPitchEstimation",
            head_shape="num_pitch_bins={config.num_pitch_bins} + voicing",
            classes=False,
            pooled=False,
            auto_classes=("AutoModelForAudioFrameClassification",),  # frame logits, as transcription
            pipeline="singing-pitch",
            native_unsupported="pitch estimation has no transformers class (frame-wise pitch-bin + voicing head)",
            target_column="f0_hz",  # read with its times, `f0_times` (collated onto the model's frames)
            leakage="song",
            leakage_column="song_id",
            leakage_group=as_is,
            class_weighted=False,
            metric="pitch",
            selection_metrics=(
                "raw_pitch_accuracy", "overall_accuracy", "raw_chroma_accuracy", "voicing_recall",
            ),
            title="Singing pitch estimation",
            pipeline_tag="other",
            dataset_category="audio-classification",
            card_tags=("pitch", "f0-estimation"),
            card_metrics=(
                "raw_pitch_accuracy", "raw_chroma_accuracy", "overall_accuracy", "voicing_recall",
                "voicing_false_alarm",
            ),
            paper_corpus=None,  # a task beyond the paper (its future work): no paper numbers
            loss="BCE on Gaussian-blurred pitch bins (sigma 25 cents, voiced frames) + BCE(voicing).",
            outputs="frame-wise F0 in Hz and voicing confidence",
            usage='pitch = estimator("take.wav")    # {"times": [...], "f0_hz": [...], "voicing": [...]}',
            long_audio="the pipeline runs any length in overlapping windows",
            cli_verb="pitch",
            options=(
                "pitch_fmin_hz", "pitch_bins_per_semitone", "num_pitch_bins", "pitch_target_sigma_cents",
                "pitch_head_hidden_size", "voicing_threshold",
            ),
        ),
    )
}
TASK_NAMES = tuple(TASKS)
DEFAULT_TASK = "technique"  # of a bare `SVUConfig()`, `SVUModel.from_backbone(...)` and `TrainConfig()` (the demo's task)


def get_task(name) -> Task:
    """The task called `name`; ValueError (one line, listing the known tasks) for any other value."""
    try:
        return TASKS[name]
    except (KeyError, TypeError):
        raise ValueError(f"Unknown task {name!r}; expected one of {TASK_NAMES}.") from None


def check_task_options(name: str, options) -> None:
    """ValueError (one line) for the first of `options` (names) that applies to other tasks' models only."""
    for option in options:
        owners = [task.name for task in TASKS.values() if option in task.options]
        if owners and name not in owners:
            raise ValueError(f"{option} is a {' / '.join(owners)} option; a {name} model does not use it.")


def tasks_of_verb(verb: str) -> tuple:
    """The tasks whose models `svu <verb>` runs."""
    return tuple(task for task in TASKS.values() if task.cli_verb == verb)
