"""`train/run.py --streaming` on a local Parquet folder (`svu data prepare --parquet`): it trains; a run killed
at an epoch boundary and resumed ends with the weights of an unbroken run; two processes read disjoint shards
and stop each epoch together; the shard counts `svu data prepare` writes."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1",
       "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(REPO)}  # fmt: skip
LAUNCH = [sys.executable, "-m", "accelerate.commands.launch", "--num_machines", "1", "--mixed_precision", "no",
          "--dynamo_backend", "no"]  # fmt: skip
# The demo corpus: 120 training chunks / batch 16 = 8 steps per epoch; epochs 1-2 stage 1, epoch 3 stage 2.
RUN_ARGS = ["--config", str(REPO / "train" / "configs" / "demo_technique.yaml"), "--streaming", "true",
            "--epochs", "3", "--stage1_epochs", "2", "--lr_stage2", "1e-3", "--keep_checkpoints", "0",
            "--report_to", "none"]  # fmt: skip
KILL_AT = "checkpoint-00000016"  # the end of epoch 2
FINAL = "checkpoint-00000024"

pytestmark = pytest.mark.timeout(900)


def launch(parquet, output_dir, *extra, processes=1, env=None):
    mode = ["--multi_gpu", "--num_processes", str(processes)] if processes > 1 else ["--cpu", "--num_processes", "1"]
    command = [*LAUNCH, *mode, str(REPO / "train" / "run.py"), *RUN_ARGS, "--streaming_path", str(parquet),
               "--output_dir", str(output_dir), *extra]  # fmt: skip
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip


def finish(process, timeout=600):
    stdout, stderr = process.communicate(timeout=timeout)
    assert process.returncode == 0, stderr[-3000:]
    return stdout


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The demo corpus prepared with `--parquet` (one shard per split), and a copy with 16 training shards of 7
    or 8 rows (the processes of a 2-process run then hold different numbers of rows)."""
    from svu.dataset_scripts.hub import stage_for_hub

    root = tmp_path_factory.mktemp("streaming")
    env = {**ENV, "HF_DATASETS_CACHE": str(root / "cache")}
    result = subprocess.run([sys.executable, "-m", "svu", "data", "prepare", "synthetic", "--task", "technique",
                             "--option", "clips_per_class=2", "--output", str(root / "prepared"),
                             "--parquet", str(root / "parquet"), "-q"],
                            capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    stage_for_hub(root / "prepared", root / "parquet16", num_shards={"train": 16})
    return root, env


def test_parquet_folder_holds_shards_card_and_meta(corpus):
    root, _ = corpus
    assert sorted(p.name for p in (root / "parquet" / "data").iterdir()) == [
        "test-00000-of-00001.parquet", "train-00000-of-00001.parquet", "validation-00000-of-00001.parquet"]
    assert (root / "parquet" / "svu_meta.json").read_text() == (root / "prepared" / "svu_meta.json").read_text()
    assert (root / "parquet" / "README.md").is_file()
    assert len(list((root / "parquet16" / "data").glob("train-*-of-00016.parquet"))) == 16


def test_shard_count_is_a_multiple_of_common_world_sizes():
    from svu.dataset_scripts.hub import MAX_SHARD_BYTES, MIN_SHARD_BYTES, shard_count

    assert shard_count(17 * 2**20, 120) == 1  # the demo's training split: one shard
    assert shard_count(5 * MIN_SHARD_BYTES, 10_000) == 4  # largest divisor of 24 keeping 16 MiB shards
    assert shard_count(24 * MIN_SHARD_BYTES, 10_000) == 24
    assert shard_count(24 * MAX_SHARD_BYTES + 1, 10**6) == 48
    assert shard_count(100 * MIN_SHARD_BYTES, 3) == 3  # never more shards than rows
    assert shard_count(0, 0) == 1


class OneOfTwo:
    """The parts of an Accelerator `load_streaming` and `StreamingLoader` read, for process `rank` of 2; `gather`
    joins this process's value with what the other process is given to hold."""

    num_processes, device = 2, torch.device("cpu")

    def __init__(self, rank, other_batches=0):
        self.process_index, self.other_batches, self.calls = rank, other_batches, 0

    def main_process_first(self):
        return contextlib.nullcontext()

    def print(self, *args):
        pass

    def gather(self, present):
        self.calls += 1
        return torch.cat([present, torch.tensor([self.calls <= self.other_batches])])


def streamed_ids(cfg, rank, epoch):
    from svu.train.streaming import load_streaming

    data, _ = load_streaming(cfg, OneOfTwo(rank))
    rows = data["train"].select_columns(["clip_id", "chunk_index"])
    rows.set_epoch(epoch)
    return [(row["clip_id"], row["chunk_index"]) for row in rows]


def test_processes_stream_disjoint_shards_in_a_seeded_order_per_epoch(corpus, monkeypatch):
    import datasets

    from svu.train.config import load_config

    root, _ = corpus
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(root / "cache"))
    # datasets sleeps 5 s after each pass over a Parquet stream fed from several shards at a time, so that Arrow's
    # read threads end before the interpreter does (apache/arrow#45214); this process outlives them anyway
    monkeypatch.setattr(datasets.config, "SLEEP_TIME_ON_THREADS_SHUTDOWN", 0)
    cfg = load_config(None, ["--streaming", "true", "--streaming_path", str(root / "parquet16"), "--shuffle_buffer", "50"])
    first, second = streamed_ids(cfg, 0, epoch=0), streamed_ids(cfg, 1, epoch=0)
    assert not set(first) & set(second) and len(first) + len(second) == 120
    assert 56 <= len(first) <= 64  # 8 whole shards of 7 or 8 rows
    assert streamed_ids(cfg, 0, epoch=0) == first  # seeded: the same order again
    assert streamed_ids(cfg, 0, epoch=1) != first  # reseeded by the epoch


@pytest.mark.parametrize("other_batches", [2, 3, 5])
def test_every_process_stops_at_the_first_one_out_of_batches(corpus, other_batches):
    from svu.train.streaming import StreamingLoader

    class Rows:  # a stream of 3 batches of 2 for this process
        num_shards = 1

        def select_columns(self, columns):
            return self

        def set_epoch(self, epoch):
            pass

        def __iter__(self):
            return iter([{"x": i} for i in range(6)])

    accelerator = OneOfTwo(0, other_batches)
    loader = StreamingLoader(Rows(), ["x"], lambda items: torch.tensor([item["x"] for item in items]), 2, accelerator)
    ends = []
    for batch in loader:
        ends.append(loader.end_of_dataloader)
    assert len(ends) == min(3, other_batches) and ends[-1] and not any(ends[:-1])
    assert not loader.gradient_state.in_dataloader


@pytest.mark.parametrize("overrides, message", [
    (["--streaming", "true"], "streaming: true needs streaming_path"),
    (["--streaming_path", "x"], "streaming_path is read with streaming: true only"),
    (["--streaming", "true", "--streaming_path", "x", "--checkpoint_every_steps", "4"], "resumes at epoch boundaries"),
    (["--streaming", "true", "--streaming_path", "x", "--cache_stage1", "true"], "no stage-1 feature cache"),
])  # fmt: skip
def test_streaming_settings_that_cannot_work_are_one_error(overrides, message):
    from svu.train.config import load_config

    with pytest.raises(ValueError, match=message):
        load_config(None, overrides)


@pytest.fixture(scope="module")
def killed_and_unbroken(corpus):
    """Both runs at once: the first killed by SIGKILL once the checkpoint of epoch 2 exists."""
    root, env = corpus
    killed, unbroken = root / "killed", root / "unbroken"
    full = launch(root / "parquet", unbroken, env=env)
    victim = launch(root / "parquet", killed, env=env)
    deadline = time.time() + 600
    while not (killed / "checkpoints" / KILL_AT).is_dir():
        assert victim.poll() is None, f"the run ended before it was killed:\n{victim.stderr.read()[-3000:]}"
        assert time.time() < deadline, "no checkpoint of epoch 2 appeared"
        time.sleep(0.02)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait(timeout=60)
    finish(full)
    return killed, unbroken


def test_streaming_run_trains_and_writes_metrics(killed_and_unbroken):
    _, unbroken = killed_and_unbroken
    metrics = json.loads((unbroken / "metrics.json").read_text())
    assert metrics["test_split_size"] == 48 and metrics["test"]["num_examples"] == 48
    history = json.loads((unbroken / "checkpoints" / FINAL / "training_state.json").read_text())["history"]
    assert [entry["epoch"] for entry in history] == [0, 1, 2]
    assert (unbroken / "repo" / "config.json").is_file()


def test_killed_at_an_epoch_boundary_and_resumed_ends_with_the_unbroken_weights(killed_and_unbroken, corpus):
    from svu.train.checkpointing import complete_checkpoints, read_training_state

    killed, unbroken = killed_and_unbroken
    assert not (killed / "checkpoints" / FINAL).exists()
    newest = complete_checkpoints(killed)[-1]
    assert read_training_state(newest)["epoch"] == 2 and read_training_state(newest)["step_in_epoch"] == 0
    stdout = finish(launch(corpus[0] / "parquet", killed, "--resume", env=corpus[1]))
    assert f"resumed from {newest}" in stdout
    expected = load_file(str(unbroken / "checkpoints" / FINAL / "model.safetensors"))
    got = load_file(str(killed / "checkpoints" / FINAL / "model.safetensors"))
    assert expected.keys() == got.keys()
    # Tolerance 0: same machine and thread count, the (seed, epoch) stream order and the RNG restored.
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=0, msg=name)


def test_two_processes_stream_their_shares_and_train(corpus):
    """gloo on CPU, 16 shards of 7 or 8 rows: the processes' row counts differ and neither waits for the other."""
    root, env = corpus
    out = root / "two_processes"
    finish(launch(root / "parquet16", out, "--epochs", "2", "--stage1_epochs", "1", "--batch_size", "8",
                  processes=2, env=env))  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_processes"] == 2 and metrics["effective_batch_size"] == 16
    assert metrics["test"]["num_examples"] == 48
