"""torchcrepe and PESTO, the pitch peers, in their own virtualenv, with a `torchaudio` stand-in.

Both ship their weights in their wheels, and both `import torchaudio` at import time; torchaudio's PyPI wheels
do not load next to torch 2.13 here, and installing torchaudio into the SVU environment breaks transformers'
audio code. So the venv gets: the SVU environment's own torch, pinned to its exact version (`2.13.0+cpu`, the CPU
wheel; an unpinned `torch` would pull the multi-GB CUDA build), the peers' real runtime requirements, the peers
themselves with `--no-deps` (so pip does not fetch torchaudio), and, on PYTHONPATH when the runner starts,
`benchmarks/torchaudio_shim/` (a `torchaudio` providing only `load`, the one function either peer calls, and only
in their file readers). The venv has no access to the SVU environment's packages (no --system-site-packages).
"""

import os
import subprocess
import sys
from pathlib import Path

import torch

TORCHCREPE_VERSION = "0.0.24"
PESTO_VERSION = "2.0.1"
HERE = Path(__file__).resolve().parent
SHIM_DIR = HERE / "torchaudio_shim"
RUNNER = HERE / "pitch_peer_runner.py"
# torchcrepe: librosa, resampy, scipy, tqdm (+ torch, torchaudio); pesto-pitch: numpy, omegaconf, scipy, tqdm.
RUNTIME_DEPS = ["numpy", "scipy", "tqdm", "soundfile", "librosa>=0.9.1", "resampy", "omegaconf>=2.3.0"]


def venv_dir() -> Path:
    return Path(os.environ.get("SVU_BENCH_CACHE", Path.home() / ".cache" / "svu-benchmarks")) / "pitch-peers-venv"


def venv_python() -> Path:
    return venv_dir() / "bin" / "python"


def torch_pin() -> str:
    """The SVU environment's exact torch (e.g. `torch==2.13.0+cpu`): same build, found on disk or in the index."""
    return f"torch=={torch.__version__}"


def marker() -> str:
    return f"{torch_pin()} torchcrepe=={TORCHCREPE_VERSION} pesto-pitch=={PESTO_VERSION}"


def is_installed() -> bool:
    done = venv_dir() / ".installed"
    return venv_python().exists() and done.exists() and done.read_text() == marker()


def install() -> str:
    """Create the venv and install the peers; returns "" on success, else the reason it failed."""
    if is_installed():
        return ""
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv_dir())], check=True, capture_output=True)
        pip = [str(venv_python()), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run(pip + [torch_pin()], check=True, capture_output=True, text=True, timeout=1200)
        subprocess.run(pip + RUNTIME_DEPS, check=True, capture_output=True, text=True, timeout=1200)
        subprocess.run(pip + ["--no-deps", f"torchcrepe=={TORCHCREPE_VERSION}", f"pesto-pitch=={PESTO_VERSION}"],
                       check=True, capture_output=True, text=True, timeout=600)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as err:
        detail = (getattr(err, "stderr", "") or "").strip()
        last = detail.splitlines()[-1] if detail else str(err)
        return f"pitch-peers venv install failed ({' '.join(map(str, getattr(err, 'cmd', [])[-2:]))}): {last}"
    (venv_dir() / ".installed").write_text(marker())
    return ""


def run_peers(request_path: Path, timeout: float = 3600) -> dict:
    """Run `pitch_peer_runner.py REQUEST` in the venv, the shim on its path, and return its JSON result."""
    import json

    threads = "2"
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", ""), "PYTHONPATH": str(SHIM_DIR),
           "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "NUMBA_CACHE_DIR": str(venv_dir() / "numba-cache")}
    proc = subprocess.run([str(venv_python()), str(RUNNER), str(request_path)], env=env, capture_output=True,
                          text=True, timeout=timeout)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit code {proc.returncode}"
        raise RuntimeError(f"pitch peers in {venv_dir()}: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
