"""`svu pitch in.wav [more ...] --model <repo id or folder> -o out_dir [--format csv|json ...] [--plot] [options]`.

Inputs are files, folders (recursive, `--glob`) and `--file-list`; one or many processes, `--skip-existing`,
`manifest.jsonl`: `svu/catalogue.py`. Writes, per input, files named after it in out_dir (a file found in a
folder keeps its sub-folder), the same F0 track in every one:
    <stem>.f0.csv   (--format csv, the default) ``time,f0_hz,voicing`` per model frame: the frame time in seconds
                    (the centre of its input, `modeling_svu.pitch.frame_times`), the F0 in Hz (0 where unvoiced)
                    and the voicing confidence in [0, 1]
    <stem>.f0.json  (--format json) ``{"file", "model", "voicing_threshold", "times", "f0_hz", "voicing", "voiced"}``
    <stem>.f0.png   (--plot) the F0 contour of the voiced frames on a note-name axis, over the voicing confidence
`--format` can be repeated. A frame is voiced when its voicing confidence reaches `--voicing-threshold` (default:
the model's `config.voicing_threshold`); frames of digital silence are unvoiced. Audio is read with
`modeling_svu.audio_io.open_audio` (streamed: memory does not grow with the file) and run in overlapping windows
as `svu transcribe` does (`modeling_svu.long_audio`). A file that cannot be read is reported on one line; the other
files are still processed and the exit status is 1.
"""

import csv
import json
from pathlib import Path

import numpy as np

from .catalogue import MANIFEST, Done, add_catalogue_options, collect_inputs, outputs_complete, run_catalogue, temporary
from .window_batches import add_batch_files_option, shared_engines
from .common import (
    add_device_option, add_engine_options, add_quiet_option, add_window_options, load_model_and_engine,
    open_model_audio, window_options,
)

FORMATS = ("csv", "json")


def pitch_track_file(model, path, voicing_threshold=None, **window_options) -> dict:
    """`long_audio.pitch_track_blocks` of an audio file (any format FFmpeg reads), streamed."""
    from svu.modeling_svu.long_audio import pitch_track_blocks

    total, blocks = open_model_audio(model, path)
    track = pitch_track_blocks(model, blocks, voicing_threshold=voicing_threshold, total_samples=total, **window_options)
    times = track["times"]
    seconds = total / model.config.sampling_rate if total else float(times[-1]) if len(times) else 0.0  # None: undeclared
    return {**track, "duration": seconds}


def write_track(track: dict, path: Path, fmt: str, record: dict) -> None:
    """The track as CSV (time, f0_hz, voicing; 0.1 ms, 1 mHz, 1e-4) or JSON (`record` + the four arrays)."""
    times, f0_hz, voicing = (np.round(track[key], digits) for key, digits in (("times", 4), ("f0_hz", 3), ("voicing", 4)))
    if fmt == "csv":
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["time", "f0_hz", "voicing"])
            writer.writerows(zip(times.tolist(), f0_hz.tolist(), voicing.tolist()))
    else:
        arrays = {"times": times.tolist(), "f0_hz": f0_hz.tolist(), "voicing": voicing.tolist(),
                  "voiced": np.asarray(track["voiced"], dtype=bool).tolist()}  # fmt: skip
        path.write_text(json.dumps({**record, **arrays}))


def run_pitch(args) -> int:
    if args.voicing_threshold is not None and not 0.0 <= args.voicing_threshold <= 1.0:
        raise SystemExit(f"svu pitch: --voicing-threshold {args.voicing_threshold}: a probability in [0, 1] is needed.")
    items = collect_inputs(args, "pitch")
    model, engine = load_model_and_engine(args.model, args, "pitch")
    threshold = model.config.voicing_threshold if args.voicing_threshold is None else args.voicing_threshold
    formats = list(dict.fromkeys(args.format or ["csv"]))
    suffixes = [f"f0.{fmt}" for fmt in formats] + (["f0.png"] if args.plot else [])
    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    options = window_options(args)

    def outputs(item) -> list:
        return [item.output(out_dir, suffix) for suffix in suffixes]

    def track_one(item) -> Done:
        track = pitch_track_file(model, item.path, voicing_threshold=threshold, engine=engine,
                                 progress=not args.quiet, **options)  # fmt: skip
        record = {"file": str(item.path), "model": args.model, "voicing_threshold": threshold}
        paths = outputs(item)
        paths[0].parent.mkdir(parents=True, exist_ok=True)
        for fmt, path in zip(formats, paths):
            write_track(track, temporary(path), fmt, record)
        if args.plot:
            from .figures import pitch_contour_figure

            pitch_contour_figure(
                track["times"], track["f0_hz"], track["voicing"], temporary(paths[-1]), voicing_threshold=threshold,
                title=f"{Path(item.name).name}: F0 ({int(np.sum(track['voiced']))} voiced frames)",
            )  # fmt: skip
        voiced = int(np.sum(track["voiced"]))
        line = f"{item.path}: {len(track['times'])} frames, {voiced} voiced -> {', '.join(str(p) for p in paths)}"
        return Done(line, paths, track["duration"])

    (engine,), reading, files_at_once = shared_engines(args, (model, engine))
    return run_catalogue("pitch", items, track_one, outputs, out_dir / MANIFEST,
                         previous=outputs_complete(outputs) if args.skip_existing else None,
                         files_at_once=files_at_once, reading=reading)  # fmt: skip


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("pitch")
    add_catalogue_options(parser, "outputs (every --format and --plot file)")
    parser.add_argument("--model", required=True, help="SVU pitch model: Hub repo id or local folder")
    parser.add_argument("-o", "--output-dir", required=True, help="folder for the outputs (created if missing)")
    parser.add_argument("--format", choices=FORMATS, action="append",
                        help="track file format, repeatable: --format csv --format json (default: csv)")
    parser.add_argument("--plot", action="store_true", help="also draw the F0 contour as <stem>.f0.png")
    parser.add_argument("--voicing-threshold", type=float,
                        help="voicing confidence of a voiced frame, in [0, 1] (default: the model's)")
    add_window_options(parser)
    add_batch_files_option(parser)
    add_engine_options(parser)
    add_device_option(parser)
    add_quiet_option(parser)
    parser.set_defaults(func=run_pitch)
