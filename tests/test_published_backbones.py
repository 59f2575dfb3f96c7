"""The paper's backbones as the Hub publishes them load offline, strictly, without running checkpoint code.

Fixtures: `tests/fixtures/published_backbones.py` writes tiny emulations of the six published repos (same config
keys, quirks and file sets) into an HF cache under a temporary HF_HOME; their MERT .py files touch a marker file
if anything ever imports them.
"""

import json
import os
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file, save_file
from transformers import HubertConfig, HubertModel

from fixtures.published_backbones import REMOTE_CODE_MARKER, REPOS, write_published_backbones, write_repo
from svu.modeling_svu import SVUForNoteTranscription, SVUForTechniqueClassification
from svu.modeling_svu.checkpoints import PUBLISHED, published_checkpoint

REPO = Path(__file__).resolve().parents[1]
RUN = str(REPO / "train" / "run.py")
LABELS = {0: "belt", 1: "vibrato"}
# hub id -> (alias, backbone class, sampling rate, normalize_audio, task-head prefix or None)
EXPECTED = {
    "facebook/wav2vec2-base-960h": ("wav2vec2", "Wav2Vec2Model", 16000, True, "wav2vec2."),
    "microsoft/wavlm-base-plus": ("wavlm", "WavLMModel", 16000, False, None),
    "m-a-p/MERT-v0-public": ("mert", "HubertModel", 16000, True, None),
    "m-a-p/MERT-v1-95M": ("mert-v1-95m", "HubertModel", 24000, True, None),
    "m-a-p/MERT-v1-330M": ("mert-v1-330m", "HubertModel", 24000, True, None),
    "m-a-p/music2vec-v1": ("music2vec", "Data2VecAudioModel", 16000, True, None),
}
DROPPED_LINE = "checkpoint tensors are not part of the backbone and were dropped: lm_head.bias, lm_head.weight"

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("hf_home")
    write_published_backbones(home)
    return home


def env_for(hf_home):
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
            "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1", "TOKENIZERS_PARALLELISM": "false"}


def snapshot(hf_home, hub_id) -> Path:
    repo = Path(hf_home) / "hub" / ("models--" + hub_id.replace("/", "--"))
    return repo / "snapshots" / (repo / "refs" / "main").read_text()


def published_tensors(folder: Path, head_prefix) -> dict:
    """What the backbone must hold, read independently of the loader: the repo's weights, head removed,
    legacy weight-norm names in transformers 5's parametrization names."""
    if (folder / "model.safetensors").exists():
        tensors = load_file(folder / "model.safetensors")
    else:
        tensors = torch.load(folder / "pytorch_model.bin", weights_only=True)
    if head_prefix:
        tensors = {k[len(head_prefix):]: v for k, v in tensors.items() if k.startswith(head_prefix)}
    return {
        k.replace(".weight_g", ".parametrizations.weight.original0").replace(
            ".weight_v", ".parametrizations.weight.original1"): v
        for k, v in tensors.items()
    }


def raises_one_line(error, match, fn, *args, **kwargs):
    with pytest.raises(error, match=match) as info:
        fn(*args, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


LOAD_SCRIPT = """
import json, sys
from pathlib import Path
from safetensors.torch import save_file
from svu.modeling_svu import SVUForTechniqueClassification
out, names = Path(sys.argv[1]), sys.argv[2:]
result = {}
for name in names:
    model = SVUForTechniqueClassification.from_backbone(name, id2label={0: "belt", 1: "vibrato"})
    result[name] = [type(model.backbone).__name__, model.config.sampling_rate, model.config.normalize_audio,
                    model.config.backbone_config.layerdrop]
    state = {k: v.contiguous() for k, v in model.backbone.state_dict().items()}
    save_file(state, out / (name.replace("/", "--") + ".safetensors"))
print(json.dumps(result))
"""


@pytest.fixture(scope="module")
def fresh_loads(hf_home, tmp_path_factory):
    """One fresh process (HF_HOME = the emulated cache, offline, no stdin) loads every repo by alias and Hub id."""
    out = tmp_path_factory.mktemp("fresh_loads")
    names = [name for hub_id, (alias, *_rest) in EXPECTED.items() for name in (alias, hub_id)]
    proc = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, str(out), *names], capture_output=True, text=True,
        env=env_for(hf_home), cwd=out, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


@pytest.mark.parametrize("hub_id", list(EXPECTED))
def test_alias_and_hub_id_load_offline_in_a_fresh_process(hf_home, fresh_loads, hub_id):
    out, results, stderr = fresh_loads
    alias, backbone, rate, normalize, head_prefix = EXPECTED[hub_id]
    expected = published_tensors(snapshot(hf_home, hub_id), head_prefix)
    for name in (alias, hub_id):
        assert results[name] == [backbone, rate, normalize, 0.0]
        loaded = load_file(out / (name.replace("/", "--") + ".safetensors"))
        assert sorted(loaded) == sorted(expected)
        for tensor_name, tensor in expected.items():
            assert torch.equal(loaded[tensor_name], tensor), tensor_name
    # the CTC head is reported in one line per load (alias + Hub id: two loads); nothing else is dropped
    reports = [line for line in stderr.splitlines() if line.startswith(f"{hub_id}: ") and "were dropped" in line]
    assert len(reports) == (2 if head_prefix else 0), stderr
    assert all(line == f"{hub_id}: 2 {DROPPED_LINE}" for line in reports)
    assert stderr.count("were dropped") == 2  # only wav2vec2-base-960h drops anything
    assert not (hf_home / REMOTE_CODE_MARKER).exists()


def test_the_remote_code_trap_would_fire(tmp_path):
    """The marker check above means something: importing the fixture's MERT code does leave the marker."""
    folder = write_repo(tmp_path, "m-a-p/MERT-v1-95M", {"modeling_MERT.py": None})
    with pytest.raises(RuntimeError, match="remote code of the checkpoint was executed"):
        runpy.run_path(str(folder / "modeling_MERT.py"))
    assert (tmp_path / REMOTE_CODE_MARKER).read_text() == "modeling_MERT.py\n"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """The demo technique data, one clip per class (the demo has 2): the runs prove the backbone loads and the
    repo is exported, not what the model learns."""
    from svu.dataset_scripts.prepare import prepare

    data = tmp_path_factory.mktemp("prepared") / "technique"
    prepare("synthetic", data, seed=0, task="technique", clips_per_class=1)
    return data


@pytest.mark.parametrize("alias", ["wav2vec2", "wavlm", "mert", "music2vec", "mert-v1-95m"])
def test_train_run_loads_each_alias_offline(hf_home, prepared, tmp_path_factory, alias):
    data = prepared
    out = tmp_path_factory.mktemp(f"run_{alias}")
    proc = subprocess.run(
        ["accelerate", "launch", "--cpu", "--num_processes", "1", "--num_machines", "1", "--mixed_precision", "no",
         "--dynamo_backend", "no", RUN, "--backbone", alias, "--epochs", "1", "--stage1_epochs", "1",
         "--dataset.prepared_dir", str(data), "--dataset.options.clips_per_class", "1", "--output_dir", str(out)],
        capture_output=True, text=True, env=env_for(hf_home), cwd=REPO, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    log = proc.stdout + proc.stderr
    assert log.count("were dropped") == (1 if alias == "wav2vec2" else 0), log[-3000:]
    saved = json.loads((out / "repo" / "config.json").read_text())
    rate = json.loads((out / "repo" / "preprocessor_config.json").read_text())["sampling_rate"]
    checkpoint = published_checkpoint(alias)
    # the repo is the default native export (the backbone's own *ForSequenceClassification) or SVU's remote code
    backbone = saved["backbone_config"] if saved["model_type"] == "svu" else saved
    assert backbone["model_type"] == checkpoint.family
    assert rate == checkpoint.sampling_rate  # MERT-v1 trains at 24 kHz
    # nothing in the saved repo points at the backbone checkpoint's classes or code: an auto_map names SVU's only,
    # whose code is in the repo
    for reference in (backbone.get("auto_map") or {}).values():
        module, _ = reference.split(".")
        assert module == "modeling_svu" and (out / "repo" / f"{module}.py").is_file(), reference
    assert not any(name in ("MERTModel", "Wav2Vec2ForCTC") for name in backbone.get("architectures") or [])
    assert (out / "metrics.json").exists()
    assert not (hf_home / REMOTE_CODE_MARKER).exists()


def hubert_from_the_same_tensors(folder: Path) -> HubertModel:
    """A plain HubertModel built by hand from the MERT repo's config keys and weights."""
    values = json.loads((folder / "config.json").read_text())
    mert_only = ("model_type", "architectures", "auto_map", "feature_extractor_cqt", "feature_extractor_cqt_bins",
                 "deepnorm", "attention_relax", "sample_rate")
    hubert = HubertModel(HubertConfig(**{k: v for k, v in values.items() if k not in mert_only}))
    hubert.load_state_dict(published_tensors(folder, None), strict=True)
    return hubert.eval()


@pytest.mark.parametrize("hub_id", ["m-a-p/MERT-v1-95M", "m-a-p/MERT-v1-330M"])
def test_converted_mert_gives_the_hidden_states_of_hubert_on_the_same_tensors(hf_home, hub_id):
    folder = snapshot(hf_home, hub_id)
    svu = SVUForNoteTranscription.from_backbone(str(folder)).eval()
    hubert = hubert_from_the_same_tensors(folder)
    torch.manual_seed(0)
    audio = torch.randn(2, 24000) * 0.1
    with torch.no_grad():
        ours = svu.backbone(audio, output_hidden_states=True).hidden_states
        reference = hubert(audio, output_hidden_states=True).hidden_states
    assert len(ours) == len(reference) == 3
    for mine, theirs in zip(ours, reference):
        assert torch.equal(mine, theirs)
    assert svu.config.sampling_rate == 24000 and svu.config.frame_seconds == 320 / 24000


def test_attention_relax_is_the_same_softmax():
    """MERT's `attention_relax` (r): softmax((s/r - max(s/r)) * r) equals softmax(s), on random scores of every
    scale, masked positions (large negative additive mask) included."""
    torch.manual_seed(0)
    scores = torch.randn(4, 2, 50, 50, dtype=torch.float64) * torch.tensor([1.0, 10.0, 100.0, 1000.0]).view(4, 1, 1, 1)
    scores[..., 40:] += torch.finfo(torch.float64).min / 2  # padded keys
    for relax in (32.0, 2.0, 0.5):
        relaxed = scores / relax
        rewritten = torch.softmax((relaxed - relaxed.amax(dim=-1, keepdim=True)) * relax, dim=-1)
        torch.testing.assert_close(rewritten, torch.softmax(scores, dim=-1), rtol=1e-12, atol=1e-12)
    single = scores.float()
    relaxed = single / 32.0
    rewritten = torch.softmax((relaxed - relaxed.amax(dim=-1, keepdim=True)) * 32.0, dim=-1)
    torch.testing.assert_close(rewritten, torch.softmax(single, dim=-1), rtol=1e-5, atol=1e-6)


# MERTConfig.__init__ defaults, read in cannam/mert-vamp-plugin configuration_MERT.py (MERT-specific keys left out).
MERT_DEFAULTS = {
    "vocab_size": 32, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
    "hidden_act": "gelu", "hidden_dropout": 0.1, "activation_dropout": 0.1, "attention_dropout": 0.1,
    "feat_proj_layer_norm": True, "feat_proj_dropout": 0.0, "final_dropout": 0.1, "layerdrop": 0.1,
    "initializer_range": 0.02, "layer_norm_eps": 1e-5, "feat_extract_norm": "group", "feat_extract_activation": "gelu",
    "conv_dim": [512] * 7, "conv_stride": [5, 2, 2, 2, 2, 2, 2], "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
    "conv_bias": False, "conv_pos_batch_norm": False, "num_conv_pos_embeddings": 128,
    "num_conv_pos_embedding_groups": 16, "do_stable_layer_norm": False, "apply_spec_augment": True,
    "mask_time_prob": 0.05, "mask_time_length": 10, "mask_time_min_masks": 2, "mask_feature_prob": 0.0,
    "mask_feature_length": 10, "mask_feature_min_masks": 0, "use_weighted_layer_sum": False,
    "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2,
}


def test_keys_a_mert_config_leaves_out_mean_the_same_in_hubert_config():
    """The loader builds a HubertConfig from a MERT config.json: a missing key must default the same way."""
    hubert = HubertConfig()
    for key, value in MERT_DEFAULTS.items():
        ours = getattr(hubert, key)
        assert (list(ours) if isinstance(ours, tuple) else ours) == value, key


def local_copy(hf_home, tmp_path, hub_id, **config_changes) -> Path:
    folder = tmp_path / hub_id.replace("/", "--")
    shutil.copytree(snapshot(hf_home, hub_id), folder)
    if config_changes:
        values = json.loads((folder / "config.json").read_text())
        values.update(config_changes)
        (folder / "config.json").write_text(json.dumps(values))
    return folder


@pytest.mark.parametrize("key", ["deepnorm", "feature_extractor_cqt"])
def test_mert_variants_that_compute_differently_are_one_line(hf_home, tmp_path, key):
    folder = local_copy(hf_home, tmp_path, "m-a-p/MERT-v1-95M", **{key: True})
    message = raises_one_line(ValueError, rf"config.json sets {key}: true", SVUForTechniqueClassification.from_backbone,
                              str(folder), id2label=LABELS)
    assert str(folder) in message and f"{key}: false" in message


def test_deepnorm_checkpoint_stops_train_run_in_one_line(hf_home, prepared, tmp_path):
    folder = local_copy(hf_home, tmp_path, "m-a-p/MERT-v1-95M", deepnorm=True)
    proc = subprocess.run([sys.executable, RUN, "--backbone", str(folder), "--output_dir", str(tmp_path / "run"),
                           "--dataset.prepared_dir", str(prepared), "--dataset.options.clips_per_class", "1"],
                          capture_output=True, text=True, env=env_for(hf_home), cwd=REPO, stdin=subprocess.DEVNULL)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: ") and "deepnorm: true" in errors[0], proc.stderr


def test_music2vec_is_sanitised_in_memory_and_uses_data2vec_audio_settings(hf_home):
    folder = snapshot(hf_home, "m-a-p/music2vec-v1")
    before = (folder / "config.json").read_bytes()
    assert not (folder / "preprocessor_config.json").exists()
    model = SVUForTechniqueClassification.from_backbone(str(folder), id2label=LABELS)
    assert (folder / "config.json").read_bytes() == before
    assert isinstance(json.loads(before)["vocab_size"], str)
    assert model.config.normalize_audio is True and model.config.sampling_rate == 16000
    assert model.feature_extractor().return_attention_mask is True
    assert isinstance(model.config.backbone_config.vocab_size, int)


def test_safetensors_with_parametrization_names_loads_like_the_bin(hf_home, tmp_path):
    folder = local_copy(hf_home, tmp_path, "m-a-p/MERT-v0-public")
    tensors = published_tensors(folder, None)
    save_file({k: v.contiguous() for k, v in tensors.items()}, folder / "model.safetensors")
    (folder / "pytorch_model.bin").unlink()
    from_safetensors = SVUForTechniqueClassification.from_backbone(str(folder), id2label=LABELS)
    from_bin = SVUForTechniqueClassification.from_backbone(str(snapshot(hf_home, "m-a-p/MERT-v0-public")),
                                                           id2label=LABELS)
    for (name, a), (_, b) in zip(from_safetensors.backbone.state_dict().items(), from_bin.backbone.state_dict().items()):
        assert torch.equal(a, b), name


def rewrite_weights(folder: Path, change):
    tensors = torch.load(folder / "pytorch_model.bin", weights_only=True)
    change(tensors)
    torch.save(tensors, folder / "pytorch_model.bin")


def test_weights_that_do_not_fit_are_one_line(hf_home, tmp_path):
    hub_id = "microsoft/wavlm-base-plus"
    cases = [
        (lambda t: t.pop("encoder.layers.1.attention.k_proj.weight"), r"1 backbone parameters missing .*k_proj"),
        (lambda t: t.update(extra_tensor=torch.zeros(3)), r"1 checkpoint tensors the backbone has no place for \(extra_tensor\)"),
        (lambda t: t.update({"masked_spec_embed": torch.zeros(7)}), r"masked_spec_embed \[7\] \(module needs \[32\]\)"),
    ]
    for index, (change, match) in enumerate(cases):
        folder = local_copy(hf_home, tmp_path / str(index), hub_id)
        rewrite_weights(folder, change)
        message = raises_one_line(ValueError, match, SVUForTechniqueClassification.from_backbone, str(folder),
                                  id2label=LABELS)
        assert message.startswith(f"{folder}: pytorch_model.bin does not fit the wavlm backbone")


def test_files_that_cannot_be_read_are_one_line(hf_home, tmp_path):
    folder = local_copy(hf_home, tmp_path / "pickle", "m-a-p/MERT-v1-95M")
    torch.save({"weights": {"a": torch.zeros(1)}, "origin": Path("trainer")}, folder / "pytorch_model.bin")
    raises_one_line(ValueError, r"cannot read pytorch_model.bin as plain tensors .*convert it to model.safetensors",
                    SVUForTechniqueClassification.from_backbone, str(folder), id2label=LABELS)
    folder = local_copy(hf_home, tmp_path / "noweights", "m-a-p/MERT-v1-95M")
    (folder / "pytorch_model.bin").unlink()
    raises_one_line(OSError, r"no weights \(model.safetensors / .*pytorch_model.bin", SVUForTechniqueClassification.from_backbone,
                    str(folder), id2label=LABELS)
    folder = local_copy(hf_home, tmp_path / "bert", "microsoft/wavlm-base-plus", model_type="bert")
    message = raises_one_line(ValueError, r"model_type 'bert', not a backbone SVU supports; supported: wav2vec2, wavlm, "
                              r"hubert, data2vec-audio and MERT \(mert_model\)", SVUForTechniqueClassification.from_backbone,
                              str(folder), id2label=LABELS)
    assert "mert-v1-95m" in message
    raises_one_line(OSError, r"org/not-cached: config.json is neither on the Hub nor in the Hugging Face cache.*hf download",
                    SVUForTechniqueClassification.from_backbone, "org/not-cached", id2label=LABELS)
    raises_one_line(ValueError, r"Unknown backbone 'mert-v2': not a local folder, a known alias \(.*mert-v1-330m",
                    SVUForTechniqueClassification.from_backbone, "mert-v2", id2label=LABELS)
    raises_one_line(ValueError, r"Backbone folder './missing/folder' does not exist",
                    SVUForTechniqueClassification.from_backbone, "./missing/folder", id2label=LABELS)


def test_checkpoint_table_is_the_one_source_of_names():
    assert set(PUBLISHED) == set(REPOS) == set(EXPECTED)
    for hub_id, (alias, *_rest) in EXPECTED.items():
        assert published_checkpoint(alias).hub_id == hub_id == published_checkpoint(hub_id.upper()).hub_id
        assert published_checkpoint(alias).licence and published_checkpoint(alias).licence_source
    assert published_checkpoint("mert-v1-95m").sampling_rate == 24000
    assert published_checkpoint("wavlm").licence == "cc-by-sa-3.0"
    from svu.modeling_svu.backbones import FAMILIES
    from svu.modeling_svu.checkpoints import resolve_family_name

    assert resolve_family_name("mert-v1-330m") == "hubert" and resolve_family_name("music2vec") == "data2vec-audio"
    assert not any(hasattr(family, "default_checkpoint") or hasattr(family, "aliases") for family in FAMILIES.values())


def test_mert_v1_fixture_trains_the_demo_transcription_and_transcribes_a_44khz_file(hf_home, tmp_path):
    """The 24 kHz MERT-v1-95M repo as published: the demo transcription config trains on 16 kHz prepared data
    (resampled at collate time, 75 Hz targets), and `svu transcribe` reads a 44.1 kHz file at the model's rate."""
    out = tmp_path / "run"
    proc = subprocess.run(
        ["accelerate", "launch", "--cpu", "--num_processes", "1", "--num_machines", "1", "--mixed_precision", "no",
         "--dynamo_backend", "no", RUN, "--config", str(REPO / "train" / "configs" / "demo_transcription.yaml"),
         "--backbone", "mert-v1-95m", "--epochs", "1", "--stage1_epochs", "1", "--output_dir", str(out),
         "--dataset.options", "{task: transcription, num_songs: 4, song_seconds: 8.0}"],
        capture_output=True, text=True, env=env_for(hf_home), cwd=REPO, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    saved = json.loads((out / "repo" / "config.json").read_text())
    assert saved["sampling_rate"] == 24000 and saved["backbone_config"]["model_type"] == "hubert"
    rate = 44100
    t = np.arange(int(3.0 * rate)) / rate
    sf.write(tmp_path / "take44.wav", (0.4 * np.sin(2 * np.pi * 220.0 * t)).astype(np.float32), rate)
    seen = subprocess.run(
        [sys.executable, "-m", "svu", "transcribe", str(tmp_path / "take44.wav"), "--model", str(out / "repo"),
         "-o", str(tmp_path / "notes"), "--format", "json", "--save-posteriors", "-q"],
        capture_output=True, text=True, env=env_for(hf_home), cwd=tmp_path, stdin=subprocess.DEVNULL,
    )
    assert seen.returncode == 0, seen.stderr[-3000:]
    posteriors = np.load(tmp_path / "notes" / "take44.posteriors.npz")
    # 75 Hz frames over the 3 s file: the model ran at its own 24 kHz rate, not at 16 kHz (50 Hz)
    assert abs(float(posteriors["frame_seconds"]) - 320 / 24000) < 1e-9
    assert abs(len(posteriors["onset_prob"]) - 3.0 * 75) <= 2
    assert not (hf_home / REMOTE_CODE_MARKER).exists()
