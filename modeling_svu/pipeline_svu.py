"""The `singing-transcription` pipeline: a vocal recording of any length -> notes, and optionally MIDI bytes.

    from transformers import pipeline
    transcriber = pipeline(model="path/or/repo-of-an-SVU-transcription-model", trust_remote_code=True)
    transcriber("song.wav", return_midi=True)  # {"notes": [{"onset": 0.52, "offset": 0.9, "pitch": 62}, ...], "midi": b"MThd..."}

Inputs: a file path or URL, or encoded bytes (read by `audio_io.open_audio`, the decode path of data preparation
and `svu transcribe`: streamed, so memory does not grow with the file), a 1-D array at the model's sampling
rate, `{"raw"|"array": ..., "sampling_rate": ...}` (resampled by `audio_io.resample` if needed), a
datasets/torchcodec `AudioDecoder`, or a list of any of these. Long inputs are transcribed in overlapping
windows (`long_audio.py`); `batch_size` is the number of windows per forward pass (files go one at a time).
"""

import io
import os

import numpy as np
from transformers import AudioClassificationPipeline, AutoModelForAudioFrameClassification, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from .audio_io import decode_audio, open_audio, resample
from .engines import load_engine
from .long_audio import BLOCK_SECONDS, array_blocks, transcribe_blocks

TASK = "singing-transcription"
# 500 ticks per beat at 120 bpm: one tick is exactly 1 ms (20 ms frame times are whole ticks; 75 Hz ones are rounded).
MIDI_TICKS_PER_BEAT = 500
MIDI_TEMPO = 500_000  # microseconds per beat


def notes_to_midi(notes, velocity: int = 100):
    """A type-0 `mido.MidiFile` with one note per ``(onset_s, offset_s, midi)``; times are kept to 1 ms."""
    try:
        import mido
    except ImportError as error:
        raise ImportError("Writing MIDI needs the `mido` package: pip install mido") from error
    events = []
    for onset, offset, pitch in notes:
        if not 0 <= int(pitch) <= 127:
            raise ValueError(f"MIDI pitch {pitch} is outside 0-127.")
        on_tick = int(round(onset * 1000))
        events += [(on_tick, 1, int(pitch)), (max(int(round(offset * 1000)), on_tick + 1), 0, int(pitch))]
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=MIDI_TEMPO, time=0)])
    now = 0
    for tick, is_on, pitch in sorted(events):  # at equal ticks, note-offs (0) come before note-ons (1)
        kind = "note_on" if is_on else "note_off"
        track.append(mido.Message(kind, note=pitch, velocity=velocity if is_on else 0, time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    return mido.MidiFile(type=0, ticks_per_beat=MIDI_TICKS_PER_BEAT, tracks=[track])


def midi_bytes(notes) -> bytes:
    buffer = io.BytesIO()
    notes_to_midi(notes).save(file=buffer)
    return buffer.getvalue()


def midi_to_notes(midi_file) -> list:
    """``[(onset_s, offset_s, midi), ...]`` of a `mido.MidiFile` (times rounded to 1 µs), sorted by onset."""
    notes, started, now = [], {}, 0.0
    for message in midi_file:  # iterating a MidiFile gives delta times in seconds
        now += message.time
        if message.type == "note_on" and message.velocity > 0:
            started[message.note] = now
        elif message.type in ("note_on", "note_off") and message.note in started:
            notes.append((round(started.pop(message.note), 6), round(now, 6), message.note))
    return sorted(notes)


class SingingTranscriptionPipeline(Pipeline):
    """Notes of a singing voice recording, with the model's own decoding thresholds (`config.onset_threshold`, ...).

    Call options: `chunk_seconds` (window length, default `config.chunk_seconds`), `overlap_seconds` (default 1.0),
    `chunk_batch_size` (windows per forward pass, default 8), `progress` (tqdm bar, default False),
    `return_midi` (add the notes as Standard MIDI File bytes under "midi"), `onset_threshold` and
    `silence_threshold` (decoding thresholds in [0, 1] for this call, default the config's), `return_posteriors`
    (add the stitched frame posteriors under "posteriors": `frame_seconds`, per-frame `onset` and `silence`
    probabilities and `pitch` = MIDI note of the most likely octave/pitch class, -1 for none). Engine options (at
    construction, `pipeline(..., engine="onnx", int8=True)`, or per call; see `engines.py`): `engine` ("torch" |
    "onnx"), `int8`, `bf16`.
    """

    _load_feature_extractor = True
    _load_tokenizer = False
    _load_processor = False
    _load_image_processor = False
    _load_video_processor = False

    def _sanitize_parameters(
        self, chunk_seconds=None, overlap_seconds=None, chunk_batch_size=None, progress=None, return_midi=None,
        onset_threshold=None, silence_threshold=None, return_posteriors=None, engine=None, int8=None, bf16=None,
    ):  # fmt: skip
        if engine is not None or int8 or bf16:
            self._engine = load_engine(self.model, engine or "torch", int8=bool(int8), bf16=bool(bf16))
        decoding = {"onset_threshold": onset_threshold, "silence_threshold": silence_threshold}
        decoding = {key: float(value) for key, value in decoding.items() if value is not None}
        for key, value in decoding.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{key} must be a probability in [0, 1]; got {value}.")
        forward = {"chunk_seconds": chunk_seconds, "overlap_seconds": overlap_seconds, "decoding": decoding or None}
        forward.update(batch_size=chunk_batch_size, progress=progress, return_posteriors=return_posteriors)
        forward = {key: value for key, value in forward.items() if value is not None}
        postprocess = {} if return_midi is None else {"return_midi": return_midi}
        return {}, forward, postprocess

    def __call__(self, inputs, *args, batch_size=None, **kwargs):
        # The windows of a file are the batch (`chunk_batch_size`); transformers' own batching of whole inputs
        # would collate this pipeline's window streams, so files go one at a time and `batch_size` (a call
        # or constructor argument) sets the windows per forward pass.
        batch_size = batch_size if batch_size is not None else self._batch_size
        if batch_size is not None and kwargs.get("chunk_batch_size") is None:
            kwargs["chunk_batch_size"] = batch_size
        return super().__call__(inputs, *args, batch_size=1, **kwargs)

    def preprocess(self, inputs):
        rate = self.model.config.sampling_rate
        block = int(BLOCK_SECONDS * rate)
        if isinstance(inputs, (str, os.PathLike, bytes)):
            total, blocks = open_audio(inputs, rate, BLOCK_SECONDS)
            source = None if isinstance(inputs, bytes) else os.fspath(inputs)
            return {"blocks": blocks, "total_samples": total, "source": source}
        if hasattr(inputs, "get_all_samples"):  # torchcodec / datasets AudioDecoder
            samples = inputs.get_all_samples()
            inputs = {"raw": samples.data.numpy().T, "sampling_rate": samples.sample_rate}
        if isinstance(inputs, dict):
            if "sampling_rate" not in inputs or not ({"raw", "array"} & set(inputs)):
                raise ValueError(f"audio dicts need 'raw' or 'array' and 'sampling_rate'; got keys {sorted(inputs)}.")
            audio = np.asarray(inputs["raw"] if "raw" in inputs else inputs["array"], dtype=np.float32)
            inputs = resample(audio, inputs["sampling_rate"], rate)
        if hasattr(inputs, "detach"):
            inputs = inputs.detach().cpu().numpy()
        audio = np.asarray(inputs, dtype=np.float32)
        return {"blocks": array_blocks(audio, block), "total_samples": len(audio)}

    def _forward(self, model_inputs, return_posteriors=False, **kwargs):
        kwargs.setdefault("progress", False)
        source = model_inputs.get("source")
        posteriors = [] if return_posteriors else None
        try:
            notes = transcribe_blocks(
                self.model, model_inputs["blocks"], feature_extractor=self.feature_extractor,
                total_samples=model_inputs["total_samples"], posteriors=posteriors,
                engine=getattr(self, "_engine", None), **kwargs,
            )  # fmt: skip
        except ValueError as error:  # name the file the audio came from (audio_io's errors already do)
            if source is None or source in str(error):
                raise
            raise ValueError(f"{source!r}: {error}") from None
        outputs = {"notes": notes}
        if posteriors is not None:
            onset, silence, pitch = (np.concatenate(parts) for parts in zip(*posteriors))
            outputs["posteriors"] = {"frame_seconds": self.model.config.frame_seconds, "onset": onset,
                                     "silence": silence, "pitch": pitch + self.model.config.lowest_midi * (pitch >= 0)}
        return outputs

    def postprocess(self, model_outputs, return_midi=False):
        notes = model_outputs["notes"]
        result = {"notes": [{"onset": onset, "offset": offset, "pitch": pitch} for onset, offset, pitch in notes]}
        if return_midi:
            result["midi"] = midi_bytes(notes)
        if "posteriors" in model_outputs:
            result["posteriors"] = model_outputs["posteriors"]
        return result


class SVUAudioClassificationPipeline(AudioClassificationPipeline):
    """transformers' `audio-classification` pipeline, reading files, URLs and encoded bytes through `audio_io`
    (the decode path of data preparation, `svu transcribe` and `singing-transcription`) instead of transformers'
    `ffmpeg_read` (FFmpeg's own resampler and downmix), and resampling arrays, dicts and `AudioDecoder`s at other
    rates with the same resampler (transformers' needs torchaudio). SVU classification models save it as their
    `audio-classification` pipeline, so `pipeline("audio-classification", model=<saved SVU model>,
    trust_remote_code=True)` uses it; with a model object, pass `pipeline_class=SVUAudioClassificationPipeline`.
    """

    def preprocess(self, inputs):
        rate = self.feature_extractor.sampling_rate
        if isinstance(inputs, (str, os.PathLike, bytes)):
            inputs = decode_audio(inputs, rate)
        elif hasattr(inputs, "get_all_samples"):  # torchcodec / datasets AudioDecoder
            samples = inputs.get_all_samples()
            inputs = resample(samples.data.numpy().T, samples.sample_rate, rate)
        elif isinstance(inputs, dict) and "sampling_rate" in inputs and ({"raw", "array"} & set(inputs)):
            audio = inputs["raw"] if "raw" in inputs else inputs["array"]
            if hasattr(audio, "detach"):
                audio = audio.detach().cpu().numpy()
            inputs = resample(np.asarray(audio, dtype=np.float32), inputs["sampling_rate"], rate)
        return super().preprocess(inputs)


PIPELINE_REGISTRY.register_pipeline(
    TASK, pipeline_class=SingingTranscriptionPipeline, pt_model=AutoModelForAudioFrameClassification, type="audio"
)
