"""Hub publishing: the native export (transformers' own classes, no remote code) in a fresh offline process,
batch-safe pipelines, the model cards' licences/citations/widgets, and the Inference Endpoints handler."""

import base64
import io
import json
import shutil

import datasets
import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from conftest import FAMILIES, sung_tone
from test_remote_code import SNAPSHOT, run_isolated
from transformers import pipeline

from svu.dataset_scripts.vocalset import BIBTEX as VOCALSET
from svu.model_cards.citations import MERT, MUSIC2VEC, PAPER, WAV2VEC2
from svu.modeling_svu import SVUForNoteTranscription, SVUForSingerID, SVUForTechniqueClassification, tiny_backbone_config
from svu.train.config import load_config
from svu.train.export import HANDLER, export_repo
from svu.train.native_export import native_classifier, save_native, svu_from_native

LABELS = {0: "belt", 1: "breathy", 2: "vibrato"}
# very different lengths: 0.4 s .. 6 s
CLIPS = [sung_tone(220, 6.0, seed=1), sung_tone(330, 0.4, seed=2), sung_tone(262, 2.5, seed=3), sung_tone(440, 1.1, seed=4)]


def tiny(cls, family, seed=0, **backbone_overrides):
    torch.manual_seed(seed)
    kwargs = {} if cls is SVUForNoteTranscription else {"id2label": LABELS}
    model = cls.from_backbone(tiny_backbone_config(family, **backbone_overrides), **kwargs)
    with torch.no_grad():
        model.layer_sum.weight.normal_()
        model.head.bias.normal_()
    return model.eval()


def scores(predictions):
    return {p["label"]: p["score"] for p in predictions}


# ------------------------------------------------------------------ native export, fresh offline process

CHILD = r'''
import base64, importlib.util, json, sys
import numpy as np
import torch
from transformers import AutoModelForAudioClassification, pipeline

report = {}
for job in json.load(open(sys.argv[1])):
    model = AutoModelForAudioClassification.from_pretrained(job["source"]).eval()   # no trust_remote_code
    inputs = {k: torch.from_numpy(v) for k, v in np.load(job["input"]).items()}
    with torch.no_grad():
        np.save(job["output"], model(**inputs).logits.numpy())
    classify = pipeline("audio-classification", model=job["source"])
    report[job["name"]] = {"class": f"{type(model).__module__}.{type(model).__name__}",
                           "pipeline": classify(np.load(job["tone"]), top_k=None)}
    # the Inference Endpoints handler, as an Endpoint runs it: no SVU installed
    spec = importlib.util.spec_from_file_location("handler", job["handler"])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    wav = open(job["wav"], "rb").read()
    report[job["name"]]["handler"] = module.EndpointHandler(job["source"])(
        {"inputs": base64.b64encode(wav).decode(), "parameters": {"top_k": 3}})
    report[job["name"]]["handler_pipeline"] = classify(wav, top_k=3)
report["modules"] = sorted(m for m in sys.modules if m.startswith(("transformers_modules", "modeling_svu")))
json.dump(report, open(sys.argv[2], "w"))
'''


@pytest.fixture(scope="module")
def native_repos(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("native")
    hf_home, jobs, expected = tmp / "hf_home", [], {}
    np.save(tmp / "tone.npy", CLIPS[2])
    sf.write(tmp / "clip.wav", CLIPS[3], 16000)
    for i, family in enumerate(FAMILIES):
        cls = SVUForTechniqueClassification if i % 2 else SVUForSingerID
        model = tiny(cls, family, seed=i)
        folder = tmp / "folders" / family
        save_native(model, folder)
        shutil.copy(HANDLER, folder / "handler.py")
        repo = hf_home / "hub" / f"models--svu-test--native-{family}"
        shutil.copytree(folder, repo / "snapshots" / SNAPSHOT)
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text(SNAPSHOT)
        inputs = model.feature_extractor()([CLIPS[1]], sampling_rate=16000, return_tensors="np")
        np.savez(tmp / f"{family}.npz", **inputs)
        with torch.no_grad():
            expected[family] = model(**{k: torch.from_numpy(v) for k, v in inputs.items()}).logits.numpy()
            tone = model.feature_extractor()(CLIPS[2], sampling_rate=16000, return_tensors="pt")
            expected[family + "/tone"] = torch.softmax(model(**tone).logits[0], -1).numpy()
        for via, source in (("dir", folder), ("repo", f"svu-test/native-{family}")):
            jobs.append({"name": f"{family}/{via}", "source": str(source), "input": str(tmp / f"{family}.npz"),
                         "output": str(tmp / f"{family}_{via}.npy"), "tone": str(tmp / "tone.npy"),
                         "handler": str(folder / "handler.py"), "wav": str(tmp / "clip.wav")})
    (tmp / "jobs.json").write_text(json.dumps(jobs))
    (tmp / "child.py").write_text(CHILD)
    run_isolated(tmp / "child.py", tmp / "jobs.json", tmp / "report.json", cwd=tmp, hf_home=hf_home)
    return {"jobs": jobs, "report": json.loads((tmp / "report.json").read_text()), "expected": expected}


@pytest.mark.parametrize("family", FAMILIES)
def test_native_export_loads_without_remote_code_and_gives_svu_logits(native_repos, family):
    report = native_repos["report"]
    assert report["modules"] == []  # no SVU code was imported, none was fetched as remote code
    expected_class = {"wav2vec2": "Wav2Vec2", "wavlm": "WavLM", "hubert": "Hubert", "data2vec-audio": "Data2VecAudio"}
    for via in ("dir", "repo"):
        job = next(j for j in native_repos["jobs"] if j["name"] == f"{family}/{via}")
        result = report[job["name"]]
        assert result["class"].startswith("transformers.models.")
        assert result["class"].endswith(f"{expected_class[family]}ForSequenceClassification")
        np.testing.assert_allclose(np.load(job["output"]), native_repos["expected"][family], rtol=0, atol=1e-5)
        probs = native_repos["expected"][family + "/tone"]
        assert {LABELS[i]: pytest.approx(float(p), abs=1e-5) for i, p in enumerate(probs)} == scores(result["pipeline"])
        assert len(result["handler"]) == 3 and result["handler"] == result["handler_pipeline"]


def test_native_export_round_trips_to_the_svu_model(tmp_path):
    model = tiny(SVUForTechniqueClassification, "wavlm")
    model.config.chunk_seconds = 3.0
    save_native(model, tmp_path)
    back = svu_from_native(tmp_path).eval()
    assert type(back) is SVUForTechniqueClassification and back.config.chunk_seconds == 3.0
    x = torch.from_numpy(CLIPS[3])[None]
    with torch.no_grad():
        torch.testing.assert_close(back(x).logits, model(x).logits, rtol=0, atol=1e-6)


def test_transcription_has_no_native_form():
    with pytest.raises(ValueError, match="transcription has no transformers class"):
        native_classifier(tiny(SVUForNoteTranscription, "hubert"))


# ------------------------------------------------------------------ batch == single through pipeline(batch_size=4)


def batch_vs_single(classify):
    batched = classify(CLIPS, batch_size=4, top_k=None)
    single = [classify(clip, top_k=None) for clip in CLIPS]
    return max(abs(scores(b)[k] - v) for b, s in zip(batched, single) for k, v in scores(s).items())


@pytest.mark.parametrize("family", FAMILIES)
def test_remote_code_pipeline_batch_equals_single(family):
    model = tiny(SVUForSingerID, family)
    classify = pipeline("audio-classification", model=model, feature_extractor=model.feature_extractor())
    assert batch_vs_single(classify) < 1e-5


@pytest.mark.parametrize("family", ["wav2vec2", "wavlm", "hubert"])
def test_native_pipeline_batch_equals_single_with_a_layer_norm_cnn(family):
    model = tiny(SVUForSingerID, family, feat_extract_norm="layer", do_stable_layer_norm=True)
    native = native_classifier(model)
    classify = pipeline("audio-classification", model=native, feature_extractor=model.feature_extractor())
    assert batch_vs_single(classify) < 1e-5


@pytest.mark.parametrize("family", FAMILIES)
def test_native_pipeline_batches_where_transformers_cannot_are_documented(family):
    # transformers' class feeds the zero padding to the backbone: group-norm CNNs (all tiny defaults here) and
    # data2vec's positional convolutions see it. The mask still keeps padding out of the pooling (checked by
    # the layer-norm test above); the card says to use batch_size=1 or the remote-code form.
    model = tiny(SVUForSingerID, family)
    classify = pipeline("audio-classification", model=native_classifier(model), feature_extractor=model.feature_extractor())
    assert batch_vs_single(classify) > 1e-4


# ------------------------------------------------------------------ exported repos: cards, widget files, handler


def fake_test_split(task, n=2):
    rows = {"audio": [{"array": sung_tone(220 + 50 * i, 1.0, seed=i), "sampling_rate": 16000} for i in range(n)]}
    features = {"audio": datasets.Audio(sampling_rate=16000)}
    if task != "transcription":
        rows["label"], features["label"] = list(range(n)), datasets.Value("int64")
    return datasets.Dataset.from_dict(rows, features=datasets.Features(features))



def export(tmp_path, task, backbone, family, corpus, export_form="native"):
    cfg = load_config(None, ["--task", task, "--backbone", backbone, "--export", export_form])
    cls = {"technique": SVUForTechniqueClassification, "singer_id": SVUForSingerID, "transcription": SVUForNoteTranscription}[task]
    model = tiny(cls, family)
    labels = list(LABELS.values()) if task != "transcription" else None
    meta = {"corpus": corpus, "label_names": labels, "chunk_seconds": 3.0, "fingerprint": "f00"}
    test = ({"macro_f1": 0.41, "accuracy": 0.5, "balanced_accuracy": 0.45, "top2_accuracy": 0.7, "top3_accuracy": 0.8}
            if task != "transcription" else {"COnPOff_f1": 0.1, "COnP_f1": 0.2, "COn_f1": 0.5})
    metrics = {"test": test, "best_epoch": 0, "selection_metric": "macro_f1", "layer_weights": [0.25] * 4}
    return model, export_repo(cfg, model, meta, metrics, tmp_path / "repo", fake_test_split(task))


def card_of(repo):
    text = (repo / "README.md").read_text()
    return yaml.safe_load(text.split("---\n")[1]), text


@pytest.mark.parametrize("backbone, family, bibtex", [("music2vec", "data2vec-audio", MUSIC2VEC), ("mert", "hubert", MERT)],
                         ids=["music2vec", "mert"])
def test_non_commercial_backbone_card(tmp_path, backbone, family, bibtex):
    _, repo = export(tmp_path, "technique", backbone, family, "vocalset")
    card, text = card_of(repo)
    assert card["license"] == "cc-by-nc-4.0"
    assert card["base_model"] == {"music2vec": "m-a-p/music2vec-v1", "mert": "m-a-p/MERT-v0-public"}[backbone]
    first_lines = text.split("---\n", 2)[2].strip().splitlines()[:2]
    assert "Non-commercial use only" in first_lines[0] and "CC-BY-NC-4.0" in first_lines[0]
    for entry in (PAPER, bibtex, VOCALSET):
        assert f"```bibtex\n{entry}\n```" in text
    assert "arxiv.org/abs/2306.12714" in text and "2306.12714" in PAPER
    metrics = card["model-index"][0]["results"][0]["metrics"]
    types = [m["type"] for m in metrics]
    assert len(set(types)) == len(types) == 5 and {"f1", "balanced_accuracy", "top_2_accuracy"} <= set(types)
    assert "custom_code" in card["tags"]  # the default native export's auto_map names SVU's class: custom code


@pytest.mark.parametrize("task, export_form", [("singer_id", "native"), ("singer_id", "native_widget"),
                                               ("technique", "remote_code"), ("transcription", "native")])
def test_every_card_has_bibtex_widget_files_and_handler(tmp_path, task, export_form):
    _, repo = export(tmp_path, task, "tiny-wav2vec2", "wav2vec2", "synthetic", export_form)
    card, text = card_of(repo)
    assert card["license"] == "apache-2.0" and "base_model" not in card
    assert "a tiny randomly initialised backbone" in text
    assert f"```bibtex\n{PAPER}\n```" in text and f"```bibtex\n{WAV2VEC2}\n```" in text
    assert card["widget"] and all((repo / w["src"]).is_file() for w in card["widget"])
    assert sf.info(str(repo / card["widget"][0]["src"])).samplerate == 16000
    assert (repo / "handler.py").is_file()
    remote = export_form != "native_widget"  # transcription is always remote code, a default native repo has both
    assert ("custom_code" in card["tags"]) is remote and (repo / "modeling_svu.py").is_file() is remote
    if task != "transcription":  # the table of forms marks this repo's
        assert f"| `{export_form}`" in text and text.count("**this repo**") == 1
        assert next(line for line in text.splitlines() if "**this repo**" in line).startswith(f"| `{export_form}`")
    if task == "transcription":
        assert "widget and Inference API cannot run this model" in text and "svu space --model" in text
        assert json.loads((repo / "config.json").read_text())["auto_map"]["AutoModelForAudioFrameClassification"]


def test_push_points_relative_widget_paths_at_the_repo(tmp_path, monkeypatch):
    from huggingface_hub import HfApi

    from svu.train.export import push_repo

    _, repo = export(tmp_path, "singer_id", "wavlm", "wavlm", "artist20")
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: None)
    monkeypatch.setattr(HfApi, "upload_folder", lambda self, **kw: "commit")
    push_repo(repo, "me/svu-singer")
    card, _ = card_of(repo)
    assert card["widget"][0]["src"] == "https://huggingface.co/me/svu-singer/resolve/main/samples/test_0.wav"
    assert card["base_model"] == "microsoft/wavlm-base-plus"


def wav_bytes(audio, rate=16000):
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format="WAV")
    return buffer.getvalue()


def load_handler(repo):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"handler_{abs(hash(str(repo)))}", repo / "handler.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.EndpointHandler(str(repo))


@pytest.mark.parametrize("export_form", ["native", "remote_code"])
def test_endpoint_handler_classification_returns_the_pipeline_output(tmp_path, export_form):
    _, repo = export(tmp_path, "technique", "tiny-wavlm", "wavlm", "vocalset", export_form)
    handler = load_handler(repo)
    audio = wav_bytes(CLIPS[3])
    expected = pipeline("audio-classification", model=str(repo), trust_remote_code=export_form == "remote_code")(audio, top_k=2)
    from_bytes = handler({"inputs": audio, "parameters": {"top_k": 2}})
    from_base64 = handler({"inputs": base64.b64encode(audio).decode(), "parameters": {"top_k": 2}})
    assert len(from_bytes) == 2 and from_bytes == from_base64
    assert [p["label"] for p in from_bytes] == [p["label"] for p in expected]
    assert [p["score"] for p in from_bytes] == pytest.approx([p["score"] for p in expected], abs=1e-6)
    with pytest.raises(ValueError, match="not base64-encoded audio"):
        handler({"inputs": "not base64 !"})
    at_44k = handler({"inputs": {"array": np.interp(np.arange(0, len(CLIPS[3]), 16000 / 44100), np.arange(len(CLIPS[3])),
                                                    CLIPS[3]).tolist(), "sampling_rate": 44100}, "parameters": {"top_k": 3}})
    at_16k = scores(handler({"inputs": audio, "parameters": {"top_k": 3}}))
    assert scores(at_44k) == {label: pytest.approx(score, abs=0.02) for label, score in at_16k.items()}


def test_endpoint_handler_transcription_returns_notes_and_base64_midi(tmp_path):
    import mido

    model, repo = export(tmp_path, "transcription", "tiny-hubert", "hubert", "mir_st500")
    handler = load_handler(repo)
    audio = wav_bytes(np.concatenate([sung_tone(220, 1.0, seed=1), sung_tone(330, 1.0, seed=2)]))
    expected = pipeline("singing-transcription", model=str(repo), trust_remote_code=True)(audio, return_midi=True, onset_threshold=0.1)
    result = handler({"inputs": base64.b64encode(audio).decode(), "parameters": {"onset_threshold": 0.1}})
    assert result["notes"] == expected["notes"]
    midi = base64.b64decode(result["midi"])
    assert midi == expected["midi"] and mido.MidiFile(file=io.BytesIO(midi)).type == 0
    json.dumps(result)  # what an Endpoint sends back
    with_posteriors = handler({"inputs": audio, "parameters": {"return_posteriors": True, "return_midi": False}})
    assert "midi" not in with_posteriors and len(with_posteriors["posteriors"]["onset"]) == 99


# ------------------------------------------------------------------ the Space's dependencies

def dependency_closure(name: str) -> set:
    """Names of the installed distributions `name` needs (its requirements, recursively, no extras)."""
    from importlib.metadata import PackageNotFoundError, requires

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen, todo = set(), [name]
    while todo:
        current = canonicalize_name(todo.pop())
        if current in seen:
            continue
        seen.add(current)
        try:
            requirements = [Requirement(text) for text in requires(current) or []]
        except PackageNotFoundError:
            continue
        todo += [r.name for r in requirements if r.marker is None or r.marker.evaluate({"extra": ""})]
    return seen


def test_gradio_pulls_neither_torch_nor_torchaudio():
    closure = dependency_closure("gradio")
    assert "gradio" in closure and "fastapi" in closure  # the walk did follow gradio's requirements
    assert not {"torch", "torchaudio", "torchvision"} & closure


def test_card_states_the_separation_used():
    from svu.model_cards.card import separation_used

    unseparated = {"report": {"messages": ["no vocal separation hook given: the mp3 mixtures are used as they are"]}}
    assert separation_used("artist20", unseparated, {}).startswith("none: the mixtures were used as they are")
    assert separation_used("artist20", {}, {"separate": "demucs_hook.separate"}) == "`demucs_hook.separate` (the builder's separation hook)"
    assert separation_used("mir_st500", {}, {"source": "vocal"}).startswith("the corpus' `Vocal.wav` stems")
    assert separation_used("mir_st500", {"separation": "HT-Demucs v4"}, {}) == "HT-Demucs v4"  # recorded by prepare


def test_transcription_pipeline_per_call_thresholds_and_posteriors():
    from svu.modeling_svu.note_labels import decode_posteriors
    from svu.modeling_svu.pipeline_svu import SingingTranscriptionPipeline

    model = tiny(SVUForNoteTranscription, "wav2vec2")
    transcribe = SingingTranscriptionPipeline(model=model, feature_extractor=model.feature_extractor())
    audio = np.concatenate([sung_tone(220, 1.5, seed=1), sung_tone(330, 1.5, seed=2)])
    result = transcribe(audio, return_posteriors=True)
    post = result["posteriors"]
    assert len(post["onset"]) == len(post["silence"]) == len(post["pitch"]) == 149 and post["frame_seconds"] == 0.02
    assert ((post["pitch"] == -1) | ((post["pitch"] >= 36) & (post["pitch"] <= 83))).all()
    onset_probs = np.sort(post["onset"])
    low = transcribe(audio, onset_threshold=float(onset_probs[5]))["notes"]
    high = transcribe(audio, onset_threshold=float(onset_probs[-1]) + 1e-6)["notes"]
    assert len(low) > len(high) == 0 and result["notes"] == transcribe(audio)["notes"]
    # the per-call thresholds are the decoder's: the same notes as decoding the returned posteriors by hand
    by_hand = decode_posteriors(post["onset"], post["silence"], np.where(post["pitch"] >= 0, post["pitch"] - 36, -1),
                                onset_threshold=float(onset_probs[5]), silence_threshold=0.5)
    assert [(n["onset"], n["offset"], n["pitch"]) for n in low] == [tuple(n) for n in by_hand]
    def total_duration(silence_threshold):
        notes = transcribe(audio, onset_threshold=float(onset_probs[5]), silence_threshold=silence_threshold)["notes"]
        return sum(n["offset"] - n["onset"] for n in notes)

    assert total_duration(0.0) < total_duration(1.0)  # notes end at once / only at the next onset
    with pytest.raises(ValueError, match="onset_threshold must be a probability in \\[0, 1\\]; got 1.5"):
        transcribe(audio, onset_threshold=1.5)
