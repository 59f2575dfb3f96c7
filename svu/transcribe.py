"""`svu transcribe in.wav [more ...] --model <repo id or folder> -o out_dir [--format mid|csv|json ...] [options]`.

Inputs are files, folders (recursive, `--glob`) and `--file-list`; one or many processes, `--skip-existing`,
`manifest.jsonl`: `svu/catalogue.py`. Writes, per input, files named after it in out_dir (a file found in a
folder keeps its sub-folder), the same notes in every one:
    <stem>.mid                 (--format mid, the default) a type-0 Standard MIDI File (120 bpm, 1 tick = 1 ms)
    <stem>.csv                 (--format csv) ``onset,offset,pitch`` rows (seconds, seconds, MIDI)
    <stem>.json                (--format json) MIR-ST500 style ``{"<stem>": [[onset, offset, pitch], ...]}``
    <stem>.piano_roll.png      (--piano-roll) the notes over the log-spectrogram, time and note-name axes
    <stem>.sonified.wav        (--sonify) the notes rendered as tones, as long as the input, at the model's rate
    <stem>.posteriors.npz      (--save-posteriors) per-frame onset_prob, silence_prob, pitch_index (-1 = none),
                               frame_seconds, lowest_midi, the thresholds used and the notes decoded from them
`--format` can be repeated (`--format mid --format csv --format json`). `--onset-threshold` and
`--silence-threshold` override the model's decoding thresholds (`config.onset_threshold`, 0.4 in the paper;
`config.silence_threshold`, 0.5): a lower onset threshold finds more notes, a lower silence threshold ends them
sooner. Audio is read with `modeling_svu.audio_io.open_audio`, the decode path data preparation and the
pipelines use (FFmpeg via torchcodec block by block, channels averaged, soxr resampling to the model's rate as one
stream), so memory does not grow with the file's length, except with `--piano-roll`, which keeps the audio of one
file for its spectrogram. A truncated file is transcribed, with a one-line warning. A file that cannot be
transcribed is reported on one line; the other files are still processed and the exit status is 1.
`--engine torch|onnx`, `--int8`, `--bf16` choose what runs the windows (`modeling_svu.engines`; default: the
model itself in fp32).

`--pitch-model P` (an SVU pitch model, as `svu pitch` runs) also gives each note its fractional MIDI pitch: the
median F0 of P's voiced frames inside the note (`modeling_svu.note_pitch`). The CSV gains a `pitch_midi` column,
the JSON rows a fourth value (`[onset, offset, pitch, pitch_midi]`; empty / null for a note without a voiced
frame), and the MIDI file a pitch bend on each note (range +-2 semitones, declared by RPN 0 on each channel used;
`modeling_svu.midi_io`). The integer `pitch` of a note with a pitch_midi becomes its nearest integer
(`note_pitch.pitched_notes`): the note number the MIDI file holds, bent by at most half a semitone, so that MIDI,
CSV, JSON, piano roll and sonification carry the same pitch. The posteriors file keeps the notes the transcription
model decoded (its own integer pitches). Without it, the files are exactly as before.
"""

import contextlib
import csv
import json
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from svu.modeling_svu.audio_io import TruncatedAudioWarning

from .catalogue import MANIFEST, Done, add_catalogue_options, collect_inputs, outputs_complete, run_catalogue, temporary
from .window_batches import add_batch_files_option, shared_engines
from .common import (
    add_device_option, add_engine_options, add_quiet_option, add_window_options, load_model_and_engine,
    open_model_audio, window_options,
)

FORMATS = ("mid", "csv", "json")
EXTRA_OUTPUTS = {"piano_roll": "piano_roll.png", "sonify": "sonified.wav", "save_posteriors": "posteriors.npz"}


@dataclass
class Transcription:
    """The notes of one recording and the stitched frame posteriors they were decoded from."""

    notes: list  # [(onset_s, offset_s, midi)], as every note output writes them
    onset_prob: np.ndarray
    silence_prob: np.ndarray
    pitch_index: np.ndarray
    num_samples: int  # of the audio decoded at the model's rate
    audio: np.ndarray = None  # the decoded audio, only when asked for (piano roll)
    pitch_midi: list = None  # with a pitch model: each note's fractional MIDI pitch (None: no voiced frame)
    decoded_notes: list = None  # the notes decoded from the posteriors (with a pitch model, `notes` is renumbered)


def decoding_thresholds(model, onset_threshold=None, silence_threshold=None) -> dict:
    """The model's decoding options (`note_labels.decoding_options`) with the given thresholds replacing its own."""
    from svu.modeling_svu.note_labels import decoding_options

    options = decoding_options(model.config)
    for name, value in (("onset_threshold", onset_threshold), ("silence_threshold", silence_threshold)):
        if value is not None:
            if not 0.0 <= value <= 1.0:
                raise SystemExit(f"svu transcribe: --{name.replace('_', '-')} {value}: a probability in [0, 1] is needed.")
            options[name] = value
    return options


def transcribe_file(model, path, decoding: dict, keep_audio: bool = False, **window_options) -> Transcription:
    """`long_audio.transcribe_blocks`, keeping the stitched posteriors (and the audio when asked)."""
    from svu.modeling_svu.long_audio import stitched_posteriors
    from svu.modeling_svu.note_labels import NoteDecoder

    total, blocks = open_model_audio(model, path)
    kept, num_samples = [], 0

    def counted(blocks):
        nonlocal num_samples
        for block in blocks:
            num_samples += len(block)
            if keep_audio:
                kept.append(block)
            yield block

    decoder = NoteDecoder(**decoding)
    notes, runs = [], []
    for _, onset, silence, pitch in stitched_posteriors(model, counted(blocks), total_samples=total, **window_options):
        notes += decoder.push(onset, silence, pitch)
        runs.append((onset, silence, pitch))
    notes += decoder.finish()
    onset, silence, pitch = (np.concatenate([run[i] for run in runs]) for i in range(3))
    audio = np.concatenate(kept) if keep_audio else None
    return Transcription(notes, onset, silence, pitch, num_samples, audio, decoded_notes=notes)


def write_notes(notes, path: Path, fmt: str, name: str, pitch_midi=None) -> None:
    """The notes as MIDI, CSV or JSON; `pitch_midi` (a fractional pitch or None per note) adds a column / value /
    pitch bend, rounded to 1e-4 semitone (0.01 cent) in text."""
    if fmt == "mid":
        from svu.modeling_svu.midi_io import notes_to_midi

        notes_to_midi(notes, pitch_midi=pitch_midi).save(str(path))
        return
    rows = [[onset, offset, pitch] for onset, offset, pitch in notes]
    if pitch_midi is not None:
        for row, fractional in zip(rows, pitch_midi):
            row.append(None if fractional is None else round(fractional, 4))
    if fmt == "csv":
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["onset", "offset", "pitch"] + ([] if pitch_midi is None else ["pitch_midi"]))
            writer.writerows([f"{row[0]:.3f}", f"{row[1]:.3f}", *row[2:]] for row in rows)
    else:
        with open(path, "w") as f:
            json.dump({name: rows}, f)


def note_pitches(notes, pitch_model, path, engine=None, **window_options) -> tuple:
    """``(notes, pitch_midi)`` (`note_pitch.pitched_notes`) from `pitch_model`'s F0 track of the file."""
    from svu.modeling_svu.note_pitch import pitched_notes

    from .pitch import pitch_track_file

    track = pitch_track_file(pitch_model, path, engine=engine, **window_options)
    return pitched_notes(notes, track["times"], track["f0_hz"], track["voiced"])


def sonify(notes: list, num_samples: int, sampling_rate: int, amplitude: float = 0.2) -> np.ndarray:
    """The notes as tones (fundamental + 2 soft harmonics, 10 ms fades), silence elsewhere; float32 mono."""
    out = np.zeros(num_samples, dtype=np.float64)
    fade = int(0.01 * sampling_rate)
    for onset, offset, pitch in notes:
        start, stop = int(round(onset * sampling_rate)), min(int(round(offset * sampling_rate)), num_samples)
        if stop <= start:
            continue
        n = np.arange(stop - start)
        phase = 2 * np.pi * 440.0 * 2 ** ((pitch - 69) / 12) * n / sampling_rate
        tone = np.sin(phase) + 0.3 * np.sin(2 * phase) + 0.1 * np.sin(3 * phase)
        envelope = np.minimum(1.0, np.minimum(n + 1, len(n) - n) / max(fade, 1))
        out[start:stop] += amplitude / 1.4 * tone * envelope
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def extra_outputs(args) -> list:
    """The suffixes of the --piano-roll / --sonify / --save-posteriors files asked for."""
    return [suffix for flag, suffix in EXTRA_OUTPUTS.items() if getattr(args, flag)]


def write_extras(result: Transcription, model, decoding: dict, paths: dict) -> None:
    """The --piano-roll / --sonify / --save-posteriors files of one input, to `paths` (`EXTRA_OUTPUTS` suffix ->
    path) of the ones asked for."""
    rate = model.config.sampling_rate
    if EXTRA_OUTPUTS["piano_roll"] in paths:
        from .figures import piano_roll_figure

        path = paths[EXTRA_OUTPUTS["piano_roll"]]
        piano_roll_figure(
            result.notes, result.audio, rate, path, lowest_midi=model.config.lowest_midi,
            num_octaves=model.config.num_octaves, hop=model.config.frame_hop_samples,
            title=f"{path.name.split('.')[0]}: {len(result.notes)} notes",
        )  # fmt: skip
    if EXTRA_OUTPUTS["sonify"] in paths:
        import soundfile as sf

        sf.write(paths[EXTRA_OUTPUTS["sonify"]], sonify(result.notes, result.num_samples, rate), rate, subtype="PCM_16")
    if EXTRA_OUTPUTS["save_posteriors"] in paths:
        np.savez_compressed(
            paths[EXTRA_OUTPUTS["save_posteriors"]], onset_prob=result.onset_prob.astype(np.float32),
            silence_prob=result.silence_prob.astype(np.float32), pitch_index=result.pitch_index.astype(np.int16),
            frame_seconds=decoding["frame_seconds"], lowest_midi=decoding["lowest_midi"],
            onset_threshold=decoding["onset_threshold"], onset_window=decoding["onset_window"],
            silence_threshold=decoding["silence_threshold"],
            notes=np.asarray(result.decoded_notes, dtype=np.float64).reshape(-1, 3),
        )  # fmt: skip


@contextlib.contextmanager
def truncation_warnings_as_lines():
    """For the whole run: a truncated file is one `svu transcribe: warning:` line, once (with --pitch-model it is
    read twice); other warnings go on as they came. One context, so files read on several threads share it."""
    reported = set()
    show_other = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if not issubclass(category, TruncatedAudioWarning):
            show_other(message, category, filename, lineno, file, line)
        elif str(message) not in reported:
            reported.add(str(message))
            print(f"svu transcribe: warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.simplefilter("always", TruncatedAudioWarning)
        warnings.showwarning = show
        yield


def run_transcribe(args) -> int:
    items = collect_inputs(args, "transcribe")
    model, engine = load_model_and_engine(args.model, args, "transcribe")
    pitch_model = pitch_engine = None
    if args.pitch_model:
        from svu.modeling_svu.tasks import tasks_of_verb

        pitch_tasks = tuple(task.name for task in tasks_of_verb("pitch"))  # the models `svu pitch` runs
        pitch_model, pitch_engine = load_model_and_engine(args.pitch_model, args, "transcribe", pitch_tasks)
    decoding = decoding_thresholds(model, args.onset_threshold, args.silence_threshold)
    formats = list(dict.fromkeys(args.format or ["mid"]))
    suffixes = formats + extra_outputs(args)
    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    options = window_options(args)

    def outputs(item) -> list:
        return [item.output(out_dir, suffix) for suffix in suffixes]

    def transcribe_one(item) -> Done:
        result = transcribe_file(model, item.path, decoding, keep_audio=args.piano_roll, progress=not args.quiet,
                                 engine=engine, **options)  # fmt: skip
        if pitch_model is not None:
            result.notes, result.pitch_midi = note_pitches(
                result.decoded_notes, pitch_model, item.path, pitch_engine, progress=not args.quiet, **options)
        paths = outputs(item)
        paths[0].parent.mkdir(parents=True, exist_ok=True)
        for fmt, path in zip(formats, paths):
            write_notes(result.notes, temporary(path), fmt, Path(item.name).name, pitch_midi=result.pitch_midi)
        write_extras(result, model, decoding, {suffix: temporary(path) for suffix, path in zip(suffixes, paths)
                                               if suffix not in formats})  # fmt: skip
        unpitched = result.pitch_midi.count(None) if result.pitch_midi is not None else 0
        unpitched = f" ({unpitched} without a voiced frame: no pitch_midi)" if unpitched else ""
        line = f"{item.path}: {len(result.notes)} notes{unpitched} -> {', '.join(str(p) for p in paths)}"
        return Done(line, paths, result.num_samples / model.config.sampling_rate)

    (engine, pitch_engine), reading, files_at_once = shared_engines(args, (model, engine), (pitch_model, pitch_engine))
    with truncation_warnings_as_lines():
        return run_catalogue("transcribe", items, transcribe_one, outputs, out_dir / MANIFEST,
                             previous=outputs_complete(outputs) if args.skip_existing else None,
                             files_at_once=files_at_once, reading=reading)  # fmt: skip


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("transcribe")
    add_catalogue_options(parser, "outputs (every --format and extra file)")
    parser.add_argument("--model", required=True, help="SVU transcription model: Hub repo id or local folder")
    parser.add_argument("-o", "--output-dir", required=True, help="folder for the outputs (created if missing)")
    parser.add_argument("--format", choices=FORMATS, action="append",
                        help="note file format, repeatable: --format mid --format csv (default: mid)")
    parser.add_argument("--pitch-model", help="SVU pitch model (repo id or folder): also give each note its fractional "
                        "MIDI pitch (pitch_midi in CSV/JSON, a pitch bend in MIDI)")
    parser.add_argument("--onset-threshold", type=float, help="onset probability of a note start (default: the model's)")
    parser.add_argument("--silence-threshold", type=float, help="silence probability that ends a note (default: the model's)")
    parser.add_argument("--piano-roll", action="store_true", help="also draw <stem>.piano_roll.png")
    parser.add_argument("--sonify", action="store_true", help="also render the notes as <stem>.sonified.wav")
    parser.add_argument("--save-posteriors", action="store_true", help="also save the frame posteriors as <stem>.posteriors.npz")
    add_window_options(parser)
    add_batch_files_option(parser)
    add_engine_options(parser)
    add_device_option(parser)
    add_quiet_option(parser)
    parser.set_defaults(func=run_transcribe)

