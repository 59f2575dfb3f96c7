"""Training on a CUDA GPU, checked: each demo config (`train/configs/demo_<task>.yaml`, one per task) trains one
short epoch per stage with bf16, through the training script's own functions, and the table says where the model,
the stage-1 cache build and each stage ran, training samples/s against the training loader's samples/s alone
(decode + collate + copy to the device, no model), and peak GPU memory. Without CUDA it says so in one line.

    python -m benchmarks.gpu_check                              # every demo config, on the GPU
    python -m benchmarks.gpu_check --allow-cpu --only technique  # the same on the CPU, fp32 (a check of this script)

Each config runs in its own process (a fresh Accelerator and CUDA memory counter), with `report_to: none`.
"""

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from svu.modeling_svu.tasks import TASK_NAMES

from .common import run_child

CONFIGS = Path(__file__).resolve().parents[1] / "train" / "configs"
CACHE_BUILDERS = ("build_pooled_cache", "build_frame_cache")


@contextlib.contextmanager
def recording_cache_builds(devices: list):
    """Record the device of the model each stage-1 cache build is given, wherever the training script imports the
    builders from (`svu.train.feature_cache`, or names imported into `svu.train.run`)."""
    import svu.train.feature_cache
    import svu.train.run

    patched = [(module, name, getattr(module, name)) for module in (svu.train.feature_cache, svu.train.run)
               for name in CACHE_BUILDERS if hasattr(module, name)]

    def recorded(build):
        def build_and_record(model, *args, **kwargs):
            devices.append(str(next(model.parameters()).device))
            return build(model, *args, **kwargs)
        return build_and_record

    for module, name, build in patched:
        setattr(module, name, recorded(build))
    try:
        yield
    finally:
        for module, name, build in patched:
            setattr(module, name, build)


def batch_device(batch) -> str:
    return next(str(value.device) for value in batch.values() if torch.is_tensor(value))


def synchronize():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def loader_samples_per_second(loader) -> float:
    """The training loader alone: every batch decoded, collated and moved to the device, no model."""
    synchronize()
    start, samples = time.perf_counter(), 0
    for batch in loader:
        samples += len(batch["row_index"])
    synchronize()
    return samples / (time.perf_counter() - start)


def measure(config: Path, mixed_precision: str) -> dict:
    """Train `config` for one epoch of each stage in this process; where everything ran and how fast."""
    from svu.train.config import load_config
    from svu.train.peft_variants import set_stage
    from svu.train.run import build_run, resume_or_start, train_epoch

    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(str(config), ["--output_dir", tmp, "--epochs", "2", "--stage1_epochs", "1",
                                        "--mixed_precision", json.dumps(mixed_precision), "--report_to", "none"])
        cache_devices = []
        with recording_cache_builds(cache_devices):
            run = build_run(cfg)
        stage_devices = {}

        def record_batch_device(module, args):  # returns None: the batch goes on unchanged
            stage_devices.setdefault(state.stage, batch_device(args[0]))

        run.accelerator.unwrap_model(run.module).register_forward_pre_hook(record_batch_device)
        state = resume_or_start(run, argparse.Namespace(resume=None))
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        stages = {}
        for epoch in range(cfg.epochs):
            state.stage = stage = cfg.stage_of_epoch(epoch)
            set_stage(run.model, stage, cfg.finetune, cfg.freeze_feature_encoder)
            cached = stage == 1 and "train_cached" in run.loaders
            synchronize()
            start = time.perf_counter()
            train_epoch(run, state, epoch, stage, cached)
            synchronize()
            stages[stage] = {"device": stage_devices.get(stage), "cached": cached,
                             "samples_per_second": len(run.data["train"]) / (time.perf_counter() - start)}
            state.epoch, state.step_in_epoch = epoch + 1, 0
        result = {
            "config": config.name, "mixed_precision": mixed_precision,
            "model": str(next(run.module.parameters()).device), "cache": cache_devices, "stages": stages,
            "loader_samples_per_second": loader_samples_per_second(run.loaders["train"]),
            "peak_gpu_memory_mib": torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None,
        }
        run.accelerator.end_training()
    return result


def precision() -> str:
    """bf16 on the GPU; on the CPU (`--allow-cpu`, a check of this script) full precision, as CPU training runs."""
    return "bf16" if torch.cuda.is_available() else "no"


def table(results: list) -> str:
    lines = ["| config | model | stage-1 cache built on | stage 1 ran on | stage 2 ran on | training samples/s "
             "(stage 1 / stage 2) | loader alone samples/s | peak GPU memory |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        stage1, stage2 = r["stages"]["1"], r["stages"]["2"]
        memory = "-" if r["peak_gpu_memory_mib"] is None else f"{r['peak_gpu_memory_mib']:.0f} MiB"
        lines.append(
            f"| {r['config']} | {r['model']} | {', '.join(sorted(set(r['cache']))) or 'no cache (frame-wise head)'} "
            f"| {stage1['device']}{' (cached)' if stage1['cached'] else ''} | {stage2['device']} "
            f"| {stage1['samples_per_second']:.1f} / {stage2['samples_per_second']:.1f} "
            f"| {r['loader_samples_per_second']:.1f} | {memory} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=TASK_NAMES, help="Only the demo config of this task (repeatable).")
    parser.add_argument("--allow-cpu", action="store_true", help="Without CUDA, measure on the CPU instead of stopping.")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # one config, measured in this process
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(Path(args.child), precision())))
        return 0
    if not torch.cuda.is_available() and not args.allow_cpu:
        print(f"gpu_check: no CUDA GPU on this machine (torch {torch.__version__}); nothing to check.")
        return 0
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU (--allow-cpu)"
    results = []
    for task in args.only or TASK_NAMES:
        print(f"== demo_{task}.yaml ...", file=sys.stderr, flush=True)
        results.append(run_child("gpu_check", str(CONFIGS / f"demo_{task}.yaml")))
    print(f"Device: {device}, torch {torch.__version__}, mixed precision {precision()}, one epoch per stage\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
