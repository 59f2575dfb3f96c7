"""Vocal separation of corpus mixtures (Artist20, MIR-ST500 ``source=mixture``): option ``separation``.

* ``none`` (default): the audio is used as it is (the builders' ``separate`` hook still applies);
* ``stems:<dir>``: vocals separated beforehand, one file per corpus file at the same relative path under
  ``<dir>`` (relative to the corpus audio root, e.g. ``<dir>/<artist>/<album>/<track>.wav`` for Artist20's
  ``mp3s-32k/<artist>/<album>/<track>.mp3``, or to the corpus folder), as ``.wav``, ``.flac`` or ``.mp3``. A
  corpus file without its stem is skipped and counted in the report;
* ``htdemucs``: HT-Demucs (Rouard et al., 2023; the paper's choice) from the ``demucs`` package, run on the
  original-rate audio (brought to HT-Demucs's own 44.1 kHz stereo, never through a lower rate first); the vocals
  are then resampled to the stored rate (`audio.SAMPLING_RATE`, 24 kHz). ``demucs`` (>= 4.1, torchaudio-free) is optional: ``pip install "svu[separation]"``;
  its weights (``htdemucs``, ~80 MB) are downloaded once (Hugging Face Hub, else Meta's server into the torch
  hub cache). Either missing: one line saying what to install or download. HT-Demucs shifts the audio by a random
  amount (``shifts``); the shifts of each file are drawn from (``--seed``, the file's name), so two preparations
  are byte-identical whatever the order or the number of processes.
"""

import contextlib
import hashlib
import io
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from .audio import SAMPLING_RATE, resample

STEM_EXTENSIONS = (".wav", ".flac", ".mp3")
HTDEMUCS = "htdemucs"
INSTALL_DEMUCS = (
    "separation=htdemucs needs the demucs package: pip install \"svu[separation]\" (or pip install \"demucs>=4.1\"); "
    "or separate the vocals elsewhere and use separation=stems:<dir>"
)


@dataclass(frozen=True)
class Separation:
    """A parsed ``separation`` option: kind ``none`` | ``stems`` | ``htdemucs`` (+ the stems folder)."""

    kind: str
    stems_dir: Optional[Path] = None

    def __str__(self) -> str:
        return f"stems:{self.stems_dir}" if self.kind == "stems" else self.kind


def parse_separation(spec) -> Separation:
    """``"none"`` / ``"stems:<dir>"`` / ``"htdemucs"`` -> `Separation`; ValueError (one line) otherwise."""
    spec = "none" if spec is None else str(spec).strip()
    if spec in ("none", HTDEMUCS):
        return Separation(spec)
    if spec.startswith("stems:"):
        folder = Path(spec[len("stems:"):]).expanduser()
        if not str(folder) or not folder.is_dir():
            raise ValueError(f"separation={spec}: {folder} is not a folder of separated vocals (expected stems:<dir>)")
        return Separation("stems", folder)
    raise ValueError(f"separation={spec!r} unknown; expected none, stems:<dir> or htdemucs")


def find_stem(stems_dir: Path, *relative_paths) -> Optional[Path]:
    """The stem of a corpus file: ``stems_dir/<relative path>`` with any of `STEM_EXTENSIONS`, or None."""
    for relative in relative_paths:
        for extension in STEM_EXTENSIONS:
            candidate = stems_dir / Path(relative).with_suffix(extension)
            if candidate.is_file():
                return candidate
    return None


def load_native(path) -> tuple:
    """(float32 (channels, samples), sampling rate) of an audio file at its own rate; ValueError naming it."""
    from torchcodec.decoders import AudioDecoder

    # Not `audio_io.decode_audio`: HT-Demucs needs the channels, which the one decode path averages.
    from svu.modeling_svu.audio_io import decoder_message, path_problem

    problem = path_problem(path)
    if problem:
        raise ValueError(f"{path}: {problem}")
    try:
        samples = AudioDecoder(str(path)).get_all_samples()
    except Exception as error:  # torchcodec raises RuntimeError/ValueError with FFmpeg's message
        raise ValueError(f"cannot decode audio file {path}: {decoder_message(error)}") from None
    wave = samples.data.numpy().astype(np.float32)
    if wave.size == 0 or not np.isfinite(wave).all():
        raise ValueError(f"audio file {path} holds no samples or NaN/infinite samples")
    return wave, int(samples.sample_rate)


class HTDemucsSeparator:
    """HT-Demucs vocals of a (channels, samples) mixture at any rate -> mono at SAMPLING_RATE. Loaded on first use."""

    def __init__(self, name: str = HTDEMUCS, device: Optional[str] = None, seed: int = 0, shifts: int = 1):
        self.name, self.device, self.seed, self.shifts, self._model = name, device, seed, shifts, None

    def load(self):
        """The HT-Demucs model; ValueError (one line) when the package or the weights are unavailable."""
        if self._model is None:
            try:
                from demucs.apply import apply_model  # noqa: F401  (demucs >= 4.1 imports no torchaudio)
                from demucs.pretrained import get_model
            except ImportError as error:
                raise ValueError(f"{INSTALL_DEMUCS} ({error})") from None
            try:
                with contextlib.redirect_stderr(io.StringIO()):  # torch.hub prints "Downloading: ..." first
                    model = get_model(self.name)
            except Exception as error:  # offline / no cached weights: demucs raises URLError, ModelLoadingError, ...
                first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                raise ValueError(
                    f"HT-Demucs weights {self.name!r} unavailable ({first}); download them once with internet: "
                    f"python -c \"from demucs.pretrained import get_model; get_model('{self.name}')\" "
                    "(stored under $TORCH_HOME/hub/checkpoints), or use separation=stems:<dir>"
                ) from None
            self._model = model.eval()
        return self._model

    def __call__(self, wave: np.ndarray, sampling_rate: int, name: str = "") -> np.ndarray:
        """The vocals of `wave`; the random shifts are drawn from (seed, `name`), the file's name in the corpus."""
        import torch
        from demucs.apply import apply_model

        model = self.load()
        # HT-Demucs's own rate and channels (demucs.audio.convert_audio does this with torchaudio; soxr here)
        wave = np.atleast_2d(wave)
        if sampling_rate != model.samplerate:
            wave = np.stack([resample(channel, sampling_rate, model.samplerate) for channel in wave])
        if wave.shape[0] != model.audio_channels:
            wave = np.repeat(wave.mean(axis=0, keepdims=True), model.audio_channels, axis=0)
        mix = torch.from_numpy(np.ascontiguousarray(wave))
        reference = mix.mean(0)
        mean, std = reference.mean(), reference.std() + 1e-8  # demucs.separate normalises the same way
        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        with torch.inference_mode(), seeded(file_seed(self.seed, name)):
            sources = apply_model(model, ((mix - mean) / std)[None], device=device, shifts=self.shifts, split=True,
                                  overlap=0.25, progress=False)[0]
        vocals = (sources[model.sources.index("vocals")] * std + mean).mean(0).cpu().numpy()
        return resample(vocals, model.samplerate, SAMPLING_RATE)


def file_seed(seed: int, name: str) -> int:
    """A seed of its own for each file: the same for (seed, name) in any order or process."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "little")


@contextlib.contextmanager
def seeded(seed: int):
    """Python's and torch's global random generators seeded with `seed` inside, restored after (demucs'
    `apply_model` draws its shifts from `random` and takes no generator)."""
    import torch

    state = random.getstate()
    random.seed(seed)
    try:
        # `manual_seed` seeds every CUDA device too: fork them all, so the caller's CUDA generators are restored
        with torch.random.fork_rng(devices=range(torch.cuda.device_count())):
            torch.manual_seed(seed)
            yield
    finally:
        random.setstate(state)


def decode_job(separation: Separation, path, relative_paths):
    """What to decode for corpus file `path` under `separation` (a `common.decode_or_error` job): ``(file,
    native, None)``: its stem or the file itself at SAMPLING_RATE (the channel mean), or the file at its own rate for
    HT-Demucs (separated before any resampling); None when its stem is missing. `relative_paths`: the file's paths
    that a stems folder may mirror."""
    if separation.kind == "stems":
        stem = find_stem(separation.stems_dir, *relative_paths)
        return None if stem is None else (stem, False, None)
    return (path, separation.kind == HTDEMUCS, None)
