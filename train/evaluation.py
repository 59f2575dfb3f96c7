"""Scores of a trained SVU model on a prepared split: the validation scores that pick the best epoch, and the
test metrics `train/run.py` writes to `metrics.json` (`evaluate_test`, also what `svu evaluate` runs).

    from svu.train.evaluation import evaluate_test
    data, meta = dataset_scripts.prepare.load_prepared(prepared_dir)
    # == metrics.json["test"] of the run that trained `model` (its repo/), in one process or many
    metrics = evaluate_test(model, data["test"], meta, batch_size=run_metrics["eval_batch_size"])

Test scoring per task:

* classification: every test chunk once (in row order, `gather_for_metrics` over processes), chunk-level
  macro-F1 / accuracy / balanced accuracy / top-2 / top-3, plus clip-level extras (`train/metrics/classification`).
* transcription, **whole songs** (as MIR-ST500's `evaluate.py`): each test song is rebuilt from its chunks
  (prepared chunks are contiguous from sample 0, the last one zero-padded, so concatenating a song's chunks in
  order and cutting at the song's length, `svu_meta.json` `songs[id].seconds`, gives the song as prepared),
  transcribed through the long-audio path (`modeling_svu.long_audio`: 5 s windows overlapping by 1 s, stitched,
  decoded once; the pipeline's stitching), and scored against the song's complete annotation (`svu_meta.json`
  `songs[id].notes`, tails included) with `train/metrics/transcription`: per song, macro mean over songs. The
  frame-level scores (`frame_*`) come from the test chunks.

* pitch, **every frame of every song once**: each test chunk is decoded at its full length and scored against its
  own F0 annotation (points a builder keeps past a chunk edge are left to the neighbouring chunk), the frames of a
  song's chunks pooled, per song, mean over songs (`train/metrics/pitch`: mir_eval.melody, 50 cents). Frame-level
  F0 needs no whole-song decoding (no note crosses a chunk edge), and this holds for every corpus layout: a
  MIR-1K "song" is several clip files whose chunks all start at 0, and real-corpus chunks vary in length.
  Validation is scored the same way.

Validation of transcription runs is a cheaper **proxy** (`chunk_note_metrics`): each 5 s chunk is decoded alone
and scored against its chunk-clipped notes, so notes crossing a chunk edge count as two (biased low, ~0.95
COnPOff for a perfect model on MIR-ST500). Its scores are logged as `validation_proxy/*` and `metrics.json`
says so under `protocol.validation_proxy`.
"""

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import evaluate
import numpy as np
import torch
from accelerate.utils import gather_object
from tqdm.auto import tqdm

from svu.modeling_svu.long_audio import transcribe_array
from svu.modeling_svu.note_labels import IGNORE_INDEX, align_frames, decode_logits, decoding_options, logit_slices
from svu.modeling_svu.pitch import decode_pitch, frame_times

from svu.modeling_svu.tasks import get_task
from svu.train.data import AudioCollator, columns_for, make_dataloader
from svu.train.peft_variants import svu_model

METRICS_DIR = Path(__file__).parent / "metrics"
VALIDATION_PROXY = (
    "per-chunk proxy: each 5 s chunk decoded alone and scored against its chunk-clipped notes "
    "(notes crossing a chunk edge count twice; biased low); the test metrics are whole-song"
)


def quiet() -> bool:
    """TQDM_DISABLE (set by `svu ... --quiet`) also silences bars that pass `disable=` explicitly."""
    return bool(os.environ.get("TQDM_DISABLE"))


def load_metric(name: str):
    return evaluate.load(str(METRICS_DIR / name / f"{name}.py"))


@contextlib.contextmanager
def eval_mode(module):
    """`module` in eval mode inside (no dropout, no SpecAugment: scores are deterministic), its own mode after."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


@torch.no_grad()
def predict(forward, dataloader, accelerator=None, desc="predict"):
    """(logits, labels, row_index) of every example once (gathered over processes when `accelerator` is given),
    in numpy. `forward(batch)` returns an output with `.logits`; batches are moved to `accelerator`'s device by
    a prepared dataloader, else to `device` of the model behind `forward`."""
    logits, labels, rows = [], [], []
    show = (accelerator is None or accelerator.is_local_main_process) and not quiet()
    for batch in tqdm(dataloader, desc=desc, leave=False, disable=not show):
        row_index = batch.pop("row_index")
        out = forward(batch)
        batch_logits, batch_labels = out.logits, batch["labels"]
        if batch_logits.dim() == 3 and batch_labels.dim() == 3:  # transcription: one frame of rounding is cut; more raises (another label scheme)
            batch_logits, batch_labels = (x.contiguous() for x in align_frames(batch_logits, batch_labels))
        values = (batch_logits.float(), batch_labels, row_index.to(batch_labels.device))
        if accelerator is not None:
            values = accelerator.gather_for_metrics(values)
        for store, value in zip((logits, labels, rows), values):
            store.append(value.cpu().numpy())
    if logits and logits[0].ndim == 3:  # frame-wise chunks may differ in frames: pad before concatenating
        frames = max(x.shape[1] for x in logits)
        logits = [np.pad(x, ((0, 0), (0, frames - x.shape[1]), (0, 0))) for x in logits]
    if labels and labels[0].ndim >= 2:  # frame targets, or token ids of different lengths (lyrics)
        width = max(y.shape[1] for y in labels)
        labels = [np.pad(y, [(0, 0), (0, width - y.shape[1])] + [(0, 0)] * (y.ndim - 2), constant_values=IGNORE_INDEX)
                  for y in labels]  # fmt: skip
    return np.concatenate(logits), np.concatenate(labels), np.concatenate(rows)


def classification_metrics(logits, labels, rows, dataset, svu_config=None) -> dict:
    """Chunk-level classification scores, plus clip-level extras when the split has clip ids."""
    clip_ids = None
    if "clip_id" in dataset.column_names:
        clip_column = list(dataset.select_columns(["clip_id"])["clip_id"])
        clip_ids = [clip_column[i] for i in rows]
    return load_metric("classification").compute(predictions=logits, references=labels, clip_ids=clip_ids)


def frame_metrics(logits, labels, num_octaves) -> dict:
    """Frame-level transcription scores (no note decoding): onset F1 at p>=0.5, voicing accuracy, and the
    fraction of labelled voiced frames whose octave and pitch class are both right."""
    valid = labels[..., 0] != IGNORE_INDEX
    logits, labels = logits[valid], labels[valid]
    s = logit_slices(num_octaves)
    onset_pred, onset_true = logits[:, s["onset"]][:, 0] > 0, labels[:, 0] > 0.5
    tp = np.sum(onset_pred & onset_true)
    voiced_pred, voiced_true = logits[:, s["silence"]][:, 0] <= 0, labels[:, 1] < 0.5
    note_right = (logits[:, s["octave"]].argmax(1) == labels[:, 2]) & (logits[:, s["pitch_class"]].argmax(1) == labels[:, 3])
    return {
        "frame_onset_f1": float(2 * tp / max(1, onset_pred.sum() + onset_true.sum())),
        "frame_voicing_accuracy": float(np.mean(voiced_pred == voiced_true)),
        "frame_note_accuracy": float(np.mean(note_right[voiced_true])) if voiced_true.any() else 0.0,
    }


def note_scores(estimates: dict, references: dict, metric: str) -> dict:
    """COnPOff / COnP / COn precision, recall, F1 per song, macro mean over songs, from `{song: notes}`, by the
    task's `metric` (train/metrics/<metric>/)."""
    song_ids = sorted(references, key=_song_order)
    scores = load_metric(metric).compute(
        predictions=[estimates.get(s, []) for s in song_ids], references=[references[s] for s in song_ids],
        song_ids=song_ids,
    )
    results = {k: v for k, v in scores.items() if k.endswith(("_f1", "_precision", "_recall"))}
    results.update(num_songs=scores["num_songs"], num_reference_notes=scores["num_reference_notes"],
                   num_estimated_notes=scores["num_estimated_notes"])
    results["per_song"] = [
        {k: v for k, v in row.items() if k == "song_id" or k.endswith(("_f1", "_precision", "_recall"))}
        for row in scores["per_song"]
    ]
    return results


def chunk_note_metrics(logits, labels, rows, dataset, svu_config) -> dict:
    """The validation proxy (module docstring): each chunk decoded alone, shifted by its start, scored against
    the chunk-clipped notes, per song and averaged over songs."""
    songs = dataset.select_columns(["song_id", "chunk_start", "notes"])
    estimates, references = {}, {}
    for chunk_logits, chunk_labels, row in zip(logits, labels, rows.tolist()):
        song, start, notes = songs[row]["song_id"], float(songs[row]["chunk_start"]), songs[row]["notes"]
        frames = int(np.sum(chunk_labels[:, 0] != IGNORE_INDEX))
        decoded = decode_logits(chunk_logits[:frames], **decoding_options(svu_config))
        estimates.setdefault(song, []).extend([on + start, off + start, pitch] for on, off, pitch in decoded)
        references.setdefault(song, []).extend([n["onset"] + start, n["offset"] + start, n["pitch"]] for n in notes)
    scores = note_scores(estimates, references, get_task(svu_config.task).metric)
    return {k: v for k, v in scores.items() if k.endswith("_f1") or k == "num_songs"}


def evaluate_split(task, forward, dataloader, dataset, svu_config, accelerator=None, desc="validation", keep=None) -> dict:
    """Chunk-level metrics of one split (validation; the chunk part of the test metrics); `num_examples` /
    `num_unique_examples` prove nothing was counted twice. A `keep` dict receives the scored `logits`, `labels`
    and `rows` (e.g. for a confusion matrix of exactly these predictions)."""
    logits, labels, rows = predict(forward, dataloader, accelerator, desc)
    if keep is not None:
        keep.update(logits=logits, labels=labels, rows=rows)
    results = scoring_of(task).chunks(logits, labels, rows, dataset, svu_config)
    results["num_unique_examples"] = len(set(rows.tolist()))
    return results


def transcription_chunk_metrics(logits, labels, rows, dataset, svu_config) -> dict:
    """The validation proxy's note scores and the frame scores of transcription chunks."""
    return {
        **chunk_note_metrics(logits, labels, rows, dataset, svu_config),
        **frame_metrics(logits, labels, svu_config.num_octaves),
        "num_examples": len(rows),
    }


# ---------------------------------------------------------------- whole songs


def _song_order(song_id: str):
    return (not song_id.isdigit(), int(song_id) if song_id.isdigit() else 0, song_id)


def song_rows(dataset) -> dict:
    """`{song_id: [row, ...]}` with each song's chunks in time order."""
    columns = dataset.select_columns(["song_id", "chunk_start"])
    songs = {}
    for row, (song, start) in enumerate(zip(columns["song_id"], columns["chunk_start"])):
        songs.setdefault(song, []).append((float(start), row))
    return {song: [row for _, row in sorted(chunks)] for song, chunks in sorted(songs.items(), key=lambda s: _song_order(s[0]))}


def whole_song(dataset, rows, seconds: float, sampling_rate: int) -> np.ndarray:
    """One song's audio at `sampling_rate`: its chunks concatenated in order, cut at the song's length."""
    chunks = dataset.select(rows).select_columns(["audio"])
    audio_rate = None
    parts = []
    for cell in chunks["audio"]:
        audio_rate = cell["sampling_rate"]
        parts.append(np.asarray(cell["array"], dtype=np.float32))
    wave = np.concatenate(parts)[: int(round(seconds * audio_rate))]
    if audio_rate != sampling_rate:
        from svu.dataset_scripts.audio import resample

        wave = resample(wave, audio_rate, sampling_rate)
    return wave


def song_annotations(dataset, meta: dict, where: str = "the prepared dataset") -> dict:
    """`{song_id: {"seconds", "notes"}}` of the songs in `dataset`, from `svu_meta.json`; ValueError (one line)
    when the dataset was prepared before whole-song scoring existed or misses a song."""
    songs = meta.get("songs")
    if not songs:
        raise ValueError(
            f"{where} has no per-song annotations (svu_meta.json 'songs'); it was prepared by an older SVU: "
            "prepare it again (`svu data prepare ... --force`)."
        )
    missing = sorted(set(dataset.unique("song_id")) - set(songs), key=_song_order)
    if missing:
        raise ValueError(f"{where}: songs {missing[:5]} have chunks but no entry in svu_meta.json 'songs'; prepare it again.")
    return songs


def whole_song_notes(model, dataset, meta: dict, accelerator=None, progress: bool = True) -> tuple:
    """({song: estimated notes}, {song: complete annotation}) of every song of a prepared transcription split.
    With an `accelerator`, songs are shared between processes and the notes gathered (each song once)."""
    songs = song_annotations(dataset, meta)
    rows = song_rows(dataset)
    names = list(rows)
    if accelerator is not None:
        names = names[accelerator.process_index :: accelerator.num_processes]
    model = svu_model(model)
    show = progress and (accelerator is None or accelerator.is_local_main_process) and not quiet()
    estimates = {}
    for song in tqdm(names, desc="test songs", leave=False, disable=not show):
        wave = whole_song(dataset, rows[song], songs[song]["seconds"], model.config.sampling_rate)
        estimates[song] = [list(note) for note in transcribe_array(model, wave, progress=False)]
    if accelerator is not None:
        estimates = dict(item for part in gather_object([estimates]) for item in part.items())
    references = {song: songs[song]["notes"] for song in rows}
    return estimates, references


# ---------------------------------------------------------------- the test metrics of a run


def chunk_loader(task, model, dataset, batch_size, accelerator=None):
    collate = AudioCollator(svu_model(model).feature_extractor(), task, svu_model(model).config)  # resamples
    columns = columns_for(task)
    loader = make_dataloader(dataset, columns, collate, batch_size)
    return accelerator.prepare_data_loader(loader) if accelerator is not None else loader


def evaluate_test(model, dataset, meta: dict, *, batch_size: int = 16, accelerator=None, keep=None) -> dict:
    """The test metrics of `model` (an SVU task model, possibly PEFT-wrapped) on a prepared test split, exactly
    as `train/run.py` writes them to `metrics.json["test"]` (module docstring). `batch_size` only groups chunks
    (equal-length chunks: no padding); `accelerator` shares the work between processes; `keep` as in
    `evaluate_split` (the chunk logits)."""
    task = svu_model(model).config.task
    device = accelerator.device if accelerator is not None else next(model.parameters()).device

    def forward(batch):
        if accelerator is None:
            batch = {k: v.to(device) for k, v in batch.items()}
        return model(**batch)

    loader = chunk_loader(task, model, dataset, batch_size, accelerator)
    with eval_mode(model):
        chunk_scores = evaluate_split(task, forward, loader, dataset, svu_model(model).config, accelerator, "test", keep)
        whole_recordings = scoring_of(task).whole_recordings
        if whole_recordings is None:
            return chunk_scores
        return whole_recordings(model, dataset, meta, accelerator, chunk_scores)


def whole_song_metrics(model, dataset, meta: dict, accelerator, chunk_scores: dict) -> dict:
    """Transcription test metrics: the note scores of whole songs, the frame scores of the test chunks."""
    estimates, references = whole_song_notes(model, dataset, meta, accelerator)
    frame_keys = ("frame_onset_f1", "frame_voicing_accuracy", "frame_note_accuracy", "num_examples", "num_unique_examples")
    metric = get_task(svu_model(model).config.task).metric
    return {**note_scores(estimates, references, metric), **{k: chunk_scores[k] for k in frame_keys}}


# ---------------------------------------------------------------- pitch


def chunk_f0_reference(f0_times, f0_hz, num_frames: int, svu_config) -> list:
    """`[[time_s, f0_hz], ...]` of a chunk's annotation points inside its own span (from 0 to half a frame past
    its last frame's centre): points a builder added past an edge (a margin) belong to the neighbouring chunk."""
    end = frame_times(num_frames, svu_config)[-1] + svu_config.frame_seconds / 2 if num_frames else 0.0
    return [[float(t), float(f)] for t, f in zip(f0_times, f0_hz) if 0.0 <= t < end]


def pitch_chunk_metrics(logits, labels, rows, dataset, svu_config) -> dict:
    """Every chunk decoded once at its full length (`pitch.decode_pitch`) and scored against its own annotation;
    the frames of a song's chunks pooled per song, mean over songs (`train/metrics/pitch`)."""
    columns = dataset.select_columns(["song_id", "f0_times", "f0_hz"])
    estimates, references, song_ids = [], [], []
    for chunk_logits, chunk_labels, row in zip(logits, labels, rows.tolist()):
        frames = int(np.sum(chunk_labels[:, -1] != IGNORE_INDEX))
        decoded = decode_pitch(chunk_logits[:frames], svu_config)
        times = frame_times(frames, svu_config)
        estimates.append(np.stack([times, decoded["pitch_hz"], decoded["voiced"]], 1).tolist())
        references.append(chunk_f0_reference(columns[row]["f0_times"], columns[row]["f0_hz"], frames, svu_config))
        song_ids.append(columns[row]["song_id"])
    metric = load_metric(get_task(svu_config.task).metric)
    scores = metric.compute(predictions=estimates, references=references, song_ids=song_ids)
    return {**scores, "num_examples": len(rows)}


# ---------------------------------------------------------------- lyrics


def lyrics_chunk_metrics(logits, labels, rows, dataset, svu_config) -> dict:
    """Each chunk decoded once (greedy CTC; padded frames are zero logits, i.e. blank) against its
    `text`: `chunk_wer` / `chunk_cer` over the chunks, and `wer` / `cer` of whole songs, each song's chunk transcripts
    joined in time order (`train/metrics/lyrics`, Jam-ALT normalisation)."""
    from svu.modeling_svu.ctc import greedy_decode

    names = [c for c in ("text", "song_id", "chunk_start") if c in dataset.column_names]
    columns = dataset.select_columns(names)
    chunks = []
    for chunk_logits, row in zip(logits, rows.tolist()):
        entry = columns[row]
        chunks.append((entry.get("song_id", str(row)), float(entry.get("chunk_start", 0.0)), row,
                       greedy_decode(chunk_logits, svu_config.ctc_vocab)["text"], entry["text"]))  # fmt: skip
    metric = load_metric(get_task(svu_config.task).metric)
    by_chunk = metric.compute(predictions=[c[3] for c in chunks], references=[c[4] for c in chunks])
    ordered = sorted(chunks, key=lambda c: (_song_order(c[0]), c[1], c[2]))
    songs = metric.compute(predictions=[c[3] for c in ordered], references=[c[4] for c in ordered],
                           song_ids=[c[0] for c in ordered])  # fmt: skip
    return {**{k: songs[k] for k in ("wer", "cer", "neg_wer", "neg_cer", "num_songs", "num_reference_words", "per_song")},
            "chunk_wer": by_chunk["wer"], "chunk_cer": by_chunk["cer"], "num_examples": len(rows)}  # fmt: skip


# ---------------------------------------------------------------- scoring of a task (its `scoring` hook)


@dataclass(frozen=True)
class Scoring:
    """How the outputs of a task are scored (`modeling_svu.tasks.Task.scoring` names one of these)."""

    chunks: Callable  # (logits, labels, rows, dataset, svu_config) -> scores of a split's chunks (validation, test)
    test_scoring: str  # how the test metrics are obtained, in words (metrics.json `protocol.test_scoring`)
    # (model, dataset, meta, accelerator, chunk_scores) -> the test metrics, when whole recordings are scored
    whole_recordings: Optional[Callable] = None
    validation_proxy: Optional[str] = None  # how validation scores differ from the test scoring, if they do


CLASSIFICATION_SCORING = Scoring(
    chunks=classification_metrics,
    test_scoring="every test chunk once; chunk-level scores (paper), clip-level extras",
)
TRANSCRIPTION_SCORING = Scoring(
    chunks=transcription_chunk_metrics,
    test_scoring="whole songs: each test song rebuilt from its chunks, transcribed with the long-audio path "
    "(5 s windows, 1 s overlap, stitched), scored against its complete annotation; per song, mean over songs",
    whole_recordings=whole_song_metrics,
    validation_proxy=VALIDATION_PROXY,
)
PITCH_SCORING = Scoring(
    chunks=pitch_chunk_metrics,
    test_scoring="every test chunk once, decoded at its full length, scored against its own F0 annotation with "
    "mir_eval.melody (50 cents); each song's frames pooled, mean over songs",
)

LYRICS_SCORING = Scoring(
    chunks=lyrics_chunk_metrics,
    test_scoring="every test chunk once, greedy CTC; WER / CER with jiwer after the lyrics metric's normalisation (case, "
    "punctuation, apostrophes, numbers), of whole songs (each song's chunk transcripts joined in order) and of chunks "
    "(chunk_wer / chunk_cer)",
)


def scoring_of(task: str) -> Scoring:
    return get_task(task).hook("scoring")
