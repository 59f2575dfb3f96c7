"""Spotify's basic-pitch (PyPI) as the transcription peer, in its own virtualenv.

basic-pitch 0.4 pins tensorflow<2.15.1 (and so numpy<2) on Linux with Python >= 3.11, which would break the
SVU environment. The benchmark set-up therefore installs it into a separate venv without its tensorflow
requirement and with `onnxruntime`, which basic-pitch picks up to run its bundled `nmp.onnx` model.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

BASIC_PITCH_VERSION = "0.4.0"
VENV_DIR = Path(os.environ.get("SVU_BENCH_CACHE", Path.home() / ".cache" / "svu-benchmarks")) / "basic-pitch-venv"
RUNTIME_DEPS = ["onnxruntime", "librosa>=0.8", "pretty-midi>=0.2.9", "resampy>=0.2.2,<0.4.3", "scikit-learn", "scipy", "mir_eval", "numpy", "typing-extensions"]


def venv_python() -> Path:
    return VENV_DIR / "bin" / "python"


def is_installed() -> bool:
    return venv_python().exists() and (VENV_DIR / ".installed").exists()


def install() -> str:
    """Create the venv and install basic-pitch; returns "" on success, else the reason it failed."""
    if is_installed():
        return ""
    try:
        subprocess.run([sys.executable, "-m", "venv", str(VENV_DIR)], check=True, capture_output=True)
        pip = [str(venv_python()), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run(pip + RUNTIME_DEPS, check=True, capture_output=True, text=True, timeout=900)
        subprocess.run(pip + ["--no-deps", f"basic-pitch=={BASIC_PITCH_VERSION}"], check=True, capture_output=True, text=True, timeout=300)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as err:
        detail = getattr(err, "stderr", "") or str(err)
        return f"pip install basic-pitch failed: {detail.strip().splitlines()[-1] if detail.strip() else err}"
    (VENV_DIR / ".installed").write_text(BASIC_PITCH_VERSION)
    return ""


# Runs inside the basic-pitch venv: transcribe each wav, report wall time and notes as JSON on stdout.
_RUNNER = textwrap.dedent(
    """
    import json, sys, time
    from basic_pitch import ICASSP_2022_MODEL_PATH
    from basic_pitch.inference import Model, predict
    path = str(ICASSP_2022_MODEL_PATH)
    onnx = path if path.endswith(".onnx") else path + ".onnx"
    model = Model(onnx)
    predict(sys.argv[1], model)  # warm-up: session set-up and first-call costs
    results = []
    for wav in sys.argv[1:]:
        start = time.perf_counter()
        _, _, notes = predict(wav, model)
        results.append({"file": wav, "seconds": time.perf_counter() - start, "notes": [[float(n[0]), float(n[1]), int(n[2])] for n in notes]})
    print(json.dumps(results))
    """
)


def transcribe(wav_paths, threads: int = 2) -> list:
    """Time basic-pitch on each file (after one warm-up); RuntimeError with the reason if it cannot run."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), ORT_NUM_THREADS=str(threads))
    proc = subprocess.run(
        [str(venv_python()), "-c", _RUNNER, *map(str, wav_paths)], capture_output=True, text=True, env=env, timeout=1800
    )
    if proc.returncode != 0:
        raise RuntimeError(f"basic-pitch failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
