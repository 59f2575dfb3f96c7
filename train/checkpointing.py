"""Run state, atomic checkpoints, and the output-folder checks done before any training."""

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

CHECKPOINT_PREFIX = "checkpoint-"
MIN_FREE_BYTES = 200 * 2**20


@dataclass
class TrainingState:
    """Where the run is; saved in every checkpoint as `training_state.json` (JSON, never a pickle)."""

    epoch: int = 0  # epoch in progress (or next to start)
    step_in_epoch: int = 0  # batches already done in `epoch` (optimizer steps x gradient_accumulation_steps)
    global_step: int = 0
    stage: int = 0  # 0 = not started
    best_metric: Optional[float] = None
    best_epoch: Optional[int] = None
    history: list = field(default_factory=list)  # one dict per finished epoch

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, state: dict):
        for key, value in state.items():
            setattr(self, key, value)


def checkpoint_root(output_dir) -> Path:
    return Path(output_dir) / "checkpoints"


def complete_checkpoints(output_dir) -> list:
    """Complete checkpoints, oldest first. A partial one (a hidden `.tmp-*` folder, or a folder without
    `training_state.json`) is never listed."""
    root = checkpoint_root(output_dir)
    if not root.is_dir():
        return []
    # training_state.json is written last, just before the rename: a folder without it is partial (or a copy
    # that was interrupted) and never trusted
    found = [
        p for p in root.iterdir()
        if p.name.startswith(CHECKPOINT_PREFIX) and p.name[len(CHECKPOINT_PREFIX):].isdigit()
        and (p / "training_state.json").is_file()
    ]
    return sorted(found, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX):]))


def non_finite_loss_message(losses: list, epoch: int, step: int, output_dir) -> str:
    """The stop message for a NaN/infinite loss: names a checkpoint only if a complete one exists."""
    found = complete_checkpoints(output_dir)
    if found:
        where = f"The last good checkpoint is {found[-1]} (--resume continues from it)."
    else:
        where = f"No checkpoint was written ({checkpoint_root(output_dir)} holds no complete one); nothing to resume."
    return f"error: loss is {losses} at epoch {epoch}, step {step}; stopped. {where}"


def resolve_resume(output_dir, resume: str) -> Path:
    """`resume` = "latest" (newest complete checkpoint of `output_dir`) or a checkpoint folder."""
    if resume == "latest":
        found = complete_checkpoints(output_dir)
        if not found:
            raise ValueError(f"--resume: no complete checkpoint in {checkpoint_root(output_dir)}.")
        return found[-1]
    path = Path(resume)
    if not (path / "training_state.json").is_file():
        raise ValueError(f"--resume {resume}: not a complete checkpoint folder (no training_state.json).")
    return path


def read_training_state(checkpoint: Path) -> dict:
    return json.loads((checkpoint / "training_state.json").read_text())


def save_checkpoint(accelerator, output_dir, state: TrainingState, config: dict, keep: int) -> Path:
    """`save_state` into a temporary folder, then rename it: a checkpoint folder exists only when complete."""
    root = checkpoint_root(output_dir)
    final = root / f"{CHECKPOINT_PREFIX}{state.global_step:08d}"
    tmp = root / f".tmp-{final.name}"
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / "training_state.json").write_text(json.dumps(state.state_dict(), indent=1))
        (tmp / "train_config.json").write_text(json.dumps(config, indent=1))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        for old in complete_checkpoints(output_dir)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def check_output_dir(output_dir, min_free_bytes: int = MIN_FREE_BYTES):
    """ValueError (one line) if `output_dir` cannot be created/written or has too little free space."""
    path = Path(output_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as err:
        raise ValueError(f"output_dir {str(path)!r} is not writable: {err.strerror or err}.") from None
    free = shutil.disk_usage(path).free
    if free < min_free_bytes:
        raise ValueError(
            f"output_dir {str(path)!r} has only {free / 2**20:.0f} MiB free; need at least "
            f"{min_free_bytes / 2**20:.0f} MiB for checkpoints."
        )
