"""`svu distill`: a demo teacher distilled into a smaller student on synthetic audio, through the command; an
unreadable file in the audio folder; a student of every task of the registry, its repo walked through every
interface in a fresh offline process; the teacher's outputs computed by two processes, as by one."""

import json
import shutil
import subprocess
import sys
import traceback
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import sung_tone
from demo_runs import DEMO_GROUP, ENV, REPO, demo_run
from in_process import svu
from test_remote_code import BLOCK_REPO, run_isolated
from test_task_dispatch import exported  # noqa: F401 -- a fixture: the teachers

from svu.modeling_svu import TASK_MODELS, TASKS
from svu.modeling_svu.backbones import FAMILIES, tiny_backbone_config

pytestmark = pytest.mark.xdist_group(DEMO_GROUP)
TEACHER_TASK = "technique"  # the cheapest demo (cached stage 1)


@pytest.fixture(scope="module")
def distilled(tmp_path_factory):
    """The technique demo model distilled into a `nano` student (1 layer x 32, against the teacher's 3 x 32) on its
    synthetic corpus' audio written as wav files, next to an unreadable file."""
    from svu.dataset_scripts.prepare import load_prepared

    run = demo_run(TEACHER_TASK, tmp_path_factory)
    data, _ = load_prepared(run.data)
    songs = tmp_path_factory.mktemp("songs")
    for split in data:
        for row, example in enumerate(data[split]):
            sf.write(songs / f"{split}_{row:03d}.wav", example["audio"]["array"], example["audio"]["sampling_rate"])
    (songs / "broken.wav").write_bytes(b"this is not audio")
    out = tmp_path_factory.mktemp("distill") / "student"
    proc = subprocess.run(
        [sys.executable, "-m", "svu", "distill", "--teacher", str(run.repo), "--audio", str(songs), "--student", "nano",
         "-o", str(out), "--cache-dir", str(out.parent / "cache"), "--epochs", "12", "--lr", "3e-3", "-q"],
        capture_output=True, text=True, env=ENV, cwd=REPO, timeout=600,
    )  # fmt: skip
    return run, songs, out, proc


def test_distilled_student_agrees_with_the_teacher_far_better_than_an_undistilled_one(distilled):
    run, _, out, proc = distilled
    assert (out / "metrics.json").is_file(), proc.stderr[-3000:]
    record = json.loads((out / "metrics.json").read_text())
    after, before = record["agreement"]["label_agreement"], record["agreement_undistilled"]["label_agreement"]
    print(f"label agreement with the teacher on {record['held_out_chunks']} held-out chunks: distilled {after:.3f}, "
          f"undistilled {before:.3f}; parameters {record['student_parameters']} vs {record['teacher_parameters']}")
    assert record["student_parameters"] < record["teacher_parameters"]
    assert record["held_out_chunks"] >= 5
    assert after >= 0.65 and after - before >= 0.25, (after, before)
    assert f"({record['headline']}): {after:.3f} (undistilled: {before:.3f})" in proc.stdout


def test_an_unreadable_file_is_named_and_the_run_goes_on(distilled):
    _, songs, out, proc = distilled
    assert proc.returncode == 1  # as the catalogue commands: a file failed
    assert f"svu distill: error: {songs / 'broken.wav'}: cannot decode audio" in proc.stderr
    assert "1 failed" in proc.stderr.splitlines()[-1] and "Traceback" not in proc.stderr
    record = json.loads((out / "metrics.json").read_text())
    assert [Path(f["input"]).name for f in record["files_failed"]] == ["broken.wav"]
    assert record["training_chunks"] > 0 and (out / "model.safetensors").is_file()


@pytest.fixture(scope="module")
def tones(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tones")
    for i in range(3):
        wave = np.concatenate([sung_tone(f0=180 + 40 * i + 35 * k, seconds=1.0, seed=3 * i + k) for k in range(2)])
        sf.write(folder / f"tone{i}.wav", wave, 16000)
    return folder


@pytest.fixture(scope="module")
def students(exported, tones, tmp_path_factory):
    """{task: (teacher repo, student repo, exit status, what the command printed)}: a tiny random teacher of each
    task of the registry, exported as `train/run.py` exports it, distilled by `svu distill` (in this process) into
    `nano`, its hidden states predicted too (DistilHuBERT). A command that raised has its traceback as status."""
    root, found = tmp_path_factory.mktemp("students"), {}
    for name, (_, teacher) in exported.items():
        out = root / name
        try:
            proc = svu("distill", "--teacher", teacher, "--audio", tones, "--student", "nano", "-o", out, "--cache-dir",
                       root / "cache", "--epochs", "4", "--lr", "3e-3", "--hidden-states", "-q")  # fmt: skip
            found[name] = (teacher, out, proc.returncode, proc.stdout + proc.stderr)
        except Exception:  # noqa: BLE001 -- the task's own tests fail with it, the others go on
            found[name] = (teacher, out, traceback.format_exc(), "")
    return found


def distilled_student(students, name):
    teacher, out, status, printed = students[name]
    assert status == 0, f"svu distill of the {name} teacher: {status}\n{printed[-3000:]}"
    return teacher, out, json.loads((out / "metrics.json").read_text())


@pytest.mark.parametrize("name", TASKS)
def test_every_task_distils_and_its_loss_goes_down(name, students):
    teacher, out, record = distilled_student(students, name)
    assert record["loss_history"][-1] < record["loss_history"][0]
    assert record["hidden_state_layers"] == [1, 2, 3]
    assert record["agreement"][record["headline"]] is not None or name == "transcription"  # a random teacher: no notes
    student = TASK_MODELS[name].from_pretrained(out)
    assert student.config.backbone_config.num_hidden_layers == 1
    assert student.config.id2label == TASK_MODELS[name].from_pretrained(teacher).config.id2label


def fastest_engine(verb: str) -> list:
    """`--engine onnx --int8` where `svu <verb>` has these options (its parser reads them), else none."""
    from svu.cli import build_parser

    options = ["--engine", "onnx", "--int8"]
    args, _ = build_parser(verb).parse_known_args([verb, "take.wav", "--model", "m", "-o", "out", *options])
    return options if getattr(args, "engine", None) == "onnx" and getattr(args, "int8", False) else []


# One fresh, offline process for every task's student: first as a Hub user has it (the repo's remote code only:
# AutoModel, the task's pipeline), then through the task's `svu` verb, from this clone. A task that fails is
# reported under its name and the others go on.
WALK = BLOCK_REPO + r"""
import contextlib, io, os, traceback
from pathlib import Path
import soundfile as sf, torch
from transformers import AutoModel, pipeline
jobs, clone = json.load(open(sys.argv[1])), sys.argv[3]
for job in jobs:
    found = report[job["task"]] = {}
    try:
        model = AutoModel.from_pretrained(job["repo"], trust_remote_code=True).eval()
        found["class"] = type(model).__name__
        with torch.no_grad():
            found["logits"] = model(torch.from_numpy(sf.read(job["wav"], dtype="float32")[0])[None]).logits[0].tolist()
        runner = pipeline(job["pipeline"], model=job["repo"], trust_remote_code=True)
        found["pipeline"] = [runner.task, runner(job["wav"])]
    except Exception:
        found["error"] = traceback.format_exc()
report["repo_loaded"] = any(m.partition(".")[0] in {"modeling_svu", "svu"} for m in sys.modules)
sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, BlockRepo)]
sys.path.insert(0, clone)
os.environ["XDG_CACHE_HOME"] = str(Path(sys.argv[2]).parent / "cache")  # ONNX engines exported now, not read back
import svu
from svu.cli import main
report["svu"] = svu.__file__
for job in jobs:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        try:
            status = main(job["command"])
        except BaseException:
            status = traceback.format_exc()
    out = Path(job["out"])
    report[job["task"]]["verb"] = {"status": status, "printed": printed.getvalue(),
                                   "written": sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())}
json.dump(report, open(sys.argv[2], "w"), default=str)
"""


@pytest.fixture(scope="module")
def walked(students, tones, tmp_path_factory):
    """What the fresh process (`WALK`) found of each task's student, a copy outside the clone: {task: {...}}."""
    root = tmp_path_factory.mktemp("walk")
    wav, jobs = sorted(tones.iterdir())[0], []
    for name, (_, out, status, _) in students.items():
        if status != 0:
            continue
        task, repo = TASKS[name], root / name
        shutil.copytree(out, repo)
        command = [task.cli_verb, str(wav), "--model", str(repo), "-o", str(root / "out" / name / "take.json"), "-q",
                   *fastest_engine(task.cli_verb)]  # fmt: skip
        jobs.append({"task": name, "repo": str(repo), "wav": str(wav), "pipeline": task.pipeline, "command": command,
                     "out": str(root / "out" / name)})
    script, jobs_file, report = root / "walk.py", root / "jobs.json", root / "report.json"
    script.write_text(WALK)
    jobs_file.write_text(json.dumps(jobs))
    run_isolated(script, jobs_file, report, REPO, cwd=root, hf_home=root / "hf")
    return {**json.loads(report.read_text()), "wav": wav}


@pytest.mark.parametrize("name", TASKS)
def test_student_repo_of_each_task_loads_offline_through_every_interface_and_names_its_teacher(name, students, walked):
    """The student repo `svu distill` wrote, in a fresh offline process (`WALK`): AutoModel with the repo's remote
    code (the logits of this clone's class), the task's pipeline and its `svu` verb on the fastest engine the verb
    has; the file set of its teacher's repo; a card naming the teacher."""
    teacher, out, _ = distilled_student(students, name)
    task, found = TASKS[name], walked[name]
    assert "error" not in found, found["error"]
    assert not walked["repo_importable"] and not walked["repo_loaded"]
    assert walked["svu"] == str(REPO / "svu" / "__init__.py")
    assert sorted(p.name for p in teacher.iterdir() if p.name != "train_config.yaml") == sorted(
        p.name for p in out.iterdir() if p.name != "distill_config.yaml")  # `train/run.py`'s file set
    card = (out / "README.md").read_text()
    assert f"base_model: {teacher}" in card and "nano" in card and "Agreement with the teacher" in card

    student = TASK_MODELS[name].from_pretrained(out).eval()
    assert found["class"] == task.model_class
    with torch.no_grad():
        expected = student(torch.from_numpy(sf.read(walked["wav"], dtype="float32")[0])[None]).logits[0]
    torch.testing.assert_close(torch.tensor(found["logits"]), expected, rtol=1e-4, atol=1e-4)
    ran, output = found["pipeline"]
    assert ran == task.pipeline and output
    if task.classes:
        assert {p["label"] for p in output} <= set(student.config.id2label.values())

    verb = found["verb"]
    assert verb["status"] == 0 and "Traceback" not in verb["printed"], verb
    assert verb["written"], verb
    if task.classes:
        assert any(label in verb["printed"] for label in student.config.id2label.values()), verb


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    """6 recordings of 2 to 4.5 s: for the 2 s chunks of the `exported` teachers, whole chunks and shorter ones."""
    folder = tmp_path_factory.mktemp("songs")
    for i in range(6):
        seconds = 1.0 + 0.25 * i
        wave = np.concatenate([sung_tone(f0=180 + 30 * i + 35 * k, seconds=seconds, seed=3 * i + k) for k in range(2)])
        sf.write(folder / f"song{i}.wav", wave, 16000)
    return folder


def test_two_processes_cache_the_one_process_teacher_outputs(exported, songs, tmp_path):
    """`accelerate launch --multi_gpu --num_processes 2 -m svu distill` (gloo on CPU; `--cpu --num_processes 2` would
    silently run one process): under the one-process run's fingerprint, each process runs the teacher on its share of
    the files (shard R holds files R, R + 2, ...: each file once), and the chunks and teacher outputs are the
    one-process run's; a one-process run then reads the two-process cache.

    The loss histories are not the same at the same `--batch-size`: it is per process (data parallel, as in
    train/run.py), so process r takes the loader's batches r, r + 2, ... of the same shuffle, whose union is the
    one-process batch of twice the size. Two processes at B step as one process at 2B, but for dropout, whose masks
    each process draws from its own generator: the histories agree to 1 %, where B against 2B in one process differ
    by several."""
    from svu.train.distill import read_shards

    def command(run, cache, batch_size):
        return ["distill", "--teacher", str(exported["technique"][1]), "--audio", str(songs), "--student", "nano",
                "--cache-dir", str(tmp_path / cache), "-o", str(tmp_path / run), "--epochs", "3", "--hidden-states",
                "-q", "--batch-size", str(batch_size)]  # fmt: skip

    assert svu(*command("one", "cache1", 4)).returncode == 0
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines",
              "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "svu"]  # fmt: skip
    proc = subprocess.run([*launch, *command("two", "cache2", 2)], capture_output=True, text=True,
                          env={**ENV, "TQDM_DISABLE": "1"}, cwd=tmp_path, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]

    (one_folder,), (folder,) = (tmp_path / "cache1").iterdir(), (tmp_path / "cache2").iterdir()
    assert folder.name == one_folder.name  # the fingerprint
    written = ["failures-0-of-2.json", "failures-1-of-2.json", "shard-0-of-2.npz", "shard-1-of-2.npz"]
    assert sorted(p.name for p in folder.iterdir()) == written
    shares = []
    for rank in range(2):
        with np.load(folder / f"shard-{rank}-of-2.npz") as shard:
            shares.append(sorted({int(r) for r in shard["recording"]}))
    assert shares == [[0, 2, 4], [1, 3, 5]]
    one, two = read_shards(one_folder, 1), read_shards(folder, 2)
    assert [(c["recording"], c["start"], len(c["wave"])) for c in two] == [
        (c["recording"], c["start"], len(c["wave"])) for c in one]
    assert len(one) == 10 and {len(c["wave"]) for c in one} == {16000, 24000, 32000}
    for a, b in zip(one, two):
        np.testing.assert_array_equal(b["wave"], a["wave"])
        np.testing.assert_allclose(b["logits"], a["logits"], rtol=0, atol=1e-5)
        np.testing.assert_allclose(b["hidden"].astype(np.float32), a["hidden"].astype(np.float32), rtol=0, atol=2e-3)

    records = [json.loads((tmp_path / run / "metrics.json").read_text()) for run in ("one", "two")]
    assert records[1]["training_chunks"] == records[0]["training_chunks"] == 9
    history = [record["loss_history"] for record in records]
    np.testing.assert_allclose(history[1], history[0], rtol=0.01)

    again = svu(*command("again", "cache2", 4), "--max-steps", "1")  # one process, the two-process cache
    assert again.returncode == 0 and f"teacher outputs from the cache {folder}" in again.stderr
    assert sorted(p.name for p in folder.iterdir()) == written  # nothing computed again


def test_a_prepared_dataset_with_labels_and_the_cache_reused(distilled, tmp_path, capsys):
    """The demo corpus itself as --audio: its test split is held out, its labels add the task loss; a second
    student of the same teacher and audio reads the teacher's outputs from the cache."""
    from svu.train.distill import DistillConfig, distill

    run = distilled[0]
    cfg = DistillConfig(teacher=str(run.repo), audio=str(run.data), student="nano", output_dir=str(tmp_path / "a"),
                        label_weight=1.0, max_steps=2, cache_dir=str(tmp_path / "cache"))
    first = distill(cfg)
    assert first["audio_kind"] == "prepared dataset" and first["held_out_chunks"] > 0 and first["label_weight"] == 1.0
    second = distill(DistillConfig(**{**cfg.__dict__, "output_dir": str(tmp_path / "b"), "label_weight": 0.0}))
    assert second["teacher_cache"] == first["teacher_cache"] and "from the cache" in capsys.readouterr().err


def test_bad_input_is_one_line(tmp_path, capsys):
    from svu.cli import main

    (tmp_path / "empty").mkdir()
    teacher = tmp_path / "teacher"
    TASK_MODELS["technique"].from_backbone("tiny-wav2vec2", id2label={0: "a", 1: "b"}).save_pretrained(teacher)
    cases = {
        ("--teacher", str(tmp_path / "missing"), "--audio", str(tmp_path / "empty")): "svu distill: cannot load model",
        ("--teacher", str(teacher), "--audio", str(tmp_path / "nowhere")): "svu distill: error: --audio",
        ("--teacher", str(teacher), "--audio", str(tmp_path / "empty")): "svu distill: error: --audio",
        ("--teacher", str(teacher), "--audio", str(tmp_path / "empty"), "--label-weight", "1"): "needs a prepared dataset",
    }
    for args, expected in cases.items():
        capsys.readouterr()
        try:
            status = main(["distill", *args, "-o", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"), "-q"])
        except SystemExit as exit:
            status, message = 2, str(exit.code)
        else:
            message = capsys.readouterr().err
        assert status == 2 and expected in message and len(message.strip().splitlines()) == 1, (args, message)


def silence_frames(task, logits, silent, config):
    """`logits` with the teacher's voicing decision set to silent on the `silent` frames (+-10 logits)."""
    from svu.modeling_svu.note_labels import logit_slices

    logits = logits.clone()
    if task == "transcription":
        logits[:, logit_slices(config.num_octaves)["silence"]] = torch.where(silent, 10.0, -10.0)[:, None]
    else:
        logits[:, -1] = torch.where(silent, -10.0, 10.0)
    return logits


def pitch_columns(task, config):
    from svu.modeling_svu.note_labels import logit_slices

    if task == "transcription":
        slices = logit_slices(config.num_octaves)
        return slice(slices["octave"].start, slices["pitch_class"].stop)
    return slice(0, config.num_pitch_bins)


@pytest.mark.parametrize("task", sorted(t for t in TASKS if TASKS[t].distillation.endswith(("NOTE_POSTERIORS", "PITCH_POSTERIORS"))))
def test_pitch_outputs_on_frames_the_teacher_calls_silent_cost_the_student_nothing(task):
    """The teacher's pitch outputs are only decoded (and were only trained) where it hears a voice: a student
    that copies the teacher's voicing but not its pitch on silent frames loses (almost) nothing by it, and a student
    that gets the pitch of voiced frames wrong does."""
    from svu.modeling_svu import SVUConfig

    config = SVUConfig(task=task)
    target = TASKS[task].hook("distillation")
    generator = torch.Generator().manual_seed(0)
    width = 20 if task == "transcription" else config.num_pitch_bins + 1
    silent = torch.arange(40) % 2 == 0
    teacher = silence_frames(task, 3 * torch.randn(40, width, generator=generator), silent, config)
    columns = pitch_columns(task, config)

    def loss_with_pitch_changed_on(frames):
        student = teacher.clone()
        student[frames, columns] = 3 * torch.randn(int(frames.sum()), columns.stop - columns.start, generator=generator)
        return target.soft_loss(student, teacher, target.temperature, config).item()

    exact = target.soft_loss(teacher, teacher, target.temperature, config).item()
    silent_cost, voiced_cost = loss_with_pitch_changed_on(silent) - exact, loss_with_pitch_changed_on(~silent) - exact
    assert voiced_cost > 0.5 and silent_cost < 1e-3 * voiced_cost, (silent_cost, voiced_cost)


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("task", TASKS)
def test_a_student_gives_the_teachers_frames_at_the_teachers_times(task, family):
    """Every task's student, of every family, has as many frames as its teacher, centred at the same times (so the
    teacher's outputs are its targets frame by frame); targets that carry pitch get the pitch CNN front end."""
    from svu.modeling_svu.pitch import frame_times
    from svu.train.distill import student_of

    torch.manual_seed(0)
    id2label = {0: "a", 1: "b"} if TASKS[task].classes else None
    teacher = TASK_MODELS[task].from_backbone(tiny_backbone_config(family), id2label=id2label).eval()
    student = student_of(teacher, "nano").eval()
    kernels = tuple(student.config.backbone_config.conv_kernel)
    pitch = TASKS[task].hook("distillation").pitch_front_end
    assert (len(kernels) == 3) == pitch and (kernels == tuple(teacher.config.backbone_config.conv_kernel)) != pitch
    lengths = [400, 401, 719, 720, 16000, 16123, 40001]
    with torch.no_grad():
        for samples in lengths:
            wave = torch.randn(1, samples)
            frames = [model.backbone(wave).last_hidden_state.shape[1] for model in (teacher, student)]
            assert frames[0] == frames[1] == teacher.config.num_frames(samples) == student.config.num_frames(samples)
    assert np.array_equal(frame_times(50, student.config), frame_times(50, teacher.config))
