"""Demo runs shared by the whole test session: the user's path, once per task.

    run = demo_run("technique", tmp_path_factory)   # -> DemoRun(data, out): out/repo, out/metrics.json, ...

`svu data prepare synthetic --task T <the demo config's dataset options> -q`, then the real `accelerate launch
train/run.py --config train/configs/demo_<task>.yaml --dataset.prepared_dir DATA`, in subprocesses. Each task is
trained at most once per session, and only when a test asks for it. Under pytest-xdist the workers share one
folder and a file lock per task, so a demo is trained by one worker while the others wait for it.
Tests read these runs; a test that changes a run's files copies them first.
"""

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml
from filelock import FileLock

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "train" / "configs"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
       "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}  # fmt: skip
DONE = "demo_run.done"
# pytest-xdist group of the test files reading demo runs: one worker runs them one after another, so no worker
# sits waiting on another's training (`conftest.py` groups every other file by itself)
DEMO_GROUP = "demo_runs"


@dataclass(frozen=True)
class DemoRun:
    data: Path  # the prepared corpus (`svu data prepare`)
    out: Path  # the run's output_dir: repo/, metrics.json, best/, ...
    prepare_stderr: str  # what `svu data prepare -q` printed on stderr
    stdout: str  # what the training printed on stdout

    @property
    def repo(self) -> Path:
        return self.out / "repo"


def demo_config(task: str) -> Path:
    return CONFIGS / f"demo_{task}.yaml"


def prepare_command(task: str, data: Path) -> list:
    """`svu data prepare` of the demo config's corpus, with its options."""
    options = dict(yaml.safe_load(demo_config(task).read_text())["dataset"]["options"])
    options.pop("task", None)
    command = [sys.executable, "-m", "svu", "data", "prepare", "synthetic", "--task", task, "--output", str(data), "-q"]
    for key, value in options.items():
        command += ["--option", f"{key}={json.dumps(value)}"]
    return command


def train_command(task: str, data: Path, out: Path) -> list:
    return [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "1", "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no", str(REPO / "train" / "run.py"),
            "--config", str(demo_config(task)), "--output_dir", str(out), "--dataset.prepared_dir", str(data)]  # fmt: skip


def _run(command, what: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(command, capture_output=True, text=True, env={**ENV, "TQDM_DISABLE": "1"}, cwd=REPO,
                          timeout=1200)  # fmt: skip
    if proc.returncode != 0:
        raise AssertionError(f"{what} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def shared_root(tmp_path_factory) -> Path:
    """One folder for the whole session: the base temp folder, or its parent under pytest-xdist (one per worker)."""
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "svu_demo_runs"
    root.mkdir(parents=True, exist_ok=True)
    return root


def demo_run(task: str, tmp_path_factory) -> DemoRun:
    """The demo run of `task`, trained on first use (module docstring)."""
    root = shared_root(tmp_path_factory)
    data, out = root / task / "data", root / task / "run"
    with FileLock(str(root / f"{task}.lock")):
        if not (root / task / DONE).exists():
            prepared = _run(prepare_command(task, data), f"svu data prepare ({task})")
            trained = _run(train_command(task, data, out), f"demo training ({task})")
            (root / task / "prepare.stderr").write_text(prepared.stderr)
            (root / task / "train.stdout").write_text(trained.stdout)
            (root / task / DONE).write_text("")
    return DemoRun(data, out, (root / task / "prepare.stderr").read_text(), (root / task / "train.stdout").read_text())
