"""A saved SVU repo whose ONNX export exists, run by ONNX Runtime and numpy alone: no torch, no transformers.

    found = load_saved_onnx("student/", saved_files_key("student/"), int8=True)   # None: no export yet, or not SVU
    model, engine = found                             # for `long_audio` (`stitched_logits(model, ..., engine=engine)`)

What decoding and note writing need comes from the repo's config.json read as JSON (`SavedConfig`); the windows are
normalised as the model's `feature_extractor()` does. The export is the one `engines.OnnxEngine` writes, cached
under a key of the saved files (`saved_files_key`: config.json and model.safetensors bytes), so the first
`--engine onnx` run of a repo exports it (torch + transformers) and every later run is lean.
"""

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from .frame_geometry import FrameGeometry
from .tasks import TASKS

CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"
FP32_FILE = "model.fp32.onnx"  # also the input of the int8 quantisation: one fp32 export per model
# a new name whenever `engines.INT8_OPTIONS` change, so that cached exports of another quantisation stay unused
INT8_FILE = "model.int8-matmul-pc.onnx"
ONNX_MISSING = "--engine onnx needs onnxruntime and onnx: pip install onnxruntime onnx (or pip install 'svu[onnx]')"
# config.json fields the lean path reads (windows, frame grid; and decoding, for frame-wise tasks); a config
# without one takes the full path
NEEDED_FIELDS = ("task", "sampling_rate", "chunk_seconds", "normalize_audio")
DECODING_FIELDS = ("lowest_midi", "num_octaves", "onset_threshold", "onset_window", "silence_threshold",
                   "pitch_fmin_hz", "pitch_bins_per_semitone", "num_pitch_bins", "voicing_threshold", "ctc_vocab")
# a native export's config.json (`native_form`): the backbone family's config, SVU's own fields under this entry
NATIVE_ENTRY, NATIVE_CLASS_KEYS = "svu", ("svu", "auto_map", "architectures")


def export_file(int8: bool) -> str:
    return INT8_FILE if int8 else FP32_FILE


def default_cache_dir() -> Path:
    import os

    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "svu" / "onnx"


def saved_file(name: str, filename: str):
    """`filename` of the repo at `name`: a local folder's file, or a Hub repo's file already in the local Hub cache
    (nothing is downloaded); None when there is none."""
    folder = Path(name)
    if folder.is_dir():
        path = folder / filename
        return path if path.is_file() else None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        found = try_to_load_from_cache(name, filename)
    except ValueError:  # not a repo id
        return None
    return Path(found) if isinstance(found, str) else None


def saved_files_key(name: str):
    """The cache key of the repo at `name`'s exports: a digest of its config.json and model.safetensors bytes;
    None when either file is missing."""
    paths = [saved_file(name, filename) for filename in (CONFIG_FILE, WEIGHTS_FILE)]
    if None in paths:
        return None
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 24):
                digest.update(chunk)
    return "files-" + digest.hexdigest()[:20]


class SavedConfig(FrameGeometry):
    """config.json of an SVU model as attributes (the backbone's as a namespace), with `SVUConfig`'s frame grid."""

    def __init__(self, fields: dict):
        self.__dict__.update(fields)
        self.backbone_config = SimpleNamespace(**fields["backbone_config"])


class WindowNormalizer:
    """The model's `feature_extractor()` on equal-length windows, as numpy: each window to zero mean and unit
    variance (`Wav2Vec2FeatureExtractor`'s normalisation, same expression) when `normalize_audio`."""

    def __init__(self, normalize: bool, sampling_rate: int):
        self.normalize, self.sampling_rate = normalize, sampling_rate

    def __call__(self, windows, sampling_rate=None, return_tensors=None) -> dict:
        windows = [np.asarray(window, dtype=np.float32) for window in windows]
        if self.normalize:
            windows = [(x - x.mean()) / np.sqrt(x.var() + 1e-7) for x in windows]
        return {"input_values": np.stack(windows)}


def onnx_session(path):
    """An ONNX Runtime CPU session of the export at `path`; ImportError (one line) without onnxruntime."""
    try:
        import onnxruntime
    except ImportError:
        raise ImportError(ONNX_MISSING) from None
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # no warnings about unused initialisers
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class SessionEngine:
    """Windows (as `WindowNormalizer` gives them: equal length, finite, long enough) -> float32 logits array."""

    def __init__(self, path, int8: bool):
        self.session, self.path = onnx_session(path), Path(path)
        self.name = "onnx" + (" int8" if int8 else " fp32")

    def __call__(self, input_values, attention_mask=None) -> np.ndarray:
        return self.session.run(None, {"input_values": np.asarray(input_values, dtype=np.float32)})[0]


class SavedOnnxModel:
    """What `long_audio` reads of a model, from config.json: the config, the receptive field, the normaliser."""

    training = False
    needs_torch = False  # its files are read without torch too (`audio_io.open_audio(without_torch=True)`)

    def __init__(self, config: SavedConfig):
        self.config = config

    def min_input_samples(self) -> int:
        return self.config.receptive_field_samples

    def feature_extractor(self) -> WindowNormalizer:
        return WindowNormalizer(self.config.normalize_audio, self.config.sampling_rate)

    @staticmethod
    def progress_bar(**options):
        """The Hub's tqdm (`long_audio` shows it): transformers' progress switch and `svu -q` turn it off too, and
        transformers is not imported."""
        try:
            from huggingface_hub.utils import tqdm
        except ImportError:  # transformers' then (which needs the Hub library: not on an svu install)
            from transformers.utils.logging import tqdm
        return tqdm(**options)

    def eval(self):
        return self

    def train(self, mode: bool = True):
        return self


def svu_fields(fields: dict):
    """The SVU config fields of a config.json (an SVU config, or a native export's: its `svu` entry, the rest as
    the backbone's), or None when it is neither."""
    if fields.get("model_type") == "svu":
        return fields
    if isinstance(fields.get(NATIVE_ENTRY), dict):
        backbone = {k: v for k, v in fields.items() if k not in NATIVE_CLASS_KEYS}
        return {**fields[NATIVE_ENTRY], "backbone_config": backbone, "id2label": fields.get("id2label")}
    return None


def load_saved_onnx(name: str, key, int8: bool = False, tasks=None, cache_dir=None):
    """``(SavedOnnxModel, SessionEngine)`` of the SVU repo at `name` when its export (`int8` or fp32) is in the repo
    (`svu export --onnx`) or cached under `key` (`saved_files_key(name)`), and its config has every field the lean
    path reads (of one of `tasks`, when given); else None (the caller loads the model and exports it under `key`)."""
    config_path = saved_file(name, CONFIG_FILE)
    if config_path is None:
        return None
    try:
        fields = svu_fields(json.loads(config_path.read_text()))
    except (OSError, ValueError):
        return None
    if fields is None or fields.get("task") not in TASKS or (tasks is not None and fields["task"] not in tasks):
        return None
    needed = NEEDED_FIELDS if TASKS[fields["task"]].pooled else NEEDED_FIELDS + DECODING_FIELDS
    if any(field not in fields for field in needed):
        return None
    path = saved_file(name, export_file(int8))  # the repo's own (`svu export --onnx`), else the cached one
    if path is None and key is not None:
        path = Path(cache_dir or default_cache_dir()) / key / export_file(int8)
    if path is None or not path.is_file():
        return None
    return SavedOnnxModel(SavedConfig(fields)), SessionEngine(path, int8)
