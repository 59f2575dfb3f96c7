"""`svu transcribe in.wav [more ...] --model <repo id or folder> -o out_dir [--format mid|csv|json]`.

Writes one file per input, named after it (``out_dir/<input stem>.<format>``):
    mid   a type-0 Standard MIDI File (120 bpm, 1 tick = 1 ms), one note per transcribed note
    csv   ``onset,offset,pitch`` rows (seconds, seconds, MIDI)
    json  MIR-ST500 style ``{"<input stem>": [[onset, offset, pitch], ...]}``
Audio is decoded by FFmpeg (torchcodec) block by block and resampled to 16 kHz with soxr as a stream, so
memory does not grow with the file's length. A file that cannot be transcribed is reported on one line;
the other files are still processed and the exit status is 1.
"""

import csv
import json
import sys
from pathlib import Path

import numpy as np

from dataset_scripts.audio import audio_path_problem, decoder_message

BLOCK_SECONDS = 30.0
FORMATS = ("mid", "csv", "json")


def read_blocks(path, sampling_rate: int, block_seconds: float = BLOCK_SECONDS):
    """``(approximate number of samples, iterator of float32 mono blocks at sampling_rate)`` of an audio file.

    Blocks are decoded at the file's own rate (torchcodec ranges are sample-exact there), averaged to mono
    and resampled by one streaming soxr resampler, so the result equals resampling the whole file at once.
    """
    import soxr
    from torchcodec.decoders import AudioDecoder


    path = Path(path)
    problem = audio_path_problem(path)  # missing, a directory, empty, not readable
    if problem:
        raise ValueError(problem)
    try:
        decoder = AudioDecoder(str(path))
        native_rate = decoder.metadata.sample_rate
        duration = decoder.metadata.duration_seconds
    except (RuntimeError, ValueError) as error:
        raise ValueError(f"cannot decode audio: {decoder_message(error)}") from None
    if not native_rate:
        raise ValueError("cannot decode audio: no sample rate in the file")
    total = int(round((duration or 0) * sampling_rate)) or None

    def blocks():
        resampler = soxr.ResampleStream(native_rate, sampling_rate, 1, dtype="float32", quality="HQ")
        start = 0.0
        while True:
            try:
                samples = decoder.get_samples_played_in_range(start, start + block_seconds)
            except RuntimeError as error:
                if "No audio frames were decoded" not in str(error):
                    raise ValueError(f"cannot decode audio at {start:.1f} s: {decoder_message(error)}") from None
                break  # the previous block ended exactly at the end of the file
            block = samples.data.numpy().mean(axis=0).astype(np.float32)
            last = len(block) < int(round(block_seconds * native_rate))
            yield resampler.resample_chunk(block, last=last)
            if last:
                return
            start += block_seconds
        yield resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)

    return total, blocks()


def write_notes(notes, path: Path, fmt: str, name: str) -> None:
    if fmt == "mid":
        from modeling_svu.pipeline_svu import notes_to_midi

        notes_to_midi(notes).save(str(path))
    elif fmt == "csv":
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["onset", "offset", "pitch"])
            writer.writerows([f"{onset:.3f}", f"{offset:.3f}", pitch] for onset, offset, pitch in notes)
    else:
        with open(path, "w") as f:
            json.dump({name: [[onset, offset, pitch] for onset, offset, pitch in notes]}, f)


def load_transcription_model(name: str):
    from modeling_svu import TASK_MODELS, SVUConfig
    from modeling_svu.tasks import tasks_of_verb

    (task,) = tasks_of_verb("transcribe")
    try:
        config = SVUConfig.from_pretrained(name)
        if config.task != task.name:
            raise SystemExit(f"svu transcribe: {name!r} is a {config.task!r} model, not a {task.name} model.")
        model = TASK_MODELS[task.name].from_pretrained(name, config=config)
    except (OSError, ValueError, RuntimeError) as error:
        raise SystemExit(f"svu transcribe: cannot load model {name!r}: {decoder_message(error)}") from None
    return model.eval()


def run_transcribe(args) -> int:
    from modeling_svu.long_audio import transcribe_blocks

    model = load_transcription_model(args.model)
    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    options = {"chunk_seconds": args.chunk_seconds, "overlap_seconds": args.overlap_seconds, "batch_size": args.batch_size}
    options = {key: value for key, value in options.items() if value is not None}
    written, failures = {}, 0
    for audio_path in args.inputs:
        stem = Path(audio_path).stem
        out_path = out_dir / f"{stem}.{args.format}"
        try:
            if out_path in written:
                raise ValueError(f"{out_path} was already written for {written[out_path]} (same file name)")
            total, blocks = read_blocks(audio_path, model.config.sampling_rate)
            notes = transcribe_blocks(model, blocks, total_samples=total, progress=not args.quiet, **options)
            write_notes(notes, out_path, args.format, stem)
        except (ValueError, OSError, RuntimeError) as error:
            failures += 1
            print(f"svu transcribe: error: {audio_path}: {decoder_message(error)}", file=sys.stderr)
            continue
        written[out_path] = audio_path
        print(f"{audio_path}: {len(notes)} notes -> {out_path}")
    if failures:
        print(f"svu transcribe: {failures} of {len(args.inputs)} files failed", file=sys.stderr)
    return 1 if failures else 0


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("transcribe", help="transcribe sung notes to MIDI, CSV or JSON")
    parser.add_argument("inputs", nargs="+", metavar="AUDIO", help="audio files (anything FFmpeg reads)")
    parser.add_argument("--model", required=True, help="SVU transcription model: Hub repo id or local folder")
    parser.add_argument("-o", "--output-dir", required=True, help="folder for the outputs (created if missing)")
    parser.add_argument("--format", choices=FORMATS, default="mid", help="output format (default: mid)")
    parser.add_argument("--chunk-seconds", type=float, help="window length (default: the model's chunk_seconds)")
    # Defaults live in modeling_svu.long_audio (not imported here: `svu --help` stays fast).
    parser.add_argument("--overlap-seconds", type=float, help="overlap of consecutive windows (default: 1.0)")
    parser.add_argument("--batch-size", type=int, help="windows per forward pass (default: 8)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run_transcribe)
