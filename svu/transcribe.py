"""`svu transcribe in.wav [more ...] --model <repo id or folder> -o out_dir [--format mid|csv|json]`.

Writes one file per input, named after it (``out_dir/<input stem>.<format>``):
    mid   a type-0 Standard MIDI File (120 bpm, 1 tick = 1 ms), one note per transcribed note
    csv   ``onset,offset,pitch`` rows (seconds, seconds, MIDI)
    json  MIR-ST500 style ``{"<input stem>": [[onset, offset, pitch], ...]}``
Audio is read with `modeling_svu.audio_io.open_audio`, the decode path data preparation and the pipelines use
(FFmpeg via torchcodec block by block, channels averaged, soxr resampling to the model's rate as one stream),
so memory does not grow with the file's length. A truncated file is transcribed, with a one-line warning. A
file that cannot be transcribed is reported on one line; the other files are still processed and the exit
status is 1.
"""

import csv
import json
import sys
import warnings
from pathlib import Path

FORMATS = ("mid", "csv", "json")


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
    from modeling_svu import SVUConfig, SVUForNoteTranscription
    from modeling_svu.audio_io import decoder_message

    try:
        config = SVUConfig.from_pretrained(name)
        if config.task != "transcription":
            raise SystemExit(f"svu transcribe: {name!r} is a {config.task!r} model, not a transcription model.")
        model = SVUForNoteTranscription.from_pretrained(name, config=config)
    except (OSError, ValueError, RuntimeError) as error:
        raise SystemExit(f"svu transcribe: cannot load model {name!r}: {decoder_message(error)}") from None
    return model.eval()


def run_transcribe(args) -> int:
    # Imported here, not at the top: `svu --help` stays fast.
    from modeling_svu.audio_io import TruncatedAudioWarning, decoder_message, open_audio
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
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", TruncatedAudioWarning)
                total, blocks = open_audio(audio_path, model.config.sampling_rate)
                notes = transcribe_blocks(model, blocks, total_samples=total, progress=not args.quiet, **options)
            for warning in caught:
                if issubclass(warning.category, TruncatedAudioWarning):
                    print(f"svu transcribe: warning: {warning.message}", file=sys.stderr)
                else:
                    warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
            write_notes(notes, out_path, args.format, stem)
        except (ValueError, OSError, RuntimeError) as error:
            failures += 1
            message = decoder_message(error)
            if not message.startswith(str(audio_path)):  # audio_io's messages already start with the file
                message = f"{audio_path}: {message}"
            print(f"svu transcribe: error: {message}", file=sys.stderr)
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
