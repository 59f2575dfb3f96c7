"""Inference Endpoints handler of an SVU model repo (copied into every exported repo as `handler.py`).

    handler = EndpointHandler("path/to/repo")
    handler({"inputs": wav_bytes_or_base64, "parameters": {"top_k": 3}})
    # classification -> [{"label": "vibrato", "score": 0.71}, ...]
    # transcription  -> {"notes": [{"onset": 0.22, "offset": 0.78, "pitch": 58}, ...], "midi": "<base64 MIDI>"}
    # pitch          -> {"times": [...], "f0_hz": [...], "voicing": [...], "voiced": [...]}

It returns what the repo's pipeline returns, made JSON-serialisable (MIDI as base64, posteriors as lists).
Self-contained: only the standard library, numpy and transformers, as on an Endpoint.
"""

import base64
import binascii
import json
import subprocess

import numpy as np
from transformers import pipeline
from transformers.utils import cached_file

CLASSIFICATION_TASK = "audio-classification"
# pipeline call options of this repo's task when a request does not set them (its `endpoint_defaults`), written in
# by `train.export` as it copies this file into the repo
DEFAULT_PARAMETERS = {}


def decode_inputs(inputs):
    """Audio bytes as they are; a base64 string (optionally a `data:` URL) decoded to bytes; an
    `{"array"|"raw": ..., "sampling_rate": ...}` dict or a sample list as a float32 array."""
    if isinstance(inputs, (bytes, bytearray)):
        return bytes(inputs)
    if isinstance(inputs, str):
        text = inputs.split(",", 1)[1] if inputs.startswith("data:") else inputs
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("inputs is a string but not base64-encoded audio; send the audio bytes or their base64.") from None
    if isinstance(inputs, dict):
        key = "array" if "array" in inputs else "raw"
        if key not in inputs or "sampling_rate" not in inputs:
            raise ValueError(f"audio dicts need 'array' (or 'raw') and 'sampling_rate'; got keys {sorted(inputs)}.")
        return {"raw": np.asarray(inputs[key], dtype=np.float32), "sampling_rate": int(inputs["sampling_rate"])}
    if isinstance(inputs, (list, np.ndarray)):
        return np.asarray(inputs, dtype=np.float32)
    raise ValueError(f"inputs must be audio bytes, base64 text, a sample list or an array dict; got {type(inputs).__name__}.")


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """With ffmpeg, as the pipelines decode files (transformers would need torchaudio for a dict at another rate)."""
    command = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "f32le", "-ar", str(from_rate), "-ac", "1",
               "-i", "pipe:0", "-ar", str(to_rate), "-f", "f32le", "pipe:1"]
    try:
        done = subprocess.run(command, input=audio.astype(np.float32).tobytes(), capture_output=True, check=True)
    except (FileNotFoundError, subprocess.CalledProcessError) as error:
        raise ValueError(f"cannot resample {from_rate} Hz audio to {to_rate} Hz with ffmpeg ({error}).") from None
    return np.frombuffer(done.stdout, dtype=np.float32)


def jsonable(value):
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    return value


class EndpointHandler:
    def __init__(self, path=""):
        with open(cached_file(path, "config.json")) as file:  # a folder (as on an Endpoint) or a repo id
            config = json.load(file)
        # the repo's own pipeline task (singing-transcription, singing-pitch) when it saved one besides classification
        custom = [task for task in (config.get("custom_pipelines") or {}) if task != CLASSIFICATION_TASK]
        if custom:
            self.task = custom[0]
            self.pipeline = pipeline(self.task, model=path, trust_remote_code=True)
        else:  # a native export is transformers' own class: no remote code, even when its auto_map names SVU's class
            self.task = CLASSIFICATION_TASK
            self.pipeline = pipeline(self.task, model=path, trust_remote_code=config.get("model_type") == "svu")

    def __call__(self, data: dict):
        if not isinstance(data, dict) or "inputs" not in data:
            raise ValueError('the request must be {"inputs": <audio>, "parameters": {...}}.')
        parameters = {**DEFAULT_PARAMETERS, **(data.get("parameters") or {})}
        audio = decode_inputs(data["inputs"])
        rate = self.pipeline.feature_extractor.sampling_rate
        if isinstance(audio, dict) and audio["sampling_rate"] != rate:
            audio = {"raw": resample(audio["raw"], audio["sampling_rate"], rate), "sampling_rate": rate}
        return jsonable(self.pipeline(audio, **parameters))
