"""Regenerate the pictures of the `svu` commands in docs/cli.md from the demo models (small palette PNGs in
docs/figures/).

    python docs/make_figures.py                   # uses outputs/demo-<task>/, training the demo config if missing
    python docs/make_figures.py --runs /tmp/runs  # run folders elsewhere

Each picture is made by the real command line (`python -m svu ...`), as a user would:
    svu evaluate  (technique demo)     -> docs/figures/evaluate_confusion_matrix.png
    svu evaluate  (transcription demo) -> docs/figures/evaluate_per_song_f1.png
    svu transcribe --piano-roll        -> docs/figures/transcribe_piano_roll.png (10 s of a synthetic test song)
The demo models are tiny random backbones trained for a minute on the synthetic corpus: the pictures show what
the commands draw, not how well SVU sings.
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
FIGURES = REPO / "docs" / "figures"
MAX_BYTES = 100_000


def demo_run(runs: Path, task: str) -> Path:
    """outputs/demo-<task>/ with its repo/ and data/, trained by the demo config when missing."""
    run = runs / f"demo-{task}"
    if not (run / "repo" / "config.json").is_file():
        subprocess.run(["accelerate", "launch", "--cpu", "--num_processes", "1", "--num_machines", "1",
                        "--mixed_precision", "no", "--dynamo_backend", "no", str(REPO / "train" / "run.py"),
                        "--config", str(REPO / "train" / "configs" / f"demo_{task}.yaml"), "--output_dir", str(run)],
                       check=True, cwd=REPO)  # fmt: skip
    return run


def svu(*args):
    subprocess.run([sys.executable, "-m", "svu", *args, "-q"], check=True, cwd=REPO)


def test_song_excerpt(data_dir: Path, path: Path, chunks: int = 2) -> Path:
    """The first `chunks` 5 s chunks of the first test song of a prepared transcription dataset, as a wav file."""
    from svu.dataset_scripts.prepare import load_prepared

    data, _ = load_prepared(data_dir)
    test = data["test"]
    song = test[0]["song_id"]
    rows = sorted((r for r in test if r["song_id"] == song), key=lambda r: r["chunk_start"])[:chunks]
    sf.write(path, np.concatenate([np.asarray(r["audio"]["array"], dtype=np.float32) for r in rows]), 16000)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default=str(REPO / "outputs"), help="folder holding demo-<task>/ run folders")
    args = parser.parse_args(argv)
    runs = Path(args.runs)
    FIGURES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        technique = demo_run(runs, "technique")
        svu("evaluate", "--model", str(technique / "repo"), "--data", str(technique / "data"), "-o", str(scratch / "technique"))
        shutil.copy(scratch / "technique" / "confusion_matrix.png", FIGURES / "evaluate_confusion_matrix.png")

        transcription = demo_run(runs, "transcription")
        svu("evaluate", "--model", str(transcription / "repo"), "--data", str(transcription / "data"),
            "-o", str(scratch / "transcription"))  # fmt: skip
        shutil.copy(scratch / "transcription" / "per_song_f1.png", FIGURES / "evaluate_per_song_f1.png")

        song = test_song_excerpt(transcription / "data", scratch / "test_song.wav")
        svu("transcribe", str(song), "--model", str(transcription / "repo"), "-o", str(scratch / "notes"), "--piano-roll")
        shutil.copy(scratch / "notes" / "test_song.piano_roll.png", FIGURES / "transcribe_piano_roll.png")
    for png in sorted(FIGURES.glob("*.png")):
        size = png.stat().st_size
        print(f"{png.relative_to(REPO)}: {size / 1000:.0f} kB")
        if size > MAX_BYTES:
            raise SystemExit(f"{png} is {size} bytes; keep README pictures under {MAX_BYTES}.")


if __name__ == "__main__":
    main()
