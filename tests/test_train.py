"""`train/run.py` for real on the synthetic corpus (all three tasks): `accelerate launch` in subprocesses (the demo
configs, two processes), and in this process (`in_process`) for resume, caching, LoRA and a NaN loss.

Runs are module-scoped and shared between assertions; data is prepared once per task. The demo configs as they
are (technique, transcription) are the session's demo runs (`demo_runs.demo_run`), read by their tests in
`DEMO_GROUP`. Bars (stated, not tuned
per run): the technique demo reaches test macro-F1 >= 2x chance (6 classes: >= 0.333); singer ID (LoRA) test
accuracy >= 2x chance; transcription voicing accuracy >= the all-majority baseline + 0.05 and COn F1 >= 0.3.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from demo_runs import DEMO_GROUP, demo_run
from in_process import train

REPO = Path(__file__).resolve().parents[1]
RUN = str(REPO / "train" / "run.py")
CONFIGS = REPO / "train" / "configs"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
       "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}

pytestmark = pytest.mark.timeout(600)


def launch(*args, processes=1, check=True):
    if processes == 1:
        cmd = ["accelerate", "launch", "--cpu", "--num_processes", "1", "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", RUN, *args]
    else:
        cmd = ["accelerate", "launch", "--multi_gpu", "--num_processes", str(processes), "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", RUN, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV, cwd=REPO)
    if check and proc.returncode != 0:
        raise AssertionError(f"run failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """Prepared synthetic data per task (the same options as the demo configs)."""
    from svu.dataset_scripts.prepare import prepare

    root = tmp_path_factory.mktemp("data")
    options = {"technique": {"clips_per_class": 2}, "singer_id": {}, "transcription": {}}
    for task, opts in options.items():
        prepare("synthetic", root / task, seed=0, task=task, **opts)
    return root


def trainable_log(run_dir):
    return [json.loads(line) for line in (Path(run_dir) / "trainable_params.jsonl").read_text().splitlines()]


def last_checkpoint(run_dir):
    return sorted((Path(run_dir) / "checkpoints").glob("checkpoint-*"))[-1]


def epoch_stages(run_dir):
    state = json.loads((last_checkpoint(run_dir) / "training_state.json").read_text())
    return [h["stage"] for h in state["history"]]


# ---------------------------------------------------------------- technique: the demo config (the main job)


@pytest.fixture(scope="module")
def technique_demo(tmp_path_factory):
    """(output_dir, the run: .stdout, .data) of `train/configs/demo_technique.yaml`."""
    run = demo_run("technique", tmp_path_factory)
    return run.out, run


@pytest.mark.xdist_group(DEMO_GROUP)
def test_demo_ends_with_table_and_repo_path(technique_demo):
    out, proc = technique_demo
    assert "macro_f1" in proc.stdout and "Hub-ready model folder:" in proc.stdout
    assert proc.stdout.strip().endswith(str((out / "repo").resolve()))


@pytest.mark.xdist_group(DEMO_GROUP)
def test_technique_stage_switch_and_trainable_sets(technique_demo):
    out, _ = technique_demo
    cfg = yaml.safe_load((CONFIGS / "demo_technique.yaml").read_text())
    stages = epoch_stages(out)
    assert stages == [1] * cfg["stage1_epochs"] + [2] * (cfg["epochs"] - cfg["stage1_epochs"])
    log = trainable_log(out)
    assert [entry["stage"] for entry in log] == [1, 2]
    assert log[0]["names"] == ["head.bias", "head.weight", "layer_sum.weight"]
    stage2 = set(log[1]["names"])
    assert {"head.bias", "head.weight", "layer_sum.weight"} <= stage2
    assert any(n.startswith("backbone.encoder.layers.") for n in stage2)
    assert not any(n.startswith("backbone.feature_extractor.") for n in stage2)  # CNN stays frozen


@pytest.mark.xdist_group(DEMO_GROUP)
def test_technique_demo_beats_chance(technique_demo):
    out, _ = technique_demo
    metrics = json.loads((out / "metrics.json").read_text())
    chance = 1 / 6
    assert metrics["test"]["macro_f1"] >= 2 * chance, metrics["test"]
    assert metrics["test"]["num_examples"] == metrics["test_split_size"] == metrics["test"]["num_unique_examples"]


@pytest.mark.xdist_group(DEMO_GROUP)
def test_model_card_yaml_and_model_index_match_metrics(technique_demo):
    out, _ = technique_demo
    repo = out / "repo"
    metrics = json.loads((repo / "metrics.json").read_text())
    text = (repo / "README.md").read_text()
    assert text.startswith("---\n")
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["library_name"] == "transformers" and meta["pipeline_tag"] == "audio-classification"
    assert {"svu", "technique", "wav2vec2"} <= set(meta["tags"]) and meta["datasets"] == ["synthetic"]
    assert meta["widget"] and all((repo / w["src"]).is_file() for w in meta["widget"])
    reported = {m["name"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    assert reported["Macro F1 (chunk)"] == metrics["test"]["macro_f1"]
    assert reported["Top-3 accuracy (chunk)"] == metrics["test"]["top3_accuracy"]
    assert len(reported) == 5
    assert "![Learnt layer weights](layer_weights.png)" in text and (repo / "layer_weights.png").stat().st_size > 1000
    assert "56.1" in text  # the paper's W2V2 macro-F1, for reference
    # the default export is native (transformers' own class) with an auto_map to SVU's class and its code
    for name in ("config.json", "model.safetensors", "preprocessor_config.json", "handler.py", "modeling_svu.py"):
        assert (repo / name).is_file(), name
    config = json.loads((repo / "config.json").read_text())
    assert config["architectures"] == ["Wav2Vec2ForSequenceClassification"]
    assert config["auto_map"]["AutoModel"] == "modeling_svu.SVUForTechniqueClassification"


@pytest.mark.xdist_group(DEMO_GROUP)
def test_demo_repo_keeps_the_first_promise_in_a_fresh_process(technique_demo, tmp_path):
    """`AutoModel` + remote code gives the SVU class, the native Auto class and pipeline transformers' class, all
    with the trained logits (transformers' class in this process is the reference: no SVU loading code in it)."""
    from test_default_export import CHILD, job, single_clip_inputs
    from test_remote_code import run_isolated
    from transformers import AutoModelForAudioClassification

    from svu.modeling_svu import SVUForTechniqueClassification
    from svu.train.native_export import svu_from_native

    repo = technique_demo[0] / "repo"
    audio = np.random.default_rng(0).uniform(-0.5, 0.5, 24000).astype(np.float32)
    np.save(tmp_path / "audio.npy", audio)
    expected = single_clip_inputs(svu_from_native(repo).eval(), tmp_path / "demo.npz", audio)
    native = AutoModelForAudioClassification.from_pretrained(repo).eval()
    with torch.no_grad():
        reference = native(**{k: torch.from_numpy(v) for k, v in np.load(tmp_path / "demo.npz").items()}).logits.numpy()
    np.testing.assert_allclose(expected, reference, rtol=0, atol=1e-5)
    jobs = [job(tmp_path, "demo", "AutoModel", repo, trust_remote_code=True),
            job(tmp_path, "demo", "AutoModelForAudioClassification", repo), job(tmp_path, "demo", "pipeline", repo)]
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    (tmp_path / "child.py").write_text(CHILD)
    run_isolated(tmp_path / "child.py", tmp_path / "jobs.json", tmp_path / "report.json", cwd=tmp_path,
                 hf_home=tmp_path / "hf_home")
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["repo_importable"] is False and report["repo_loaded_later"] is False
    svu_load, native_load, pipeline_load = (report[j["name"]] for j in jobs)
    assert svu_load["class"].startswith("transformers_modules.")
    assert svu_load["class"].endswith(f".modeling_svu.{SVUForTechniqueClassification.__name__}")
    assert native_load["class"] == pipeline_load["class"] == "transformers.models.wav2vec2.modeling_wav2vec2.Wav2Vec2ForSequenceClassification"
    for j in jobs[:2]:
        np.testing.assert_allclose(np.load(j["output"]), reference, rtol=0, atol=1e-5, err_msg=j["name"])
    probabilities = torch.softmax(torch.from_numpy(reference[0]), -1).tolist()
    labels = native.config.id2label
    assert {p["label"]: p["score"] for p in pipeline_load["predictions"]} == {
        labels[i]: pytest.approx(p, abs=1e-5) for i, p in enumerate(probabilities)}


@pytest.mark.xdist_group(DEMO_GROUP)
def test_push_to_hub_uploads_the_complete_repo(technique_demo, monkeypatch):
    from huggingface_hub import HfApi

    from svu.train.export import push_repo

    repo = technique_demo[0] / "repo"
    calls = {}
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: calls.setdefault("create", repo_id))
    monkeypatch.setattr(HfApi, "upload_folder", lambda self, **kw: calls.setdefault("upload", kw) and "commit-url")
    push_repo(repo, "someone/svu-demo")
    assert calls["create"] == "someone/svu-demo" and calls["upload"]["repo_id"] == "someone/svu-demo"
    pushed = Path(calls["upload"]["folder_path"])
    assert pushed == repo
    names = {p.name for p in pushed.iterdir()}
    assert {"README.md", "config.json", "model.safetensors", "handler.py", "preprocessor_config.json",
            "layer_weights.png", "metrics.json", "train_config.yaml"} <= names


@pytest.mark.xdist_group(DEMO_GROUP)
def test_push_to_hub_offline_is_one_clear_error(technique_demo, monkeypatch):
    from svu.train.export import push_repo

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SystemExit, match="push to someone/svu-demo failed .*the repo is at"):
        push_repo(technique_demo[0] / "repo", "someone/svu-demo")


# ---------------------------------------------------------------- resume, and cached vs uncached stage 1

SHORT = ["--epochs", "3", "--stage1_epochs", "1", "--lr_stage2", "1e-3", "--keep_checkpoints", "0",
         "--checkpoint_every_steps", "5"]


@pytest.fixture(scope="module")
def uninterrupted(prepared, tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    train("--output_dir", str(out), "--dataset.prepared_dir", str(prepared / "technique"), *SHORT)
    return out


def test_resume_mid_epoch_reaches_the_same_weights(uninterrupted, prepared, tmp_path):
    """120 train chunks / batch 16 = 8 steps per epoch: checkpoint 10 is step 2 of epoch 2 (stage 2, dropout on)."""
    resumed = tmp_path / "resumed"
    shutil.copytree(uninterrupted, resumed, ignore=shutil.ignore_patterns("repo", "logs"))
    state = json.loads((resumed / "checkpoints" / "checkpoint-00000010" / "training_state.json").read_text())
    assert (state["epoch"], state["step_in_epoch"], state["stage"]) == (1, 2, 2)
    for later in sorted((resumed / "checkpoints").glob("checkpoint-*")):
        if int(later.name.split("-")[1]) > 10:
            shutil.rmtree(later)
    # a partial checkpoint (as left by a crash during save) must be ignored by --resume
    shutil.copytree(uninterrupted / "checkpoints" / "checkpoint-00000024", resumed / "checkpoints" / ".tmp-checkpoint-00000024")
    (resumed / "checkpoints" / ".tmp-checkpoint-00000024" / "model.safetensors").write_bytes(b"partial")
    proc = train("--output_dir", str(resumed), "--dataset.prepared_dir", str(prepared / "technique"), *SHORT, "--resume")
    assert "resumed from" in proc.stdout and "checkpoint-00000010" in proc.stdout
    expected = load_file(str(uninterrupted / "checkpoints" / "checkpoint-00000024" / "model.safetensors"))
    got = load_file(str(resumed / "checkpoints" / "checkpoint-00000024" / "model.safetensors"))
    assert expected.keys() == got.keys()
    for name in expected:  # tolerance: 1e-6 absolute (same machine, same thread count: bitwise in practice)
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=1e-6, msg=name)


def test_cached_and_uncached_stage1_give_the_same_weights(uninterrupted, prepared, tmp_path):
    out = tmp_path / "uncached"
    train("--output_dir", str(out), "--dataset.prepared_dir", str(prepared / "technique"), *SHORT,
          "--epochs", "1", "--cache_stage1", "false")
    assert not (out / "feature_cache").exists()
    cached = load_file(str(uninterrupted / "checkpoints" / "checkpoint-00000008" / "model.safetensors"))
    uncached = load_file(str(out / "checkpoints" / "checkpoint-00000008" / "model.safetensors"))
    for name in cached:
        torch.testing.assert_close(uncached[name], cached[name], rtol=0, atol=1e-5, msg=name)
    assert not torch.equal(cached["model.layer_sum.weight"], torch.zeros_like(cached["model.layer_sum.weight"]))


# ---------------------------------------------------------------- singer ID with LoRA; 2 processes with IA3


@pytest.fixture(scope="module")
def singer_lora(prepared, tmp_path_factory):
    out = tmp_path_factory.mktemp("singer_lora")
    train("--config", str(CONFIGS / "demo_singer_id.yaml"), "--output_dir", str(out),
          "--dataset.prepared_dir", str(prepared / "singer_id"), "--finetune", "lora", "--epochs", "21")
    return out


def test_lora_trains_only_lora_layer_weights_and_head(singer_lora):
    log = trainable_log(singer_lora)
    assert [e["stage"] for e in log] == [1, 2]
    assert log[0]["names"] == ["head.modules_to_save.default.bias", "head.modules_to_save.default.weight",
                               "layer_sum.modules_to_save.default.weight"]
    stage2 = log[1]["names"]
    lora = [n for n in stage2 if ".lora_A." in n or ".lora_B." in n]
    assert len(lora) == 2 * 6 * 3  # A and B, 6 target modules, 3 layers
    assert sorted(set(stage2) - set(lora)) == log[0]["names"]
    metrics = json.loads((singer_lora / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 2 / 6, metrics["test"]


def test_lora_repo_reloads_merged_and_as_adapter_with_identical_logits(singer_lora):
    """In a fresh process (in-process registered classes would shadow the remote code)."""
    script = f"""
import torch
from transformers import AutoModel, AutoModelForAudioClassification
from peft import PeftModel
repo = {str(singer_lora / "repo")!r}
merged = AutoModelForAudioClassification.from_pretrained(repo).eval()  # native export: no remote code
base = AutoModel.from_pretrained(repo + "/peft_adapter/base_model", trust_remote_code=True)
adapter = PeftModel.from_pretrained(base, repo + "/peft_adapter").eval()
x = torch.randn(3, 16000 * 5, generator=torch.Generator().manual_seed(0))
with torch.no_grad():
    a, b = merged(x).logits, adapter(input_values=x).logits
assert type(merged).__name__ == "Wav2Vec2ForSequenceClassification", type(merged)
torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
print("max diff", (a - b).abs().max().item())
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=ENV, cwd="/")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "max diff" in proc.stdout


@pytest.fixture(scope="module")
def two_process_run(prepared, tmp_path_factory):
    out = tmp_path_factory.mktemp("two_process")
    proc = launch("--config", str(CONFIGS / "demo_singer_id.yaml"), "--output_dir", str(out),
                  "--dataset.prepared_dir", str(prepared / "singer_id"), "--finetune", "adapter",
                  "--epochs", "3", "--stage1_epochs", "2", "--batch_size", "4", "--eval_batch_size", "5",
                  processes=2)
    return out, proc


def test_two_processes_count_every_test_example_once(two_process_run):
    out, _ = two_process_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_processes"] == 2 and metrics["effective_batch_size"] == 8
    # 12 test chunks over 2 processes in batches of 5: the last batch is uneven and padded, then de-duplicated
    assert metrics["test"]["num_examples"] == metrics["test_split_size"] == metrics["test"]["num_unique_examples"] == 12
    assert metrics["validation"]["num_examples"] == metrics["validation"]["num_unique_examples"]
    log = trainable_log(out)
    assert [e["stage"] for e in log] == [1, 2]
    assert any("ia3_l" in n for n in log[1]["names"])
    assert epoch_stages(out) == [1, 1, 2]


# ---------------------------------------------------------------- transcription


@pytest.fixture(scope="module")
def transcription_demo(tmp_path_factory):
    return demo_run("transcription", tmp_path_factory)


@pytest.mark.xdist_group(DEMO_GROUP)
def test_transcription_stage_switch_and_beats_baseline(transcription_demo):
    from data_fixtures import chunk_targets
    from svu.dataset_scripts.prepare import load_prepared

    out = transcription_demo.out
    cfg = yaml.safe_load((CONFIGS / "demo_transcription.yaml").read_text())
    assert epoch_stages(out) == [1] * cfg["stage1_epochs"] + [2] * (cfg["epochs"] - cfg["stage1_epochs"])
    log = trainable_log(out)
    assert log[0]["names"] == ["head.bias", "head.weight", "layer_sum.weight"]
    metrics = json.loads((out / "metrics.json").read_text())
    data, _ = load_prepared(transcription_demo.data)
    targets = np.concatenate([chunk_targets(example) for example in data["test"]])
    silence = targets[targets[:, 0] != -100, 1]
    majority = max(silence.mean(), 1 - silence.mean())
    assert metrics["test"]["frame_voicing_accuracy"] >= majority + 0.05, (metrics["test"], majority)
    assert metrics["test"]["COn_f1"] >= 0.3, metrics["test"]
    assert metrics["test"]["num_songs"] >= 1 and metrics["test"]["num_examples"] == len(data["test"])
    card = yaml.safe_load((out / "repo" / "README.md").read_text().split("---\n")[1])
    reported = {m["name"]: m["value"] for m in card["model-index"][0]["results"][0]["metrics"]}
    assert reported["COnPOff F1"] == metrics["test"]["COnPOff_f1"]


# ---------------------------------------------------------------- bad input: one clear line, nothing trained


def run_script(*args):
    return subprocess.run([sys.executable, RUN, *args], capture_output=True, text=True, env=ENV, cwd=REPO)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--backbone", "tiny-bert"], "Unknown backbone family 'bert'"),
        (["--task", "karaoke"], "Unknown task 'karaoke'"),
        (["--learning_rate", "1"], "Unknown config key 'learning_rate'"),
        (["--dataset.corpus_dir", "x"], "Unknown config key 'dataset.corpus_dir'"),
        (["--finetune", "prefix"], "Unknown finetune 'prefix'"),
        (["--config", "nope.yaml"], "Config file 'nope.yaml' does not exist"),
        (["--epochs", "2", "--stage1_epochs", "3"], "stage1_epochs=3 must be between 0 and epochs=2"),
    ],
)
def test_bad_config_is_a_clear_value_error(args, message):
    from svu.train.config import load_config

    config = None
    if args[0] == "--config":
        config, args = args[1], args[2:]
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        load_config(config, args)


def test_bad_config_on_the_command_line_is_one_line(tmp_path):
    proc = run_script("--output_dir", str(tmp_path / "out"), "--backbone", "tiny-bert")
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: Unknown backbone family 'bert'"), proc.stderr
    assert not (tmp_path / "out").exists()


def test_dataset_missing_a_split_is_one_line(prepared, tmp_path):
    import datasets

    broken = tmp_path / "broken"
    shutil.copytree(prepared / "singer_id", broken)
    shutil.rmtree(broken / "validation")
    dict_json = broken / "dataset_dict.json"
    dict_json.write_text(json.dumps({"splits": ["train", "test"]}))
    assert set(datasets.load_from_disk(str(broken))) == {"train", "test"}
    proc = run_script("--config", str(CONFIGS / "demo_singer_id.yaml"), "--output_dir", str(tmp_path / "out"),
                      "--dataset.prepared_dir", str(broken))
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1].startswith("error: Prepared dataset") and "'validation'" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "out" / "checkpoints").exists()


@pytest.mark.xdist_group(DEMO_GROUP)
def test_label_set_not_matching_the_model_is_one_line(technique_demo, tmp_path_factory, tmp_path):
    """Continue from the technique repo (6 techniques) on singer-ID data (6 singers)."""
    singer_data = demo_run("singer_id", tmp_path_factory).data
    proc = run_script("--config", str(CONFIGS / "demo_singer_id.yaml"), "--output_dir", str(tmp_path / "out"),
                      "--dataset.prepared_dir", str(singer_data), "--backbone", str(technique_demo[0] / "repo"))
    assert proc.returncode != 0
    assert "does not match the dataset" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_nan_loss_stops_with_a_clear_message(prepared, tmp_path):
    proc = train("--output_dir", str(tmp_path), "--dataset.prepared_dir", str(prepared / "technique"),
                 "--epochs", "2", "--stage1_epochs", "2", "--lr_stage1", "1e37", check=False)
    assert proc.returncode != 0
    assert "error: loss is [nan]" in proc.stderr or "error: loss is [inf]" in proc.stderr, proc.stderr[-2000:]
    # The loss blows up in epoch 1, before the first (end-of-epoch) checkpoint: the message says so.
    assert "at epoch 1, step" in proc.stderr and "No checkpoint was written" in proc.stderr, proc.stderr[-2000:]
    from svu.train.checkpointing import complete_checkpoints

    assert "last good checkpoint" not in proc.stderr and complete_checkpoints(tmp_path) == []
