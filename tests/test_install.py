"""A wheel built from the repo, installed (no extra, not editable) into a fresh virtual environment, torch==2.13.0
pinned first as scripts/setup.sh does, installs what the code needs and one name only: the venv prepares a
dataset, decodes it (datasets -> torchcodec) and runs `svu transcribe`, from a folder holding a user's own
`train.py`, `dataset_scripts.py`, `model_cards.py` and `modeling_svu.py` that must not be imported. One slow test
(minutes: torch and ~60 packages into a venv; pip's cache is reused and nothing is byte-compiled)."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from svu.modeling_svu import SVUForNoteTranscription, tiny_backbone_config

REPO = Path(__file__).resolve().parents[1]
COPY_IGNORE = shutil.ignore_patterns(".git", "__pycache__", "*.egg-info", "build", "outputs", "runs", "data")

IN_VENV = r"""
import json, subprocess, sys
import datasets, numpy as np, torch, torchcodec
from svu.dataset_scripts.audio import SAMPLING_RATE  # the stored rate (the installed package's)
from svu.cli import main
prepared, model, audio, out = sys.argv[1:5]
assert main(["data", "prepare", "synthetic", "--task", "technique", "--output", prepared,
             "--option", "clips_per_class=1", "--option", "clip_seconds=3.5"]) == 0
split = datasets.load_from_disk(prepared)["train"]
cell = split[0]["audio"]                                  # an AudioDecoder: decoding needs torchcodec
samples = cell.get_all_samples()
assert samples.sample_rate == SAMPLING_RATE and samples.data.shape[-1] == 3 * SAMPLING_RATE, (samples.sample_rate, samples.data.shape)  # 3 s
assert main(["transcribe", audio, "--model", model, "-o", out, "--format", "json", "-q"]) == 0
print("VENV " + json.dumps({"torch": torch.__version__, "torchcodec": torchcodec.__version__, "rows": len(split),
                            "rms": float(np.sqrt((samples.data.numpy() ** 2).mean()))}))
"""


@pytest.mark.timeout(1500)
def test_pip_install_into_a_fresh_venv_decodes_and_transcribes(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)  # no system site-packages
    python = str(venv / "bin" / "python")
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TQDM_DISABLE="1", OMP_NUM_THREADS="2")

    def pip(*args):
        result = subprocess.run([python, "-m", "pip", "install", "-q", "--no-compile", *args], env=env, cwd=tmp_path,
                                capture_output=True, text=True, timeout=1200)  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]

    pip("torch==2.13.0")  # pinned first, as scripts/setup.sh (which adds PyTorch's CPU index)
    source = tmp_path / "svu-src"  # a copy: building in the working tree would leave build/ there
    shutil.copytree(REPO, source, ignore=COPY_IGNORE)
    wheels = tmp_path / "wheels"
    built = subprocess.run([python, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(source)], env=env,
                           cwd=tmp_path, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = wheels.glob("svu-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith((".dist-info", ".data"))}
    assert top_level == {"svu"}, top_level
    assert "svu/space_app/app.py" in names and "svu/train/configs/demo_technique.yaml" in names, names
    pip(str(wheel))  # no extra

    user = tmp_path / "user"  # a user's project: these names must not shadow the installed package
    user.mkdir()
    for name in ("train", "dataset_scripts", "model_cards", "modeling_svu"):
        (user / f"{name}.py").write_text(f"raise SystemExit('the user\'s {name}.py was imported')\n")
    for command in (["--version"], ["space", "--help"], ["data", "--help"]):
        result = subprocess.run([str(venv / "bin" / "svu"), *command], env=env, cwd=user, capture_output=True, text=True,
                                timeout=300)  # fmt: skip
        assert result.returncode == 0 and result.stdout.strip(), (command, result.stdout, result.stderr[-2000:])
    module_run = subprocess.run([python, "-m", "svu", "--version"], env=env, cwd=user, capture_output=True, text=True)
    assert module_run.returncode == 0 and module_run.stdout.startswith("svu 0."), module_run.stderr[-2000:]
    found = subprocess.run([python, "-c", "from svu.space import app_path; print(app_path().is_file())"], env=env,
                           cwd=user, capture_output=True, text=True)  # fmt: skip
    assert found.stdout.strip() == "True", found.stderr[-2000:]

    torch.manual_seed(0)
    backbone = tiny_backbone_config("wav2vec2", conv_dim=(8,) * 7, hidden_size=16, intermediate_size=32,
                                    num_hidden_layers=1, num_attention_heads=2, num_conv_pos_embedding_groups=2)  # fmt: skip
    model = SVUForNoteTranscription.from_backbone(backbone)
    with torch.no_grad():
        model.head.bias[0] += 3.0  # onsets fire often: a random tiny model still gives notes
    model.save_pretrained(tmp_path / "model")
    t = np.arange(3 * 44100) / 44100
    sf.write(tmp_path / "take.wav", np.stack([0.3 * np.sin(2 * np.pi * 220 * t)] * 2, axis=1), 44100)

    # Run from the user's folder (first on `python -c`'s path) with no PYTHONPATH: the venv imports the installed
    # package, not this checkout and not the user's files.
    args = [str(tmp_path / p) for p in ("prepared", "model", "take.wav", "out")]
    result = subprocess.run([python, "-c", IN_VENV, *args], env=env, cwd=user, capture_output=True, text=True,
                            timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    import json

    report = json.loads(result.stdout.split("VENV ", 1)[1])
    assert report["torch"].startswith("2.13.0") and report["torchcodec"].startswith("0.13.0"), report
    assert report["rows"] > 0 and report["rms"] > 0.01, report
    assert json.loads((tmp_path / "out" / "take.json").read_text())["take"], "the transcription has notes"
    installed = subprocess.run([python, "-c", "import svu.modeling_svu as m, svu; print(svu.__file__, m.__file__)"],
                               env=env, cwd=tmp_path, capture_output=True, text=True).stdout  # fmt: skip
    assert installed.count(str(venv)) == 2 and str(REPO) not in installed, installed
