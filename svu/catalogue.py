"""A catalogue run of `svu transcribe | pitch | classify`: the input files, this process's share of them, outputs
written whole or not at all, `--skip-existing`, `manifest.jsonl` and the summary.

Inputs are files, folders (searched recursively; `--glob` picks the files, default: every file with an audio
extension) and `--file-list` files (one path per line). A file found in a folder keeps its place in the outputs
(`in/a/x.wav` -> `out/a/x.*`), so two `x.wav` of different folders do not collide.

Under `accelerate launch -m svu ...` or `torchrun -m svu ...` (`WORLD_SIZE` > 1) process `RANK` takes every
`WORLD_SIZE`-th input of the sorted list and runs on its own GPU (`LOCAL_RANK`); the files written are the same as
one process writes. Each output is written under a temporary name and renamed when complete, so a killed job leaves
no half-written output under an output's name, and `--skip-existing` skips an input whose outputs all exist.
`manifest.jsonl` holds one line per input, in input order: ``{"input", "status": done | skipped | failed,
"outputs", "duration" (seconds of audio), "seconds" (to process it), "error"}``; process 0 gathers every
process's lines (gloo) and writes it and the summary.
"""

import contextlib
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from svu.modeling_svu.audio_io import AUDIO_SUFFIXES

MANIFEST = "manifest.jsonl"
TEMPORARY = ".partial-"  # in the name of an output being written: never taken as an output


@dataclass(frozen=True)
class Input:
    path: Path
    name: str  # the outputs' name: the file's stem, with its folders under a folder given as input

    def output(self, out_dir: Path, suffix: str) -> Path:
        return out_dir / f"{self.name}.{suffix}"


def add_catalogue_options(parser, outputs: str = "outputs") -> None:
    parser.add_argument("inputs", nargs="*", metavar="AUDIO",
                        help="audio files (anything FFmpeg reads) or folders, searched recursively")
    parser.add_argument("--glob", help="in folders, the files matching this pattern (e.g. '*.flac'; default: audio "
                        f"extensions {' '.join(AUDIO_SUFFIXES)})")
    parser.add_argument("--file-list", help="a text file of input paths, one per line (blank lines and # ignored)")
    parser.add_argument("--skip-existing", action="store_true",
                        help=f"skip an input whose {outputs} are complete (resume a killed run)")


def collect_inputs(args, command: str) -> list:
    """Every input of the command line, in order: files as given, a folder's files sorted, then `--file-list`'s;
    SystemExit (one line) when there are none."""
    found = []
    listed = list(args.inputs)
    if args.file_list:
        try:
            lines = Path(args.file_list).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise SystemExit(f"svu {command}: --file-list {args.file_list}: {error}") from None
        listed += [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    for given in listed:
        path = Path(given)
        if path.is_dir():
            pattern = args.glob or "*"
            files = sorted(p for p in path.rglob(pattern) if p.is_file() and TEMPORARY not in p.name
                           and (args.glob or p.suffix.lower() in AUDIO_SUFFIXES))  # fmt: skip
            found += [Input(p, str(p.relative_to(path).with_suffix(""))) for p in files]
            if not files:  # named, not dropped: its line says it is a folder, not an audio file
                found.append(Input(path, path.stem))
        else:
            found.append(Input(path, path.stem))  # a missing file fails on its own line
    if not found:
        raise SystemExit(f"svu {command}: no input given (AUDIO files or folders, --file-list)")
    return found


def world() -> tuple:
    """(rank, world size) of this process under `accelerate launch` / `torchrun`; (0, 1) when run alone."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def process_device(device: str) -> str:
    """`cuda` becomes this process's own GPU (`LOCAL_RANK`) in a multi-process run."""
    if device == "cuda" and "LOCAL_RANK" in os.environ:
        return f"cuda:{int(os.environ['LOCAL_RANK'])}"
    return device


def temporary(path: Path) -> Path:
    """Where `path` is written before it is complete (same suffix: writers pick the format from it)."""
    return path.with_name(f"{path.stem}{TEMPORARY}{os.getpid()}{path.suffix}")


def commit(paths) -> None:
    """Rename each written temporary file to its output name."""
    for path in paths:
        os.replace(temporary(path), path)


def remove_temporaries(paths) -> None:
    for path in paths:
        for stale in path.parent.glob(f"{path.stem}{TEMPORARY}*{path.suffix}"):
            stale.unlink(missing_ok=True)


@dataclass
class Done:
    """What `process` returns for one input."""

    line: str  # printed for it
    outputs: list  # the output paths it wrote (through `temporary`, committed by the run)
    duration: float  # seconds of audio
    record: dict = None  # anything else the manifest line keeps


def outputs_complete(outputs):
    """`--skip-existing` of a command writing files per input: an input whose outputs all exist is done (each is
    renamed into place only once written whole)."""

    def previous(item):
        paths = outputs(item)
        return {"outputs": [str(p) for p in paths]} if paths and all(p.is_file() for p in paths) else None

    return previous


def run_catalogue(command: str, items: list, process, outputs, manifest: Path, previous=None, then=None,
                  files_at_once: int = 1, reading=None) -> int:
    """Process this process's share of `items`, then write `manifest` (a `manifest.jsonl` path, or None); returns the
    exit status (1 when one of this process's files failed).

    `process(item)` returns a `Done` after writing each of its outputs to `temporary(path)`; `outputs(item)` lists
    them. `previous(item)` (`--skip-existing`) gives the manifest fields of an input already done (e.g.
    `outputs_complete`), or None: it is processed. A file `process` raises ValueError, OSError or RuntimeError on
    is one line naming it, and the others go on. `files_at_once` > 1 processes that many files at once on threads,
    each inside `reading()` (`window_batches.SharedWindowBatches`). `then(entries)`, if given, runs once with every
    input's manifest entry, in the process writing the manifest."""
    from .common import report_failure

    first_of_name = {}  # two inputs of one name (x.wav given from two folders) would write the same outputs
    for item in items:
        first_of_name.setdefault(item.name, item.path)

    def one(index: int) -> dict:
        item = items[index]
        entry = {"index": index, "input": str(item.path), "status": "done", "outputs": [], "duration": None}
        if first_of_name[item.name] != item.path and outputs(item):
            error = ValueError(f"outputs named {item.name}.* are those of {first_of_name[item.name]} (same file name)")
            report_failure(command, item.path, error)
            return {**entry, "status": "failed", "error": str(error)}
        done_before = previous(item) if previous is not None else None
        if done_before is not None:
            return {**entry, **done_before, "status": "skipped"}
        remove_temporaries(outputs(item))
        start = time.perf_counter()
        try:
            with reading() if reading is not None else contextlib.nullcontext():
                done = process(item)
            commit(done.outputs)
        except (ValueError, OSError, RuntimeError) as error:
            remove_temporaries(outputs(item))
            report_failure(command, item.path, error)
            return {**entry, "status": "failed", "error": str(error).splitlines()[0] if str(error) else type(error).__name__}
        print(done.line)
        return {**entry, "outputs": [str(p) for p in done.outputs], "duration": round(done.duration, 3),
                "seconds": round(time.perf_counter() - start, 3), **(done.record or {})}  # fmt: skip

    rank, size = world()
    mine = range(rank, len(items), size)
    if files_at_once > 1:
        with ThreadPoolExecutor(files_at_once) as pool:
            entries = list(pool.map(one, mine))
    else:
        entries = [one(index) for index in mine]
    failed_here = any(entry["status"] == "failed" for entry in entries)
    everything = gathered(entries, rank, size)
    if everything is not None:
        if manifest is not None:
            write_manifest(everything, manifest)
        if then is not None:
            then(everything)
        print(summary(command, everything), file=sys.stderr)
    return 1 if failed_here else 0


def gathered(entries: list, rank: int, size: int):
    """Every process's entries, in input order, in process 0; None in the others (gloo: no GPU needed)."""
    if size == 1:
        return entries
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo")  # MASTER_ADDR / MASTER_PORT from the launcher
    parts = [None] * size
    dist.all_gather_object(parts, entries)
    dist.destroy_process_group()
    if rank != 0:
        return None
    return sorted((entry for part in parts for entry in part), key=lambda entry: entry["index"])


def write_manifest(entries: list, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    part = temporary(path)
    part.write_text("".join(json.dumps({k: v for k, v in e.items() if k != "index"}) + "\n" for e in entries))
    os.replace(part, path)


def summary(command: str, entries: list) -> str:
    """One line: done / skipped / failed, with the failed files and their reasons."""
    counts = {status: sum(entry["status"] == status for entry in entries) for status in ("done", "skipped", "failed")}
    line = f"svu {command}: {len(entries)} files: {counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed"
    failed = [entry["error"] if entry["error"].startswith(entry["input"]) else f"{entry['input']}: {entry['error']}"
              for entry in entries if entry["status"] == "failed"]
    return line + (": " + "; ".join(failed) if failed else "")
