"""Run the SVU benchmarks and print a table of ratios, all measured within this one run.

    python -m benchmarks.run                      # every benchmark at base size (several minutes on 2 cores)
    python -m benchmarks.run --only stage1_cache  # one of them
    python -m benchmarks.run --smoke              # tiny sizes, seconds of audio, no goals checked (< 1 min)
    python -m benchmarks.run --json results.json  # also write the rows as JSON

Each benchmark module has `run(smoke) -> list[Row]`; see its docstring for what it compares.
"""

import argparse
import importlib
import json
import platform
import sys
import time
from dataclasses import asdict

import torch

from .common import NUM_THREADS, Row, setup_torch

BENCHMARKS = ("forward_overhead", "stage1_cache", "lora_memory", "long_audio", "transcription_rtf", "whole_process",
              "data_throughput", "pitch_peers", "catalogue", "distill")


def format_table(rows) -> str:
    lines = ["| benchmark | metric | value | goal | met | notes |", "|---|---|---|---|---|---|"]
    for r in rows:
        met = "-" if r.met is None else ("yes" if r.met else "**no**")
        lines.append(f"| {r.benchmark} | {r.metric} | {r.formatted_value()} | {r.goal or '-'} | {met} | {r.note} |")
    return "\n".join(lines)


def machine() -> str:
    import os

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({NUM_THREADS} threads), load average {load:.1f}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="Tiny sizes and seconds of audio; goals not checked.")
    parser.add_argument("--only", action="append", choices=BENCHMARKS, help="Run only this benchmark (repeatable).")
    parser.add_argument("--json", help="Also write the rows to this JSON file.")
    args = parser.parse_args(argv)

    setup_torch()
    rows = []
    for name in args.only or BENCHMARKS:
        print(f"== {name} ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        try:
            rows += importlib.import_module(f"benchmarks.{name}").run(args.smoke)
        except Exception as err:  # one broken benchmark must not hide the others' numbers
            rows.append(Row(name, "FAILED", float("nan"), unit="", note=f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"))
        print(f"   {name} took {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    print(f"Machine: {machine()}{' (smoke mode: tiny sizes, goals not checked)' if args.smoke else ''}\n")
    print(format_table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine(), "smoke": args.smoke, "rows": [asdict(r) for r in rows]}, f, indent=1)
    return 1 if any(r.metric == "FAILED" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
