"""Training faults, with real `accelerate launch --cpu train/run.py` subprocesses: a run killed by SIGKILL
mid-epoch and resumed ends with the same weights as an uninterrupted run; partial checkpoints are never
trusted; resume never unpickles code; a full disk or read-only output dir stops the run before training;
a NaN loss stops it with a clear message and keeps the last good checkpoint."""

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[1]
RUN = str(REPO / "train" / "run.py")
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1",
       "TQDM_DISABLE": "1", "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip
LAUNCH = ["accelerate", "launch", "--cpu", "--num_processes", "1", "--num_machines", "1", "--mixed_precision", "no",
          "--dynamo_backend", "no", RUN]  # fmt: skip
# 120 training chunks / batch 16 = 8 steps per epoch; epoch 1 = stage 1 (cached), epoch 2 = stage 2 (dropout on).
RUN_ARGS = ["--epochs", "2", "--stage1_epochs", "1", "--batch_size", "16", "--lr_stage2", "1e-3",
            "--checkpoint_every_steps", "2", "--keep_checkpoints", "0"]  # fmt: skip
KILL_AT = "checkpoint-00000012"  # global step 12 = step 4 of 8 in epoch 2
FINAL = "checkpoint-00000016"

pytestmark = pytest.mark.timeout(600)


def run_args(output_dir, prepared, *extra):
    return ["--output_dir", str(output_dir), "--dataset.prepared_dir", str(prepared), *RUN_ARGS, *extra]


def launch(*args):
    return subprocess.Popen([*LAUNCH, *args], cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)  # fmt: skip


def finish(process, timeout=400):
    stdout, stderr = process.communicate(timeout=timeout)
    return process.returncode, stdout, stderr


def weights(checkpoint: Path) -> dict:
    return load_file(str(checkpoint / "model.safetensors"))


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """The demo config's corpus (its dataset options), so that runs reuse this folder: two runs at once would
    otherwise both rebuild it, one deleting files the other reads."""
    from svu.dataset_scripts.prepare import prepare

    folder = tmp_path_factory.mktemp("data") / "technique"
    prepare("synthetic", folder, seed=0, task="technique", clips_per_class=2)
    return folder


@pytest.fixture(scope="module")
def killed_and_uninterrupted(prepared, tmp_path_factory):
    """Both runs at once (one thread each): the first killed by SIGKILL once checkpoint 12 exists."""
    killed_dir, full_dir = tmp_path_factory.mktemp("killed"), tmp_path_factory.mktemp("uninterrupted")
    uninterrupted = launch(*run_args(full_dir, prepared))
    victim = launch(*run_args(killed_dir, prepared))
    deadline = time.time() + 400
    while not (killed_dir / "checkpoints" / KILL_AT).is_dir():
        assert victim.poll() is None, f"the run ended before it was killed:\n{victim.stderr.read()[-3000:]}"
        assert time.time() < deadline, "no mid-epoch checkpoint appeared"
        time.sleep(0.02)
    os.killpg(victim.pid, signal.SIGKILL)  # the launcher and the training process, no clean-up
    victim.wait(timeout=60)
    assert victim.returncode == -signal.SIGKILL
    code, _, stderr = finish(uninterrupted)
    assert code == 0, stderr[-3000:]
    return killed_dir, full_dir


def test_killed_mid_epoch_and_resumed_ends_with_identical_weights(killed_and_uninterrupted, prepared):
    killed_dir, full_dir = killed_and_uninterrupted
    from svu.train.checkpointing import complete_checkpoints, read_training_state

    survivors = complete_checkpoints(killed_dir)
    assert not (killed_dir / "checkpoints" / FINAL).exists()  # really killed before the end
    state = read_training_state(survivors[-1])
    assert state["epoch"] == 1 and 0 < state["step_in_epoch"] < 8  # the newest checkpoint is mid-epoch
    # What a kill (or an interrupted copy) can leave behind, newer than every complete checkpoint:
    partial = killed_dir / "checkpoints" / ".tmp-checkpoint-00000090"
    shutil.copytree(survivors[-1], partial)
    (partial / "model.safetensors").write_bytes(b"half-written")
    (killed_dir / "checkpoints" / "checkpoint-00000091").mkdir()  # started, nothing in it yet
    copied = shutil.copytree(survivors[-1], killed_dir / "checkpoints" / "checkpoint-00000092")
    (copied / "training_state.json").unlink()  # interrupted copy: weights there, no state

    code, stdout, stderr = finish(launch(*run_args(killed_dir, prepared), "--resume"))
    assert code == 0, stderr[-3000:]
    assert f"resumed from {survivors[-1]}" in stdout
    expected, got = weights(full_dir / "checkpoints" / FINAL), weights(killed_dir / "checkpoints" / FINAL)
    assert expected.keys() == got.keys()
    # Tolerance 0: same machine, same thread count (1), the RNG and data order restored from the checkpoint.
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=0, msg=name)


def test_checkpoint_listing_trusts_only_complete_folders(tmp_path):
    from svu.train.checkpointing import complete_checkpoints, resolve_resume

    root = tmp_path / "checkpoints"
    for name in ("checkpoint-00000004", "checkpoint-00000008"):
        (root / name).mkdir(parents=True)
        (root / name / "training_state.json").write_text("{}")
    (root / ".tmp-checkpoint-00000012").mkdir()
    (root / "checkpoint-00000016").mkdir()  # no training_state.json
    (root / "checkpoint-notes").mkdir()  # not ours
    assert [p.name for p in complete_checkpoints(tmp_path)] == ["checkpoint-00000004", "checkpoint-00000008"]
    assert resolve_resume(tmp_path, "latest").name == "checkpoint-00000008"
    with pytest.raises(ValueError, match="not a complete checkpoint folder"):
        resolve_resume(tmp_path, str(root / ".tmp-checkpoint-00000012"))


class Payload:
    """Unpickling this runs code: it creates the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_resume_never_unpickles_code_from_a_checkpoint(killed_and_uninterrupted, prepared, tmp_path):
    """Resuming from a checkpoint someone else wrote: the run state is read from JSON, tensors and RNG states
    with `weights_only=True`; a booby-trapped pickle in the folder is never executed."""
    from accelerate.utils import load

    _, full_dir = killed_and_uninterrupted
    run_dir = shutil.copytree(full_dir, tmp_path / "run", ignore=shutil.ignore_patterns("repo", "logs"))
    checkpoint = run_dir / "checkpoints" / FINAL
    marker = tmp_path / "pwned"
    for name in ("custom_checkpoint_0.pkl",):
        (checkpoint / name).write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(pickle.UnpicklingError):  # accelerate's loader for optimizer/RNG/sampler states
        load(str(checkpoint / "custom_checkpoint_0.pkl"))
    assert not marker.exists()
    code, _, stderr = finish(launch(*run_args(run_dir, prepared), "--resume"))
    assert not marker.exists(), "resume executed code from a pickle in the checkpoint"
    # This script's checkpoints hold no pickled objects: a folder that does is refused in one line.
    assert code != 0 and f"error: cannot resume from {checkpoint}: " in stderr, stderr[-3000:]
    assert 'train/run.py", line' not in stderr


def run_script(*args):
    """train/run.py without the launcher: what happens before training is the same, and its stderr is ours."""
    return subprocess.run([sys.executable, RUN, *args], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)


@pytest.fixture
def tiny_disk(tmp_path):
    """A 1 MiB tmpfs (root only; else skipped: `test_free_space_check_threshold` covers the check)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def assert_stopped_before_training(result, output_dir, fragment):
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert lines[-1].startswith("error: output_dir") and fragment in lines[-1], lines[-1]
    assert not (output_dir / "checkpoints").exists()


def test_full_disk_is_detected_before_training(tiny_disk, prepared):
    output_dir = tiny_disk / "run"
    result = run_script(*run_args(output_dir, prepared))
    assert_stopped_before_training(result, output_dir, "has only 1 MiB free; need at least 200 MiB")


def test_read_only_output_dir_is_detected_before_training(tiny_disk, prepared):
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_disk)], check=True)
    output_dir = tiny_disk / "run"
    result = run_script(*run_args(output_dir, prepared))
    assert_stopped_before_training(result, output_dir, "is not writable: Read-only file system")


def test_free_space_check_threshold(tmp_path):
    from svu.train.checkpointing import check_output_dir

    check_output_dir(tmp_path / "ok", min_free_bytes=1)
    with pytest.raises(ValueError, match=r"has only \d+ MiB free; need at least 1048576 MiB for checkpoints"):
        check_output_dir(tmp_path / "big", min_free_bytes=2**40)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is not writable"):
        check_output_dir(tmp_path / "file" / "run")


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(prepared, tmp_path):
    """Stage 1 trains and checkpoints (step 8); a huge stage-2 lr then blows the weights up."""
    from svu.train.checkpointing import complete_checkpoints, read_training_state

    args = run_args(tmp_path, prepared, "--lr_stage2", "1e30", "--checkpoint_every_steps", "0")
    code, _, stderr = finish(launch(*args))
    assert code != 0
    assert "error: loss is [nan]" in stderr or "error: loss is [inf]" in stderr, stderr[-3000:]
    assert 'train/run.py", line' not in stderr  # a message, not a traceback of the training script
    (last,) = complete_checkpoints(tmp_path)
    assert f"The last good checkpoint is {last} (--resume continues from it)." in stderr, stderr[-3000:]
    assert last.name == "checkpoint-00000008" and read_training_state(last)["epoch"] == 1
    assert all(torch.isfinite(t).all() for t in weights(last).values())


def test_nan_loss_before_any_checkpoint_says_none_was_written(prepared, tmp_path):
    """Stage 2 from the first epoch with a huge lr (as above) blows the weights up within epoch 1, and
    checkpoints come only at epoch ends: none exists yet, so the message must not point at one."""
    from svu.train.checkpointing import complete_checkpoints

    args = run_args(tmp_path, prepared, "--stage1_epochs", "0", "--epochs", "1", "--lr_stage2", "1e30",
                    "--checkpoint_every_steps", "0")  # fmt: skip
    code, _, stderr = finish(launch(*args))
    assert code != 0
    assert "error: loss is [nan]" in stderr or "error: loss is [inf]" in stderr, stderr[-3000:]
    assert complete_checkpoints(tmp_path) == []
    assert f"No checkpoint was written ({tmp_path / 'checkpoints'} holds no complete one); nothing to resume." in stderr
    assert "last good checkpoint" not in stderr and 'train/run.py", line' not in stderr
