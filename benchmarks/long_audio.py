"""Long-audio transcription cost: time per audio-second and peak RSS, 30 s vs 10 min of input.

Each length runs in its own process (`modeling_svu.long_audio.transcribe_blocks`, 5 s windows with 1 s overlap,
batches of 8), fed as a stream of 30 s blocks like a file reader would. Goal: the 10 min input costs <= 1.1x
per audio-second and its peak memory stays flat (<= 1.1x the 30 s peak).
"""

import argparse
import json
import time

import numpy as np

from svu.modeling_svu import SVUForNoteTranscription
from svu.modeling_svu.long_audio import transcribe_blocks

from .common import SR, Row, backbone_config, check, peak_rss_mib, run_child, setup_torch, sung_tones

NAME = "long_audio"
BLOCK_SECONDS = 30.0


def audio_stream(block: np.ndarray, total_seconds: float):
    """`total_seconds` of audio as a stream of `block`s (one buffer reused, as a file reader would)."""
    remaining = int(total_seconds * SR)
    while remaining > 0:
        yield block[: min(remaining, len(block))]
        remaining -= len(block)


def child(smoke: bool, seconds: float):
    setup_torch()
    model = SVUForNoteTranscription.from_backbone(backbone_config(smoke)).eval()
    block = np.concatenate(sung_tones(int(BLOCK_SECONDS), 1.0))
    transcribe_blocks(model, audio_stream(block, 6.0), progress=False)  # warm-up
    rss_before = peak_rss_mib()
    start = time.perf_counter()
    notes = transcribe_blocks(model, audio_stream(block, seconds), total_samples=int(seconds * SR), progress=False)
    wall = time.perf_counter() - start
    print(json.dumps({"seconds": wall, "peak_rss_mib": peak_rss_mib(), "rss_before_mib": rss_before, "notes": len(notes)}))


def run(smoke: bool) -> list:
    short, long = (5.0, 20.0) if smoke else (30.0, 600.0)
    flag = ["--smoke"] if smoke else []
    a = run_child("long_audio", "--seconds", str(short), *flag)
    b = run_child("long_audio", "--seconds", str(long), *flag)
    per_second = (b["seconds"] / long) / (a["seconds"] / short)
    memory = b["peak_rss_mib"] / a["peak_rss_mib"]
    size = "tiny" if smoke else "base"
    return [
        Row(NAME, f"time per audio-second: {long:g} s / {short:g} s", per_second, goal="<= 1.1", met=check(per_second, "<= 1.1", smoke),
            note=f"{size}; {1000 * a['seconds'] / short:.0f} vs {1000 * b['seconds'] / long:.0f} ms per audio-second"),
        Row(NAME, f"peak RSS: {long:g} s / {short:g} s", memory, goal="<= 1.1", met=check(memory, "<= 1.1", smoke),
            note=f"{a['peak_rss_mib']:.0f} vs {b['peak_rss_mib']:.0f} MiB"),
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--seconds", type=float)
    a = parser.parse_args()
    child(a.smoke, a.seconds)
