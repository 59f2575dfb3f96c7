"""`svu transcribe` over a catalogue folder, whole process: one process (2 torch threads) vs two processes under
`accelerate launch --multi_gpu --num_processes 2 -m svu` (gloo, 1 thread each), the way a user spreads a catalogue
over a machine's devices (`svu/catalogue.py`), and one process batching the windows of 4 files at once
(`--batch-files 4`, `svu/window_batches.py`). Base-size model (random weights), 16 files x 5 s of wav
(smoke: tiny model, 4 x 2 s). Rows: files per second of each, and two processes / one.
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from svu.modeling_svu import SVUForNoteTranscription

from .common import NUM_THREADS, SR, Row, backbone_config
from .transcription_rtf import melody

NAME = "catalogue"
REPO_ROOT = Path(__file__).resolve().parents[1]


def timed(command: list, threads: int) -> float:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), HF_HUB_OFFLINE="1", OMP_NUM_THREADS=str(threads), TQDM_DISABLE="1")
    start = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(result.stderr.strip().splitlines()[-1])
    return time.perf_counter() - start


def run(smoke: bool) -> list:
    files, seconds = (4, 2.0) if smoke else (16, 5.0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = SVUForNoteTranscription.from_backbone(backbone_config(smoke)).eval()
        model.save_pretrained(tmp / "model")
        songs = tmp / "songs"
        songs.mkdir()
        for index in range(files):
            sf.write(songs / f"song{index:02d}.wav", melody(seconds, seed=index)[0], SR)
        args = ["-m", "svu", "transcribe", str(songs), "--model", str(tmp / "model"), "-q", "--format", "csv"]
        launch = ["accelerate", "launch", "--multi_gpu", "--num_processes", "2", *args]
        repeats = 1 if smoke else 2
        one = min(timed([sys.executable, *args, "-o", str(tmp / f"one{i}")], NUM_THREADS) for i in range(repeats))
        two = min(timed([*launch, "-o", str(tmp / f"two{i}")], max(1, NUM_THREADS // 2)) for i in range(repeats))
        shared = [*args, "--batch-files", "4", "--batch-size", "8"]
        across = min(timed([sys.executable, *shared, "-o", str(tmp / f"across{i}")], NUM_THREADS) for i in range(repeats))
    note = f"{files} files x {seconds:g} s, whole process (start-up, model load, decode, windows, CSV), best of {repeats}"
    return [
        Row(NAME, "files/s, one process", files / one, unit="files/s", note=note),
        Row(NAME, "files/s, two processes (accelerate launch)", files / two, unit="files/s", note=note),
        Row(NAME, "two processes / one (files/s)", one / two, note="each process takes every 2nd file"),
        Row(NAME, "files/s, one process, windows of 4 files per batch", files / across, unit="files/s",
            note="--batch-files 4 --batch-size 8 (svu/window_batches.py)"),
        Row(NAME, "windows across files / one file at a time (files/s)", one / across),
    ]
