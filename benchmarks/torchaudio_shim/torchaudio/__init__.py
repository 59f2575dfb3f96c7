"""A stand-in for `torchaudio` inside the pitch-peers benchmark venv ONLY (never on the SVU environment's path).

torchcrepe 0.0.24 and pesto-pitch 2.0.1 import torchaudio at import time, and torchaudio's PyPI wheels do not
load next to torch 2.13 here. Of torchaudio, both call exactly one function, `torchaudio.load(path)`, and only
in their file-reading helpers (`torchcrepe.load.audio`, `pesto.predict_from_files`); the benchmark passes them
arrays, so it never calls it. It is provided anyway, with torchaudio's signature and result, via soundfile.
Anything else raises AttributeError naming this file, so a future version needing more fails loudly.
"""

import numpy as np
import soundfile
import torch

__version__ = "0.0.0+svu.shim"


def load(uri, frame_offset: int = 0, num_frames: int = -1, normalize: bool = True, channels_first: bool = True, **_):
    """(waveform float32 tensor (channels, frames), sample_rate), like `torchaudio.load`."""
    data, sample_rate = soundfile.read(uri, start=frame_offset, frames=num_frames, dtype="float32", always_2d=True)
    waveform = torch.from_numpy(np.ascontiguousarray(data.T if channels_first else data))
    return waveform, sample_rate


def __getattr__(name):
    raise AttributeError(f"torchaudio.{name} is not provided by the SVU benchmark shim ({__file__}); only load() is")
