"""The SVU pipelines: `singing-transcription` (a vocal recording of any length -> notes, optionally with their
pitch in cents and MIDI bytes), `singing-pitch` (-> frame-level F0) and SVU's `audio-classification`.

    from transformers import pipeline
    transcriber = pipeline(model="path/or/repo-of-an-SVU-transcription-model", trust_remote_code=True)
    transcriber("song.wav", return_midi=True)  # {"notes": [{"onset": 0.52, "offset": 0.9, "pitch": 62}, ...], "midi": b"MThd..."}
    pitcher = pipeline("singing-pitch", model="path/or/repo-of-an-SVU-pitch-model", trust_remote_code=True)
    pitcher("song.wav")  # {"times": [...], "f0_hz": [...], "voicing": [...], "voiced": [...]}

Inputs: a file path or URL, or encoded bytes (read by `audio_decode.open_audio`, the decode path of data
preparation and `svu transcribe`: streamed, so memory does not grow with the file; it needs torchcodec and soxr),
a 1-D array at the model's sampling rate, `{"raw"|"array": ..., "sampling_rate": ...}` (resampled by
`audio_decode.resample` if needed), a
datasets/torchcodec `AudioDecoder`, or a list of any of these. Long inputs are transcribed in overlapping
windows (`long_audio.py`); `batch_size` is the number of windows per forward pass (files go one at a time).
"""

import contextlib
import os

import numpy as np
import transformers
from transformers import AudioClassificationPipeline, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from .ctc import WORD_DELIMITER, decode as ctc_decode, word_timings
from .audio_decode import decode_audio, open_audio, resample
from .long_audio import BLOCK_SECONDS, array_blocks, lyrics_logits, pitch_track_blocks, transcribe_blocks
from .midi_io import midi_bytes
from .note_pitch import pitched_notes
from .tasks import TASKS, check_task_options


def audio_stream(inputs, rate: int) -> dict:
    """A pipeline input as ``{"blocks", "total_samples", "source", "reopen"}``: a stream of sample blocks at `rate`,
    its length, the file it came from (None for bytes and arrays) and ``reopen(rate) -> (total_samples, blocks)``,
    the same audio streamed again at any rate (for a second model, e.g. a pitch model beside a transcriber)."""
    block_seconds = BLOCK_SECONDS
    if isinstance(inputs, (str, os.PathLike, bytes)):
        total, blocks = open_audio(inputs, rate, block_seconds)
        source = None if isinstance(inputs, bytes) else os.fspath(inputs)
        return {"blocks": blocks, "total_samples": total, "source": source,
                "reopen": lambda other_rate: open_audio(inputs, other_rate, block_seconds)}  # fmt: skip
    original_rate, from_dict = rate, False
    if hasattr(inputs, "get_all_samples"):  # torchcodec / datasets AudioDecoder
        samples = inputs.get_all_samples()
        inputs = {"raw": samples.data.numpy().T, "sampling_rate": samples.sample_rate}
    if isinstance(inputs, dict):
        if "sampling_rate" not in inputs or not ({"raw", "array"} & set(inputs)):
            raise ValueError(f"audio dicts need 'raw' or 'array' and 'sampling_rate'; got keys {sorted(inputs)}.")
        original_rate, from_dict = inputs["sampling_rate"], True
        inputs = np.asarray(inputs["raw"] if "raw" in inputs else inputs["array"], dtype=np.float32)
    if hasattr(inputs, "detach"):
        inputs = inputs.detach().cpu().numpy()
    original = np.asarray(inputs, dtype=np.float32)
    audio = resample(original, original_rate, rate) if from_dict else original

    def reopen(other_rate):
        again = audio if other_rate == rate else resample(original, original_rate, other_rate)
        return len(again), array_blocks(again, int(block_seconds * other_rate))

    return {"blocks": array_blocks(audio, int(block_seconds * rate)), "total_samples": len(audio), "reopen": reopen}


def check_call_options(model, options) -> None:
    """ValueError (one line) for a call option that applies to other tasks' models only (`Task.options`)."""
    task = getattr(model.config, "task", None)
    if task is not None:  # None: a native export run by the SVU classification pipeline
        check_task_options(task, options)


@contextlib.contextmanager
def named_errors(source):
    """Name the file the audio came from in a ValueError (audio_decode's errors already do)."""
    try:
        yield
    except ValueError as error:
        if source is None or source in str(error):
            raise
        raise ValueError(f"{source!r}: {error}") from None


class _LongAudioPipeline(Pipeline):
    """What the SVU frame-wise pipelines share: audio of any length and form in, one file at a time, windows of it
    batched (`chunk_batch_size`, or the pipeline's `batch_size`), an optional engine (`load_engine`).

    Options given at construction are the defaults of every call; options given to a call apply to that call only
    (transformers merges the two in `__call__`), so what they load (an engine, a pitch model) is a forward option,
    never an attribute of the pipeline."""

    _load_feature_extractor = True
    _load_tokenizer = False
    _load_processor = False
    _load_image_processor = False
    _load_video_processor = False

    def _window_options(self, chunk_seconds, overlap_seconds, chunk_batch_size, progress, engine, int8, bf16,
                        others) -> dict:  # fmt: skip
        check_call_options(self.model, others)
        if others:
            raise TypeError(f"{type(self).__name__} got an unexpected option {next(iter(others))!r}.")
        options = {"chunk_seconds": chunk_seconds, "overlap_seconds": overlap_seconds, "batch_size": chunk_batch_size,
                   "progress": progress}  # fmt: skip
        if isinstance(engine, str) or int8 or bf16:
            options["engine"] = load_engine(self.model, engine or "torch", int8=bool(int8), bf16=bool(bf16))
        elif engine is not None:
            options["engine"] = engine
        return {key: value for key, value in options.items() if value is not None}

    def __call__(self, inputs, *args, batch_size=None, **kwargs):
        # The windows of a file are the batch (`chunk_batch_size`); transformers' own batching of whole inputs
        # would collate this pipeline's window streams, so files go one at a time and `batch_size` (a call
        # or constructor argument) sets the windows per forward pass.
        batch_size = batch_size if batch_size is not None else self._batch_size
        if batch_size is not None and kwargs.get("chunk_batch_size") is None:
            kwargs["chunk_batch_size"] = batch_size
        return super().__call__(inputs, *args, batch_size=1, **kwargs)

    def preprocess(self, inputs):
        return audio_stream(inputs, self.model.config.sampling_rate)


def load_engine(model, engine="torch", int8=False, bf16=False):
    """The engine named by the `engine`, `int8` and `bf16` options: `engines.load_engine` of the installed svu
    package (ONNX export and quantisation never run in a saved repo, which does not carry them). An engine object
    (`engines.load_engine(model, ...)`: windows in, logits out) can be passed as `engine` instead."""
    from .modeling_svu import package_module

    return package_module("engines", f"engine={engine!r}").load_engine(model, engine, int8=int8, bf16=bf16)


def pitch_models():
    """The task models `SingingPitchPipeline` runs (`tasks.py`), by task name."""
    from .modeling_svu import TASK_MODELS

    return {name: TASK_MODELS[name] for name, task in TASKS.items() if task.pipeline_class == SingingPitchPipeline.__name__}


def load_pitch_model(pitch_model, device=None):
    """A pitch model from a model object, a `singing-pitch` pipeline, or a saved folder / Hub repo id (loaded with
    this code's own classes: nothing from that repo runs); ValueError naming it if it is not a pitch model."""
    from .configuration_svu import SVUConfig

    models = pitch_models()
    if isinstance(pitch_model, Pipeline):
        pitch_model = pitch_model.model
    if isinstance(pitch_model, (str, os.PathLike)):
        name = os.fspath(pitch_model)
        config = SVUConfig.from_pretrained(name)
        if config.task not in models:
            raise ValueError(f"pitch_model {name!r} is a {config.task!r} model, not a {' or '.join(models)} model.")
        pitch_model = models[config.task].from_pretrained(name, config=config)
    elif getattr(getattr(pitch_model, "config", None), "task", None) not in models:
        raise ValueError(f"pitch_model must be a {' or '.join(models)} model, a folder or a repo id of one; "
                         f"got {type(pitch_model).__name__}.")  # fmt: skip
    if device is not None:
        pitch_model = pitch_model.to(device)
    return pitch_model.eval()


class SingingTranscriptionPipeline(_LongAudioPipeline):
    """Notes of a singing voice recording, with the model's own decoding thresholds (`config.onset_threshold`, ...).

    Call options: `chunk_seconds` (window length, default `config.chunk_seconds`), `overlap_seconds` (default 1.0),
    `chunk_batch_size` (windows per forward pass, default 8), `progress` (tqdm bar, default False),
    `return_midi` (add the notes as Standard MIDI File bytes under "midi"), `onset_threshold` and
    `silence_threshold` (decoding thresholds in [0, 1] for this call, default the config's), `return_posteriors`
    (add the stitched frame posteriors under "posteriors": `frame_seconds`, per-frame `onset` and `silence`
    probabilities and `pitch` = MIDI note of the most likely octave/pitch class, -1 for none). Engine options (at
    construction, `pipeline(..., engine="onnx", int8=True)`, or per call; see `engines.py` of the svu package):
    `engine` ("torch" | "onnx", or an engine object), `int8`, `bf16`.

    `pitch_model` (at construction or per call: an SVU pitch model, its folder or repo id, or a `singing-pitch`
    pipeline): each note also gets `pitch_midi`, the median F0 of the pitch model's voiced frames inside the note
    as fractional MIDI (None without a voiced frame; `note_pitch.py`), and the MIDI file a pitch bend per note; a
    note with a `pitch_midi` has its nearest integer as `pitch` (`note_pitch.pitched_notes`: the note number the
    MIDI holds, bent by at most half a semitone).
    The pitch model reads the same audio (again, at its own rate) with the same window options and its own
    voicing threshold. Without it, the output is exactly as before (no `pitch_midi` key, no bends).
    """

    def _sanitize_parameters(
        self, chunk_seconds=None, overlap_seconds=None, chunk_batch_size=None, progress=None, return_midi=None,
        onset_threshold=None, silence_threshold=None, return_posteriors=None, engine=None, int8=None, bf16=None,
        pitch_model=None, **others,
    ):  # fmt: skip
        forward = self._window_options(chunk_seconds, overlap_seconds, chunk_batch_size, progress, engine, int8, bf16,
                                       others)  # fmt: skip
        if pitch_model is not None:
            forward["pitch_model"] = load_pitch_model(pitch_model, self.model.device)
        decoding = {"onset_threshold": onset_threshold, "silence_threshold": silence_threshold}
        decoding = {key: float(value) for key, value in decoding.items() if value is not None}
        for key, value in decoding.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{key} must be a probability in [0, 1]; got {value}.")
        if decoding:
            forward["decoding"] = decoding
        if return_posteriors is not None:
            forward["return_posteriors"] = return_posteriors
        postprocess = {} if return_midi is None else {"return_midi": return_midi}
        return {}, forward, postprocess

    def _forward(self, model_inputs, return_posteriors=False, pitch_model=None, engine=None, **kwargs):
        kwargs.setdefault("progress", False)
        posteriors = [] if return_posteriors else None
        with named_errors(model_inputs.get("source")):
            notes = transcribe_blocks(
                self.model, model_inputs["blocks"], feature_extractor=self.feature_extractor,
                total_samples=model_inputs["total_samples"], posteriors=posteriors, engine=engine, **kwargs,
            )  # fmt: skip
        outputs = {"notes": notes}
        if pitch_model is not None:
            total, blocks = model_inputs["reopen"](pitch_model.config.sampling_rate)
            kwargs.pop("decoding", None)
            with named_errors(model_inputs.get("source")):
                track = pitch_track_blocks(pitch_model, blocks, total_samples=total, **kwargs)
            outputs["notes"], outputs["pitch_midi"] = pitched_notes(
                notes, track["times"], track["f0_hz"], track["voiced"])
        if posteriors is not None:
            onset, silence, pitch = (np.concatenate(parts) for parts in zip(*posteriors))
            outputs["posteriors"] = {"frame_seconds": self.model.config.frame_seconds, "onset": onset,
                                     "silence": silence, "pitch": pitch + self.model.config.lowest_midi * (pitch >= 0)}
        return outputs

    def postprocess(self, model_outputs, return_midi=False):
        notes, pitch_midi = model_outputs["notes"], model_outputs.get("pitch_midi")
        result = {"notes": [{"onset": onset, "offset": offset, "pitch": pitch} for onset, offset, pitch in notes]}
        if pitch_midi is not None:
            for note, fractional in zip(result["notes"], pitch_midi):
                note["pitch_midi"] = fractional
        if return_midi:
            result["midi"] = midi_bytes(notes, pitch_midi=pitch_midi)
        if "posteriors" in model_outputs:
            result["posteriors"] = model_outputs["posteriors"]
        return result


class SingingPitchPipeline(_LongAudioPipeline):
    """The F0 of a singing voice recording of any length, frame by frame, with an SVU pitch model.

        pitcher = pipeline("singing-pitch", model="path/or/repo-of-an-SVU-pitch-model", trust_remote_code=True)
        pitcher("song.wav")  # {"times": [0.0, 0.02, ...], "f0_hz": [0.0, 221.3, ...], "voicing": [...], "voiced": [...]}

    `times` are the frame times in seconds, `f0_hz` the decoded F0 (0 where unvoiced), `voicing` the voicing
    confidence in [0, 1] and `voiced` whether it reaches the voicing threshold (`voicing_threshold`, per call or at
    construction; default `config.voicing_threshold`). Frames of digital silence are unvoiced. Window and engine
    options as for `singing-transcription`: `chunk_seconds`, `overlap_seconds`, `chunk_batch_size`, `progress`,
    `engine`, `int8`, `bf16`.
    """

    def _sanitize_parameters(
        self, chunk_seconds=None, overlap_seconds=None, chunk_batch_size=None, progress=None, voicing_threshold=None,
        engine=None, int8=None, bf16=None, **others,
    ):  # fmt: skip
        forward = self._window_options(chunk_seconds, overlap_seconds, chunk_batch_size, progress, engine, int8, bf16,
                                       others)  # fmt: skip
        if voicing_threshold is not None:
            if not 0.0 <= float(voicing_threshold) <= 1.0:
                raise ValueError(f"voicing_threshold must be a probability in [0, 1]; got {voicing_threshold}.")
            forward["voicing_threshold"] = float(voicing_threshold)
        return {}, forward, {}

    def _forward(self, model_inputs, **kwargs):
        kwargs.setdefault("progress", False)
        with named_errors(model_inputs.get("source")):
            return pitch_track_blocks(
                self.model, model_inputs["blocks"], feature_extractor=self.feature_extractor,
                total_samples=model_inputs["total_samples"], **kwargs,
            )  # fmt: skip

    def postprocess(self, model_outputs):
        return {key: model_outputs[key].tolist() for key in ("times", "f0_hz", "voicing", "voiced")}


class LyricsTranscriptionPipeline(_LongAudioPipeline):
    """Lyrics of a singing voice recording of any length, with an SVU lyrics model (a CTC head): transformers'
    `automatic-speech-recognition` output, ``{"text": ...}``, and with `return_timestamps="word"` (or "char") the
    words (characters) with their times from the CTC alignment, ``"chunks": [{"text", "timestamp": (start, end)}]``.

        transcriber = pipeline("automatic-speech-recognition", model="path/or/repo", trust_remote_code=True)
        transcriber("song.wav", return_timestamps="word")

    The windows' frame logits are stitched (`long_audio.stitched_logits`) and decoded once; frames of digital
    silence are blank. `decoder`: "greedy" (default, best path) or "beam" (`pyctcdecode`, `beam_width`, default 32,
    with a kenlm n-gram model at `lm_path` when kenlm is installed; `ctc.pyctcdecode_status()`). Window and engine
    options as for `singing-transcription`.
    """

    def _sanitize_parameters(
        self, chunk_seconds=None, overlap_seconds=None, chunk_batch_size=None, progress=None, return_timestamps=None,
        decoder=None, beam_width=None, lm_path=None, engine=None, int8=None, bf16=None, **others,
    ):  # fmt: skip
        forward = self._window_options(chunk_seconds, overlap_seconds, chunk_batch_size, progress, engine, int8, bf16,
                                       others)  # fmt: skip
        postprocess = {}
        if return_timestamps not in (None, False, "word", "char"):
            raise ValueError(f"return_timestamps={return_timestamps!r}: 'word', 'char' or None.")
        if return_timestamps:
            postprocess["return_timestamps"] = return_timestamps
        if decoder not in (None, "greedy", "beam"):
            raise ValueError(f"decoder={decoder!r}: 'greedy' or 'beam'.")
        if lm_path is not None and decoder is None:
            decoder = "beam"
        for key, value in (("decoder", decoder), ("beam_width", beam_width), ("lm_path", lm_path)):
            if value is not None:
                postprocess[key] = value
        return {}, forward, postprocess

    def _forward(self, model_inputs, **kwargs):
        kwargs.setdefault("progress", False)
        with named_errors(model_inputs.get("source")):
            return {"logits": lyrics_logits(self.model, model_inputs["blocks"], feature_extractor=self.feature_extractor,
                                            total_samples=model_inputs["total_samples"], **kwargs)}  # fmt: skip

    def postprocess(self, model_outputs, return_timestamps=None, decoder="greedy", beam_width=32, lm_path=None):
        config = self.model.config
        decoded = ctc_decode(model_outputs["logits"], config.ctc_vocab, decoder, int(beam_width), lm_path)
        result = {"text": decoded["text"]}
        if return_timestamps == "word":
            words = word_timings(decoded["tokens"], config.frame_seconds)
            result["chunks"] = [{"text": w["word"], "timestamp": (w["start"], w["end"])} for w in words]
        elif return_timestamps == "char":
            result["chunks"] = [
                {"text": " " if token == WORD_DELIMITER else token,
                 "timestamp": (round(start * config.frame_seconds, 3), round(end * config.frame_seconds, 3))}
                for token, start, end in decoded["tokens"]
            ]  # fmt: skip
        return result


class SVUAudioClassificationPipeline(AudioClassificationPipeline):
    """transformers' `audio-classification` pipeline, reading files, URLs and encoded bytes through `audio_decode`
    (the decode path of data preparation, `svu transcribe` and `singing-transcription`) instead of transformers'
    `ffmpeg_read` (FFmpeg's own resampler and downmix), and resampling arrays, dicts and `AudioDecoder`s at other
    rates with the same resampler (transformers' needs torchaudio). SVU classification models save it as their
    `audio-classification` pipeline, so `pipeline("audio-classification", model=<saved SVU model>,
    trust_remote_code=True)` uses it; with a model object, pass `pipeline_class=SVUAudioClassificationPipeline`.
    """

    def _sanitize_parameters(self, **options):
        check_call_options(self.model, options)  # transformers' own accepts and ignores any option
        return super()._sanitize_parameters(**options)

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


# the custom pipelines SVU models save with them (`SVUPreTrainedModel.save_pretrained`), by pipeline task
CUSTOM_PIPELINES = {task.pipeline: globals()[task.pipeline_class] for task in TASKS.values()}
for _task in TASKS.values():
    _impl = PIPELINE_REGISTRY.supported_tasks.get(_task.pipeline, {}).get("impl")
    if not (isinstance(_impl, str) and _impl.startswith("transformers.")):  # else transformers has that task
        PIPELINE_REGISTRY.register_pipeline(_task.pipeline, pipeline_class=CUSTOM_PIPELINES[_task.pipeline],
                                            pt_model=getattr(transformers, _task.auto_classes[0]), type="audio")
