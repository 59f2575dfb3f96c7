"""One decode and resample path (`modeling_svu.audio_io`): the same wav, flac and mp3 give the same samples at a
given rate through data preparation (at the stored rate, and `load_audio` at any rate), `svu transcribe`, the
singing-transcription pipeline and the SVU audio-classification pipeline (16 kHz models); a truncated file is
used with a warning naming it and both durations; the singing-transcription pipeline takes lists and
batch_size > 1."""

import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest
import soundfile as sf
import torch

from data_fixtures import TEST_DATA
from svu.dataset_scripts.audio import SAMPLING_RATE as STORED_RATE, load_audio
from svu.dataset_scripts.common import PrepareReport, read_audio_or_skip
from svu.modeling_svu import SVUForTechniqueClassification, audio_decode
from svu.modeling_svu.audio_io import TruncatedAudioWarning, decode_audio, open_audio

SR = 16000  # the models' rate here (tiny wav2vec2 / WavLM); data preparation decodes at STORED_RATE
# A real singing stem: MedleyDB-Pitch, male singer, 2 s, 44.1 kHz stereo (tests/data/singing_examples).
STEM = TEST_DATA / "singing_examples" / "medleydb_pitch" / "audio" / "AClassicEducation_NightOwl_STEM_08.wav"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The stem as wav (copied), flac and mp3 (44.1 kHz stereo each)."""
    root = tmp_path_factory.mktemp("formats")
    shutil.copy(STEM, root / "take.wav")
    data, rate = sf.read(STEM, dtype="float32")
    sf.write(root / "take.flac", data, rate)
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(STEM), "-b:a", "128k", str(root / "take.mp3")], check=True)
    return {suffix: root / f"take.{suffix}" for suffix in ("wav", "flac", "mp3")}


def recording(monkeypatch, module, name="transcribe_blocks"):
    """Patch ``module.<name>`` (``transcribe_blocks`` or ``stitched_posteriors``: ``(model, blocks, **kwargs)``)
    to record the sample blocks it is given (then run on them)."""
    seen = []
    real = getattr(module, name)

    def record(model, blocks, **kwargs):
        blocks = list(blocks)
        seen.append(np.concatenate(blocks))
        return real(model, iter(blocks), **kwargs)

    monkeypatch.setattr(module, name, record)
    return seen


def test_the_reference_decode_is_stereo_mean_then_soxr(files):
    """The one path, spelt out: the file's own samples, channels averaged, resampled by soxr "HQ"."""
    import soxr

    data, rate = sf.read(files["wav"], dtype="float32")
    assert rate == 44100 and data.shape[1] == 2
    expected = soxr.resample(data.mean(axis=1), rate, SR, quality="HQ")
    np.testing.assert_allclose(decode_audio(files["wav"], SR), expected, atol=1e-6, rtol=0)
    for suffix in ("flac", "mp3"):  # lossless: equal; mp3: the same audio through a codec
        other = decode_audio(files[suffix], SR)
        assert abs(len(other) - len(expected)) <= 1, suffix
    np.testing.assert_array_equal(decode_audio(files["flac"], SR), decode_audio(files["wav"], SR))


def test_streamed_blocks_join_to_the_whole_file(files):
    """`svu transcribe` and the pipeline stream; 0.3 s blocks (an mp3's first block is short: its encoder delay)
    join to exactly the whole-file decode, and the stream reaches the end of the file."""
    for suffix, path in files.items():
        whole = decode_audio(path, SR)
        _, blocks = open_audio(path, SR, block_seconds=0.3)
        np.testing.assert_array_equal(np.concatenate(list(blocks)), whole, err_msg=suffix)
        assert abs(len(whole) - 2.0 * SR) < 0.05 * SR, (suffix, len(whole))


def test_same_samples_through_every_entry_point(files, transcriber, monkeypatch, tmp_path):
    from transformers import pipeline

    from svu.modeling_svu import long_audio, pipeline_svu
    from svu.modeling_svu.pipeline_svu import SingingTranscriptionPipeline
    from svu.cli import main as svu_main

    model, folder = transcriber
    singing = SingingTranscriptionPipeline(model=model, feature_extractor=model.feature_extractor())
    classifier_dir = tmp_path / "technique"
    torch.manual_seed(0)
    SVUForTechniqueClassification.from_backbone("tiny-wavlm", id2label={0: "belt", 1: "vibrato"}).save_pretrained(
        classifier_dir
    )
    # Loaded as a user does: the saved repo's own pipeline class (remote code), not an imported one.
    classify = pipeline("audio-classification", model=str(classifier_dir), trust_remote_code=True)
    assert type(classify).__name__ == "SVUAudioClassificationPipeline"
    plain = pipeline("audio-classification", model=classify.model, feature_extractor=classify.feature_extractor)
    assert type(plain).__name__ == "AudioClassificationPipeline"

    # svu transcribe imports stitched_posteriors from long_audio when it runs (the pipeline reaches it too)
    cli_seen = recording(monkeypatch, long_audio, "stitched_posteriors")
    pipe_seen = recording(monkeypatch, pipeline_svu)
    for suffix, path in files.items():
        # data preparation decodes at the stored rate (what the corpus builders read through), and at any rate asked
        prepared = read_audio_or_skip(path, suffix, PrepareReport())
        np.testing.assert_array_equal(prepared, decode_audio(path, STORED_RATE), err_msg=f"data preparation, {suffix}")
        reference = decode_audio(path, SR)
        np.testing.assert_array_equal(load_audio(path, SR), reference, err_msg=f"load_audio at {SR} Hz, {suffix}")

        assert svu_main(["transcribe", str(path), "--model", str(folder), "-o", str(tmp_path / suffix), "-q"]) == 0
        np.testing.assert_array_equal(cli_seen.pop(), reference, err_msg=f"svu transcribe, {suffix}")
        cli_seen.clear()

        notes = singing(str(path))["notes"]
        np.testing.assert_array_equal(pipe_seen.pop(), reference, err_msg=f"singing-transcription, {suffix}")
        assert notes == singing(reference)["notes"] != []

        features = classify.preprocess(str(path))["input_values"]
        expected = classify.feature_extractor(reference, sampling_rate=SR, return_tensors="pt")["input_values"]
        torch.testing.assert_close(features, expected, atol=0, rtol=0, msg=f"audio-classification, {suffix}")
        # transformers' own pipeline decodes paths with its ffmpeg_read (FFmpeg's resampler and downmix): it
        # differs, which is why SVU models ship the pipeline above (and why this comparison can fail).
        theirs = plain.preprocess(str(path))["input_values"]
        assert theirs.shape != expected.shape or not torch.equal(theirs, expected), suffix


def test_fallback_without_torchcodec_matches(files, monkeypatch):
    """The svu package where torchcodec or soxr cannot load: an ffmpeg subprocess (its libsoxr) gives the same
    audio within 2e-6 (per-channel resampling before the mean, not bit for bit). A saved repo's pipelines read
    through `audio_decode`, which carries no subprocess: there, files are one ImportError naming what to install,
    and arrays at the model's rate need nothing."""
    references = {suffix: decode_audio(path, SR) for suffix, path in files.items()}
    monkeypatch.setattr(audio_decode, "_main_backend", lambda: None)
    for suffix, path in files.items():
        fallback = decode_audio(path, SR)
        assert len(fallback) == len(references[suffix]), suffix
        np.testing.assert_allclose(fallback, references[suffix], atol=2e-6, rtol=0, err_msg=suffix)
    with pytest.raises(ValueError, match="no such file"):
        decode_audio(files["wav"].with_name("missing.wav"), SR)
    with pytest.raises(ImportError, match="pip install torchcodec soxr"):
        audio_decode.decode_audio(files["wav"], SR)
    with pytest.raises(ImportError, match="pip install torchcodec soxr"):
        audio_decode.resample(references["wav"], SR, 8000)


@pytest.fixture(scope="module")
def truncated(tmp_path_factory):
    """The first 700 bytes of a 4 s mp3: its Xing header still declares 4 s, 0.05 s decodes."""
    root = tmp_path_factory.mktemp("truncated")
    t = np.arange(4 * 44100) / 44100
    sf.write(root / "full.wav", 0.3 * np.sin(2 * np.pi * 220 * t), 44100)
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(root / "full.wav"), "-b:a", "64k", str(root / "full.mp3")], check=True)
    path = root / "cut.mp3"
    path.write_bytes((root / "full.mp3").read_bytes()[:700])
    return path


TRUNCATED = r"cut\.mp3: decoded 0\.05 s of audio but the file declares 4\.\d\d s; it looks truncated"


def test_truncated_file_warns_and_is_used(truncated, transcriber, tmp_path):
    with pytest.warns(TruncatedAudioWarning, match=TRUNCATED):
        waveform = load_audio(truncated)
    assert 0.03 * STORED_RATE < len(waveform) < 0.07 * STORED_RATE and np.abs(waveform).max() > 0.1

    report = PrepareReport()  # data preparation keeps the warning in the report (svu_meta.json)
    with pytest.warns(TruncatedAudioWarning):
        assert read_audio_or_skip(truncated, "cut", report) is not None
    assert len(report.messages) == 1 and str(truncated) in report.messages[0] and "declares 4." in report.messages[0]

    model, folder = transcriber
    from svu.modeling_svu.pipeline_svu import SingingTranscriptionPipeline

    with pytest.warns(TruncatedAudioWarning, match=TRUNCATED):
        SingingTranscriptionPipeline(model=model, feature_extractor=model.feature_extractor())(str(truncated))

    command = [sys.executable, "-m", "svu", "transcribe", str(truncated), "--model", str(folder), "-o", str(tmp_path),
               "--format", "json", "-q"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    warning = [line for line in lines if line.startswith("svu transcribe: warning:")]
    assert len(warning) == 1 and str(truncated) in warning[0], result.stderr
    assert "Traceback" not in result.stderr and (tmp_path / "cut.json").exists()


def test_whole_files_do_not_warn(files):
    with warnings.catch_warnings():
        warnings.simplefilter("error", TruncatedAudioWarning)
        for path in files.values():
            load_audio(path)


def test_singing_transcription_takes_lists_and_batches(files, transcriber):
    from transformers import pipeline

    model, folder = transcriber
    pipe = pipeline(model=str(folder), trust_remote_code=True)
    inputs = [str(files["wav"]), decode_audio(files["mp3"], SR), {"raw": sf.read(files["flac"])[0], "sampling_rate": 44100}]
    one_by_one = [pipe(x)["notes"] for x in inputs]
    assert all(one_by_one) and one_by_one[0] == one_by_one[2]  # wav and flac: the same samples
    assert [r["notes"] for r in pipe(inputs)] == one_by_one
    assert [r["notes"] for r in pipe(inputs, batch_size=2)] == one_by_one
    assert pipe(inputs[0], batch_size=3)["notes"] == one_by_one[0]
    batched = pipeline(model=str(folder), trust_remote_code=True, batch_size=4)
    assert [r["notes"] for r in batched(inputs)] == one_by_one


@pytest.mark.parametrize("without_torch", [False, True], ids=["torchcodec", "libsndfile"])
def test_a_wav_cut_short_warns_through_either_reader_and_a_streamed_one_does_not(tmp_path, without_torch):
    """FFmpeg and libsndfile take a WAV's length from the file's size: its data chunk's declared size tells."""
    rng = np.random.default_rng(0)
    sf.write(tmp_path / "whole.wav", rng.uniform(-0.5, 0.5, (32000, 2)).astype(np.float32), 16000, subtype="PCM_24")
    data = (tmp_path / "whole.wav").read_bytes()
    start = data.index(b"data") + 8
    (tmp_path / "cut.wav").write_bytes(data[: start + 8000 * 6])  # a copy stopped after 8000 whole frames
    streamed = bytearray(data)  # a writer that could not go back to fill in the sizes
    streamed[4:8] = streamed[data.index(b"data") + 4 : data.index(b"data") + 8] = b"\xff\xff\xff\xff"
    (tmp_path / "streamed.wav").write_bytes(bytes(streamed))

    def read(name):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            total, blocks = open_audio(tmp_path / name, 16000, without_torch=without_torch)
            samples = np.concatenate(list(blocks))
        return total, samples, [str(w.message) for w in caught if issubclass(w.category, TruncatedAudioWarning)]

    whole = read("whole.wav")
    assert whole[0] == 32000 and len(whole[1]) == 32000 and not whole[2]
    total, samples, warned = read("cut.wav")
    assert total == 32000 and len(samples) == 8000
    np.testing.assert_array_equal(samples, whole[1][: len(samples)])
    assert len(warned) == 1 and warned[0].startswith(f"{tmp_path / 'cut.wav'}: decoded 0.50 s of audio but the file "
                                                     "declares 2.00 s; it looks truncated"), warned  # fmt: skip
    assert not read("streamed.wav")[2]
