"""A catalogue through every `svu` verb of the task registry (`Task.cli_verb`): folders searched recursively (a
file keeps its sub-folder in the outputs), `--glob`, `--file-list`; two processes under `accelerate launch` write the same
files as one; `--skip-existing` resumes a killed run (a half-written output is redone, never taken as done; a real `kill -9`
mid-run, then the rerun processes each remaining file once);
`manifest.jsonl` has a line per input in input order, and one summary line counts them. `--batch-files N` runs
the windows of N files in shared forward passes and writes the same files."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import in_process
from svu.catalogue import TEMPORARY
from svu.modeling_svu import TASK_MODELS, tiny_backbone_config
from svu.modeling_svu.tasks import TASKS

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
VERBS = {task.cli_verb: task for task in reversed(TASKS.values()) if task.cli_verb}  # a task of each verb


def sung(seconds: float, rate: int, f0: float) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * f0 * t) * (1 + 0.1 * np.sin(2 * np.pi * 5 * t))).astype(np.float32)


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    root = tmp_path_factory.mktemp("catalogue")
    folder = root / "songs"
    (folder / "a").mkdir(parents=True)
    (folder / "b").mkdir()
    sf.write(folder / "a" / "take.wav", np.stack([sung(2.5, 44100, 220)] * 2, axis=1), 44100)  # stereo 44.1 kHz
    sf.write(folder / "b" / "take.flac", sung(3.0, 22050, 330), 22050)  # same name, another folder
    sf.write(folder / "b" / "chorus.wav", sung(1.5, 16000, 262), 16000)
    (folder / "b" / "lyrics.txt").write_text("not audio")
    sf.write(root / "extra.wav", sung(2.0, 48000, 196), 48000)
    (root / "list.txt").write_text(f"# more files\n\n{root / 'extra.wav'}\n")
    return root


def saved_model(task, folder: Path) -> Path:
    torch.manual_seed(0)
    labels = {0: "one", 1: "two", 2: "three"} if task.classes else None
    model = TASK_MODELS[task.name].from_backbone(tiny_backbone_config("wav2vec2"), id2label=labels)
    model.eval().save_pretrained(folder)
    return folder


def svu(*args, launcher=None):
    """`svu` in this process (`in_process.svu`), or under `launcher` in a subprocess."""
    if launcher is None:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # as ENV's subprocesses: one thread sums in one order, and outputs are compared bytewise
        try:
            return in_process.svu(*args)
        finally:
            torch.set_num_threads(threads)
    return subprocess.run([*launcher, *map(str, args)], capture_output=True, text=True, env=ENV, timeout=600)


def outputs_of(verb: str, out: Path) -> Path:
    """Where a verb's results go: a folder of files per input, or (classify) one table."""
    return out / "results.csv" if verb == "classify" else out


def command(verb: str, model: Path, catalogue: Path, out: Path, *extra):
    target = ["-o", outputs_of(verb, out)] if verb == "classify" else ["-o", out]
    return [verb, catalogue / "songs", "--file-list", catalogue / "list.txt", "--model", model, *target, "-q", *extra]


def manifest_of(verb: str, out: Path) -> list:
    path = out / "results.manifest.jsonl" if verb == "classify" else out / "manifest.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def written(verb: str, out: Path) -> dict:
    """{relative path: bytes} of a run's outputs, the manifest left out (it names the output folder)."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and "manifest" not in p.name}  # fmt: skip


@pytest.fixture(scope="module", params=sorted(VERBS))
def one_process(request, catalogue, tmp_path_factory):
    verb = request.param
    model = saved_model(VERBS[verb], tmp_path_factory.mktemp(f"{verb}_model"))
    out = tmp_path_factory.mktemp(f"{verb}_one")
    result = svu(*command(verb, model, catalogue, out))
    assert result.returncode == 0, result.stderr[-3000:]
    return verb, model, out, result


def test_folders_keep_their_sub_folders_and_the_manifest_lists_every_input_in_order(one_process, catalogue):
    verb, _, out, result = one_process
    inputs = [catalogue / "songs" / name for name in ("a/take.wav", "b/chorus.wav", "b/take.flac")]
    inputs.append(catalogue / "extra.wav")  # the file list after the folder
    manifest = manifest_of(verb, out)
    assert [entry["input"] for entry in manifest] == [str(p) for p in inputs]  # lyrics.txt is not audio
    assert {entry["status"] for entry in manifest} == {"done"}
    assert [entry["duration"] for entry in manifest] == pytest.approx([2.5, 1.5, 3.0, 2.0], abs=0.01)
    assert f"svu {verb}: 4 files: 4 done, 0 skipped, 0 failed" in result.stderr
    if verb == "classify":
        rows = (out / "results.csv").read_text().splitlines()
        assert [row.split(",")[0] for row in rows[1:]] == [str(p) for p in inputs]
    else:
        names = {str(Path(o).relative_to(out)).split(".")[0] for entry in manifest for o in entry["outputs"]}
        assert names == {"a/take", "b/chorus", "b/take", "extra"}
        assert all(Path(o).is_file() for entry in manifest for o in entry["outputs"])


def test_glob_picks_the_files_of_a_folder(one_process, catalogue, tmp_path):
    verb, model, _, _ = one_process
    result = svu(verb, catalogue / "songs", "--glob", "take.*", "--model", model, "-o", outputs_of(verb, tmp_path), "-q")
    assert result.returncode == 0, result.stderr[-3000:]
    assert [Path(entry["input"]).name for entry in manifest_of(verb, tmp_path)] == ["take.wav", "take.flac"]


def test_two_inputs_of_one_name_the_second_is_named_and_the_first_written(one_process, catalogue, tmp_path):
    verb, model, _, _ = one_process
    a, b = catalogue / "songs" / "a" / "take.wav", catalogue / "songs" / "b" / "take.flac"
    result = svu(verb, a, b, "--model", model, "-o", outputs_of(verb, tmp_path), "-q")
    statuses = [entry["status"] for entry in manifest_of(verb, tmp_path)]
    if verb == "classify":  # one table for every input: no outputs named after the file
        assert result.returncode == 0 and statuses == ["done", "done"], result.stderr[-2000:]
    else:
        assert result.returncode == 1 and statuses == ["done", "failed"], result.stderr[-2000:]
        assert f"svu {verb}: error: {b}: outputs named take.* are those of {a} (same file name)" in result.stderr


def test_two_processes_write_the_files_one_process_writes(one_process, catalogue, tmp_path):
    verb, model, out, _ = one_process
    launcher = ("accelerate", "launch", "--multi_gpu", "--num_processes", "2", "-m", "svu")  # gloo on a CPU machine
    result = svu(*command(verb, model, catalogue, tmp_path), launcher=launcher)
    assert result.returncode == 0, result.stderr[-3000:]
    assert written(verb, tmp_path) == written(verb, out)
    assert result.stderr.count(f"svu {verb}: 4 files: 4 done") == 1  # one summary, from process 0
    one, two = manifest_of(verb, out), manifest_of(verb, tmp_path)
    assert [(e["input"], e["status"], e["duration"]) for e in two] == [(e["input"], e["status"], e["duration"]) for e in one]


def test_skip_existing_resumes_a_killed_run(one_process, catalogue, tmp_path):
    verb, model, out, _ = one_process
    shutil.copytree(out, tmp_path, dirs_exist_ok=True)
    before = written(verb, tmp_path)
    manifest = manifest_of(verb, tmp_path)
    redo = manifest[2]  # killed while writing this input's outputs
    if verb == "classify":  # its results live in the manifest: the killed run never wrote this line
        path = tmp_path / "results.manifest.jsonl"
        path.write_text("".join(json.dumps(e) + "\n" for e in manifest if e is not redo))
        (tmp_path / "results.csv").write_text("half a table")
    else:
        first = Path(redo["outputs"][0])
        first = tmp_path / first.relative_to(out)
        half = first.with_name(f"{first.stem}.partial-99999{first.suffix}")
        half.write_bytes(first.read_bytes()[: len(first.read_bytes()) // 2])
        first.unlink()
    result = svu(*command(verb, model, catalogue, tmp_path, "--skip-existing"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"svu {verb}: 4 files: 1 done, 3 skipped, 0 failed" in result.stderr
    statuses = {entry["input"]: entry["status"] for entry in manifest_of(verb, tmp_path)}
    assert statuses[redo["input"]] == "done" and sum(s == "skipped" for s in statuses.values()) == 3
    assert written(verb, tmp_path) == before  # the half-written file is gone, the output is whole again


def test_kill_9_mid_run_then_skip_existing_gives_the_outputs_of_one_unbroken_run(tmp_path):
    task = VERBS["transcribe"]
    model = saved_model(task, tmp_path / "model")
    songs = tmp_path / "songs"
    songs.mkdir()
    for index in range(24):
        sf.write(songs / f"song{index:02d}.wav", sung(6.0, 16000, 180 + 7 * index), 16000)
    unbroken, resumed = tmp_path / "unbroken", tmp_path / "resumed"
    args = ["-m", "svu", "transcribe", str(songs), "--model", str(model), "--format", "csv", "--format", "mid", "-q"]
    assert svu(*args[2:], "-o", unbroken).returncode == 0

    killed = subprocess.Popen([sys.executable, *args, "-o", str(resumed)], env=ENV, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 300
    while len(list(resumed.glob("*.mid"))) < 4 and time.monotonic() < deadline and killed.poll() is None:
        time.sleep(0.02)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    outputs = lambda suffix: {p.stem for p in resumed.glob(f"*{suffix}") if TEMPORARY not in p.name}  # noqa: E731
    complete = outputs(".mid") & outputs(".csv")  # a file being written when the kill landed is not an output
    assert 4 <= len(complete) < 24, f"kill landed at {len(complete)} files: not mid-run"
    assert not (resumed / "manifest.jsonl").exists()

    result = svu("transcribe", songs, "--model", model, "--format", "csv", "--format", "mid", "-q", "-o", resumed,
                 "--skip-existing")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = manifest_of("transcribe", resumed)
    skipped = {Path(e["input"]).stem for e in manifest if e["status"] == "skipped"}
    done = [Path(e["input"]).stem for e in manifest if e["status"] == "done"]
    assert skipped == complete and sorted(done) == sorted(set(done)) and len(skipped) + len(done) == 24
    assert f"svu transcribe: 24 files: {len(done)} done, {len(skipped)} skipped, 0 failed" in result.stderr
    assert not [p for p in resumed.iterdir() if ".partial-" in p.name]
    assert written("transcribe", resumed) == written("transcribe", unbroken)


def batch_files_verbs() -> list:
    """The verbs (of the registry's tasks) whose windows can be batched across files."""
    from svu.cli import build_parser

    verbs = []
    for verb in sorted(VERBS):
        parser = build_parser(verb)._subparsers._group_actions[0].choices[verb]
        if any("--batch-files" in action.option_strings for action in parser._actions):
            verbs.append(verb)
    return verbs


@pytest.mark.parametrize("verb", batch_files_verbs())
def test_windows_of_several_files_in_shared_batches_give_the_same_files(verb, catalogue, tmp_path):
    model = saved_model(VERBS[verb], tmp_path / "model")
    base = [verb, catalogue / "songs", "--file-list", catalogue / "list.txt", "--model", model, "-q", "--batch-size", "4"]
    one_at_a_time = svu(*base, "-o", tmp_path / "one")
    batched = svu(*base, "-o", tmp_path / "batched", "--batch-files", "3")
    assert one_at_a_time.returncode == 0 and batched.returncode == 0, batched.stderr[-3000:]
    assert written(verb, tmp_path / "batched") == written(verb, tmp_path / "one")
    assert f"svu {verb}: 4 files: 4 done" in batched.stderr


def test_shared_window_batches_run_the_files_waiting_together_and_return_each_its_own():
    from concurrent.futures import ThreadPoolExecutor

    from svu.window_batches import SharedWindowBatches

    calls = []

    def compute(inputs, mask):
        calls.append(len(inputs))
        return inputs.sum(dim=-1, keepdim=True) * 2

    batches = SharedWindowBatches(batch_size=8)
    engine = batches.engine(compute)
    requests = [torch.full((1 + index % 2, 400), float(index)) for index in range(5)]  # 1 or 2 windows per file

    all_reading = threading.Barrier(len(requests))

    def read(inputs):
        with batches.reading():
            all_reading.wait()  # five files being read: the batch waits for all of them, then runs once
            return engine(inputs, None)

    with ThreadPoolExecutor(len(requests)) as pool:
        results = list(pool.map(read, requests))
    assert calls == [7], calls  # 1 + 2 + 1 + 2 + 1 windows, fewer than a batch of 8
    for inputs, logits in zip(requests, results):
        torch.testing.assert_close(logits, inputs.sum(dim=-1, keepdim=True) * 2)
    shorter = torch.ones(1, 300)  # another window length is another batch
    with batches.reading():
        assert engine(shorter, None).item() == 600
