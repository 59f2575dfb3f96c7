"""`svu distill`: a demo teacher distilled into a smaller student on synthetic audio, through the command; the
student repo in a fresh offline process; an unreadable file in the audio folder; every task of the registry."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import sung_tone
from demo_runs import DEMO_GROUP, ENV, REPO, demo_run
from test_remote_code import BLOCK_REPO, run_isolated

from svu.modeling_svu import TASK_MODELS, TASKS

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


CHILD = BLOCK_REPO + r'''
import numpy as np
from transformers import AutoModel, pipeline
repo, wav = sys.argv[1], sys.argv[3]
model = AutoModel.from_pretrained(repo, trust_remote_code=True)
report["class"] = type(model).__name__
runner = pipeline(sys.argv[4], model=repo, trust_remote_code=True)
report["pipeline"] = runner(wav)
json.dump(report, open(sys.argv[2], "w"), default=str)
'''


def test_student_repo_loads_offline_through_every_interface_and_names_its_teacher(distilled, tmp_path):
    run, songs, out, _ = distilled
    task = TASKS[TEACHER_TASK]
    repo = tmp_path / "student"  # outside the clone
    shutil.copytree(out, repo)
    assert sorted(p.name for p in run.repo.iterdir() if p.name not in {"train_config.yaml"}) == sorted(
        p.name for p in repo.iterdir() if p.name not in {"distill_config.yaml"})  # train/run.py's file set
    card = (repo / "README.md").read_text()
    assert f"base_model: {run.repo}" in card and "nano" in card and "Agreement with the teacher" in card
    wav = next(songs.glob("test_*.wav"))
    script, report = tmp_path / "child.py", tmp_path / "report.json"
    script.write_text(CHILD)
    run_isolated(script, repo, report, wav, task.pipeline, cwd=tmp_path, hf_home=tmp_path / "hf")
    result = json.loads(report.read_text())
    assert not result["repo_importable"] and result["class"] == task.model_class
    labels = json.loads((repo / "config.json").read_text())["id2label"].values()
    assert {p["label"] for p in result["pipeline"]} <= set(labels)
    proc = subprocess.run([sys.executable, "-m", "svu", task.cli_verb, str(wav), "--model", str(repo), "--engine", "onnx",
                           "--int8", "-q"],
                          capture_output=True, text=True, env={**ENV, "HF_HUB_OFFLINE": "1"}, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert any(label in proc.stdout for label in labels)


@pytest.fixture(scope="module")
def tones(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tones")
    for i in range(3):
        wave = np.concatenate([sung_tone(f0=180 + 40 * i + 35 * k, seconds=1.0, seed=3 * i + k) for k in range(3)])
        sf.write(folder / f"tone{i}.wav", wave, 16000)
    return folder


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_task_distils_and_its_loss_goes_down(task, tones, tmp_path):
    """A random tiny teacher of each task of the registry, its hidden states predicted too (DistilHuBERT)."""
    from svu.train.distill import DistillConfig, distill

    torch.manual_seed(0)
    labels = {0: "a", 1: "b", 2: "c"} if TASKS[task].classes else None
    TASK_MODELS[task].from_backbone("tiny-wav2vec2", id2label=labels).save_pretrained(tmp_path / "teacher")
    cfg = DistillConfig(teacher=str(tmp_path / "teacher"), audio=str(tones), student="nano", output_dir=str(tmp_path / "s"),
                        epochs=4, lr=3e-3, hidden_states=True, cache_dir=str(tmp_path / "cache"))
    record = distill(cfg)
    assert record["loss_history"][-1] < record["loss_history"][0]
    assert record["hidden_state_layers"] == [1, 2, 3] and record["agreement"][record["headline"]] is not None or task == "transcription"
    student = TASK_MODELS[task].from_pretrained(tmp_path / "s")
    assert student.config.backbone_config.num_hidden_layers == 1 and student.config.id2label == TASK_MODELS[task].from_pretrained(tmp_path / "teacher").config.id2label
    assert f"base_model: {tmp_path / 'teacher'}" in (tmp_path / "s" / "README.md").read_text()


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
