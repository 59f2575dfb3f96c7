"""The `singing-transcription` pipeline: a vocal recording of any length -> notes, and optionally MIDI bytes.

    from transformers import pipeline
    transcriber = pipeline(model="path/or/repo-of-an-SVU-transcription-model", trust_remote_code=True)
    transcriber("song.wav", return_midi=True)  # {"notes": [{"onset": 0.52, "offset": 0.9, "pitch": 62}, ...], "midi": b"MThd..."}

Inputs: a file path or URL (decoded and resampled by an `ffmpeg` subprocess, streamed so memory does not grow
with the file), encoded bytes, a 1-D array at the model's sampling rate, `{"raw"|"array": ..., "sampling_rate":
...}` (resampled with ffmpeg if needed), or a datasets/torchcodec `AudioDecoder`. Long inputs are transcribed in
overlapping windows (`long_audio.py`).
"""

import io
import os
import subprocess
import tempfile

import numpy as np
from transformers import AutoModelForAudioClassification, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.pipelines.audio_utils import ffmpeg_read

from .engines import load_engine
from .long_audio import BLOCK_SECONDS, array_blocks, transcribe_blocks

TASK = "singing-transcription"
# 500 ticks per beat at 120 bpm: one tick is exactly 1 ms, so 20 ms frame times are whole ticks.
MIDI_TICKS_PER_BEAT = 500
MIDI_TEMPO = 500_000  # microseconds per beat


def ffmpeg_blocks(path: str, sampling_rate: int, block_samples: int):
    """Stream a file's audio as float32 mono blocks at `sampling_rate`; ValueError if ffmpeg cannot decode it."""
    command = [
        "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-i", path,
        "-ac", "1", "-ar", str(sampling_rate), "-f", "f32le", "pipe:1",
    ]  # fmt: skip
    with tempfile.TemporaryFile() as errors:
        try:
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors)
        except FileNotFoundError as error:
            raise ValueError("ffmpeg was not found; it is needed to read audio files.") from error
        try:
            while data := process.stdout.read(4 * block_samples):
                yield np.frombuffer(data, dtype=np.float32)
            if process.wait() != 0:
                errors.seek(0)
                lines = errors.read().decode(errors="replace").strip().splitlines()
                raise ValueError(f"cannot decode {path!r}: {lines[-1] if lines else 'ffmpeg failed'}")
        finally:
            if process.poll() is None:  # the consumer stopped early
                process.kill()
            process.stdout.close()
            process.wait()


def _ffmpeg_resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    command = [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "f32le", "-ar", str(from_rate), "-ac", "1",
        "-i", "pipe:0", "-ar", str(to_rate), "-f", "f32le", "pipe:1",
    ]  # fmt: skip
    try:
        result = subprocess.run(command, input=audio.astype(np.float32).tobytes(), capture_output=True, check=True)
    except FileNotFoundError as error:
        raise ValueError(f"ffmpeg was not found; it is needed to resample {from_rate} Hz audio.") from error
    return np.frombuffer(result.stdout, dtype=np.float32)


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
    `return_midi` (add the notes as Standard MIDI File bytes under "midi"). Engine options (at construction,
    `pipeline(..., engine="onnx", int8=True)`, or per call; see `engines.py`): `engine` ("torch" | "onnx"),
    `int8`, `bf16`.
    """

    _load_feature_extractor = True
    _load_tokenizer = False
    _load_processor = False
    _load_image_processor = False
    _load_video_processor = False

    def _sanitize_parameters(
        self, chunk_seconds=None, overlap_seconds=None, chunk_batch_size=None, progress=None, return_midi=None,
        engine=None, int8=None, bf16=None,
    ):
        if engine is not None or int8 or bf16:
            self._engine = load_engine(self.model, engine or "torch", int8=bool(int8), bf16=bool(bf16))
        forward = {"chunk_seconds": chunk_seconds, "overlap_seconds": overlap_seconds}
        forward.update(batch_size=chunk_batch_size, progress=progress)
        forward = {key: value for key, value in forward.items() if value is not None}
        postprocess = {} if return_midi is None else {"return_midi": return_midi}
        return {}, forward, postprocess

    def preprocess(self, inputs):
        rate = self.model.config.sampling_rate
        block = int(BLOCK_SECONDS * rate)
        if isinstance(inputs, (str, os.PathLike)):
            path = os.fspath(inputs)
            if os.path.isdir(path):
                raise ValueError(f"{path!r} is a directory, not an audio file")
            if "://" not in path and not os.path.isfile(path):
                raise ValueError(f"no such audio file: {path!r}")
            return {"blocks": ffmpeg_blocks(path, rate, block), "total_samples": None, "source": path}
        if isinstance(inputs, bytes):
            inputs = ffmpeg_read(inputs, rate)
        elif hasattr(inputs, "get_all_samples"):  # torchcodec / datasets AudioDecoder
            samples = inputs.get_all_samples()
            inputs = {"raw": samples.data.mean(dim=0).numpy(), "sampling_rate": samples.sample_rate}
        if isinstance(inputs, dict):
            if "sampling_rate" not in inputs or not ({"raw", "array"} & set(inputs)):
                raise ValueError(f"audio dicts need 'raw' or 'array' and 'sampling_rate'; got keys {sorted(inputs)}.")
            audio = np.asarray(inputs["raw"] if "raw" in inputs else inputs["array"], dtype=np.float32)
            if inputs["sampling_rate"] != rate:
                audio = _ffmpeg_resample(audio, inputs["sampling_rate"], rate)
            inputs = audio
        if hasattr(inputs, "detach"):
            inputs = inputs.detach().cpu().numpy()
        audio = np.asarray(inputs, dtype=np.float32)
        return {"blocks": array_blocks(audio, block), "total_samples": len(audio)}

    def _forward(self, model_inputs, **kwargs):
        kwargs.setdefault("progress", False)
        source = model_inputs.get("source")
        try:
            notes = transcribe_blocks(
                self.model, model_inputs["blocks"], feature_extractor=self.feature_extractor,
                total_samples=model_inputs["total_samples"], engine=getattr(self, "_engine", None), **kwargs,
            )  # fmt: skip
        except ValueError as error:  # name the file the audio came from (ffmpeg's errors already do)
            if source is None or source in str(error):
                raise
            raise ValueError(f"{source!r}: {error}") from None
        return {"notes": notes}

    def postprocess(self, model_outputs, return_midi=False):
        notes = model_outputs["notes"]
        result = {"notes": [{"onset": onset, "offset": offset, "pitch": pitch} for onset, offset, pitch in notes]}
        if return_midi:
            result["midi"] = midi_bytes(notes)
        return result


PIPELINE_REGISTRY.register_pipeline(
    TASK, pipeline_class=SingingTranscriptionPipeline, pt_model=AutoModelForAudioClassification, type="audio"
)
