"""Shared pieces of the benchmarks: model sizes, interleaved timing, result rows."""

import gc
import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from svu.modeling_svu import FAMILIES, tiny_backbone_config

# The target machine: 2 CPU cores. Every benchmark runs with this many torch threads.
NUM_THREADS = 2
SR = 16000


@dataclass
class Row:
    """One line of the results table. `goal` is a human-readable target such as "<= 1.03"; `met` is None when
    no goal applies or goals are not checked (smoke mode)."""

    benchmark: str
    metric: str
    value: float
    unit: str = "x"
    goal: str = ""
    met: Optional[bool] = None
    note: str = ""

    def formatted_value(self) -> str:
        if self.unit == "x":
            return f"{self.value:.3f}x"
        if self.unit == "%":
            return f"{self.value:.2f} %"
        if self.unit in ("s", "MiB", "ms", "s/s"):
            return f"{self.value:.3g} {self.unit}"
        return f"{self.value:.4g} {self.unit}".strip()


def check(value: float, goal: str, smoke: bool) -> Optional[bool]:
    """Whether `value` meets `goal` ("<= 1.03" / ">= 50"); None in smoke mode (goals are not asserted there)."""
    if smoke or not goal:
        return None
    op, target = goal.split()
    return value <= float(target) if op == "<=" else value >= float(target)


def setup_torch():
    torch.set_num_threads(NUM_THREADS)
    torch.manual_seed(0)


def backbone_config(smoke: bool, family: str = "wav2vec2"):
    """Tiny backbone in smoke mode, else the family's base size (768 hidden, 12 layers), random weights."""
    if smoke:
        return tiny_backbone_config(family)
    return FAMILIES[family].config_class(layerdrop=0.0, mask_time_prob=0.0)


def random_audio(seconds: float, batch: int = 1, seed: int = 0) -> torch.Tensor:
    """Normalised noise-like audio, (batch, samples) float32: the backbone cost does not depend on content."""
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.standard_normal((batch, int(seconds * SR))).astype(np.float32))


def interleaved_best(fns: dict, repeats: int, warmup: int = 1) -> dict:
    """Best (minimum) wall time of each callable, run in alternating order so load spikes hit all alike.

    The minimum, not the median: on a shared machine other processes only ever add time, so the fastest
    of several runs is the closest to the code's own cost.
    """
    times = {name: [] for name in fns}
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    for i in range(repeats):
        order = names if i % 2 == 0 else names[::-1]
        for name in order:
            gc.collect()
            start = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - start)
    return {name: min(ts) for name, ts in times.items()}


def timed(fn: Callable):
    """(result, seconds) of one call."""
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def sung_tones(count: int, seconds: float, seed: int = 0) -> list:
    """`count` harmonic tones with vibrato and breath noise at different pitches (float32, 16 kHz)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    tones = []
    for _ in range(count):
        f0 = rng.uniform(110, 660) * 2 ** (30 / 1200 * np.sin(2 * np.pi * rng.uniform(4, 7) * t))
        phase = 2 * np.pi * np.cumsum(f0) / SR
        wave = sum(np.sin(k * phase) / k for k in range(1, 8)) + 0.02 * rng.standard_normal(len(t))
        tones.append((0.5 * wave / np.abs(wave).max()).astype(np.float32))
    return tones


def classification_dataset(count: int, seconds: float, num_labels: int, seed: int = 0):
    """A prepared-split lookalike: "audio" (`datasets.Audio`, 16 kHz) and "label" (`ClassLabel`)."""
    import datasets

    rows = {
        "audio": [{"array": wave, "sampling_rate": SR} for wave in sung_tones(count, seconds, seed)],
        "label": [i % num_labels for i in range(count)],
    }
    features = datasets.Features(
        {"audio": datasets.Audio(sampling_rate=SR), "label": datasets.ClassLabel(names=[f"class{i}" for i in range(num_labels)])}
    )
    return datasets.Dataset.from_dict(rows, features=features)


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB.

    Read from /proc (VmHWM, the high-water mark of this address space): `ru_maxrss` would do on macOS, but on
    Linux it survives fork+exec, so a child started by a big parent reports at least the parent's size.
    """
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(module: str, *args: str, timeout: float = 1800) -> dict:
    """Run `python -m benchmarks.<module> --child ARGS` in a fresh process (so peak RSS is its own) and return
    the JSON object it prints last."""
    import json
    import os
    import subprocess
    import sys

    # A fixed mmap threshold: glibc otherwise raises it after large frees, keeps freed tensor memory in the heap
    # and the peak RSS then measures fragmentation (we saw LoRA "use" more than full fine-tuning that way).
    env = dict(os.environ, OMP_NUM_THREADS=str(NUM_THREADS), HF_HUB_OFFLINE="1", TQDM_DISABLE="1", MALLOC_MMAP_THRESHOLD_="65536")
    proc = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module}", "--child", *args], capture_output=True, text=True, env=env, timeout=timeout
    )
    if proc.returncode != 0:
        raise RuntimeError(f"benchmarks.{module} {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
