"""Prepared audio keeps the band every supported backbone hears: a 10 kHz partial of a 44.1 kHz recording reaches
a 24 kHz (MERT-v1-like) model's training batch; a folder storing less than a model needs is refused in one line."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from svu.dataset_scripts.prepare import META_FILE, check_stored_rate, load_prepared, prepare
from svu.modeling_svu import SVUForTechniqueClassification
from svu.cli import main as svu_main
from svu.train.data import AudioCollator, columns_for, make_dataloader

SOURCE_RATE = 44100
HIGH_HZ = 10000.0


def band_share_db(wave: np.ndarray, rate: int, centre_hz: float, half_width_hz: float = 200.0) -> float:
    """Power within `centre_hz` +- `half_width_hz`, in dB relative to the wave's whole power."""
    power = np.abs(np.fft.rfft(wave * np.hanning(len(wave)))) ** 2
    freqs = np.fft.rfftfreq(len(wave), 1 / rate)
    band = power[np.abs(freqs - centre_hz) <= half_width_hz].sum()
    return 10 * np.log10(max(band, 1e-30) / power.sum())


def sung_tone_with_air(seconds: float) -> np.ndarray:
    """A 220 Hz tone with vibrato and a quiet 10 kHz partial (-15.6 dB), as breath or cymbal air above 8 kHz."""
    t = np.arange(int(seconds * SOURCE_RATE)) / SOURCE_RATE
    sung = 0.3 * np.sin(2 * np.pi * 220 * t + 0.5 * np.sin(2 * np.pi * 5.5 * t))
    return (sung + 0.05 * np.sin(2 * np.pi * HIGH_HZ * t)).astype(np.float32)


def mert_v1_like():
    torch.manual_seed(0)
    return SVUForTechniqueClassification.from_backbone("tiny-hubert", sampling_rate=24000).eval()


@pytest.fixture(scope="module")
def vocalset(tmp_path_factory):
    """A VocalSet tree holding one 3.3 s recording at 44.1 kHz, prepared; (its folder, the source wave)."""
    root = tmp_path_factory.mktemp("vocalset")
    source = sung_tone_with_air(3.3)
    path = root / "FULL" / "female1" / "long_tones" / "straight" / "f1_long_straight_a.wav"
    path.parent.mkdir(parents=True)
    sf.write(path, source, SOURCE_RATE, subtype="PCM_16")
    prepare("vocalset", root / "prepared", data_dir=root)
    return root / "prepared", source


def test_a_24khz_models_training_batch_keeps_a_10khz_partial_of_the_source(vocalset):
    folder, source = vocalset
    data, meta = load_prepared(folder)
    assert meta["sampling_rate"] == 24000 and data["train"][0]["audio"]["sampling_rate"] == 24000
    model = mert_v1_like()
    check_stored_rate(meta, model.config.sampling_rate, where=str(folder))  # the training check lets it through
    collator = AudioCollator(model.feature_extractor(), "technique", model.config)
    batch = next(iter(make_dataloader(data["train"], columns_for("technique"), collator, 1)))
    heard = batch["input_values"][0].numpy()
    assert len(heard) == 3 * 24000
    expected = band_share_db(source, SOURCE_RATE, HIGH_HZ)
    assert expected == pytest.approx(-15.6, abs=0.3)  # (0.05 / 0.3) ** 2 of the power
    assert band_share_db(heard, 24000, HIGH_HZ) == pytest.approx(expected, abs=1.0)  # 16 kHz storage: -156 dB


def test_a_model_needing_more_than_the_stored_rate_is_refused_in_one_line(vocalset, tmp_path, capsys):
    folder, _ = vocalset
    _, meta = load_prepared(folder)
    older = {key: value for key, value in meta.items() if key != "sampling_rate"}  # an older SVU's folder: 16 kHz
    model = mert_v1_like()
    with pytest.raises(ValueError) as refused:
        check_stored_rate(older, model.config.sampling_rate, where="data/old")
    message = str(refused.value)
    assert "\n" not in message and "stores audio at 16000 Hz" in message and "needs 24000 Hz" in message

    old_folder = tmp_path / "old"
    old_folder.mkdir()
    for item in folder.iterdir():
        (old_folder / item.name).symlink_to(item)
    (old_folder / META_FILE).unlink()
    (old_folder / META_FILE).write_text(json.dumps(older))
    model.save_pretrained(tmp_path / "model")
    with pytest.raises(SystemExit) as stopped:
        svu_main(["evaluate", "--model", str(tmp_path / "model"), "--data", str(old_folder), "-o", str(tmp_path / "e")])
    line = str(stopped.value.code)
    assert "\n" not in line and line.startswith(f"svu evaluate: --data {old_folder}: ")
    assert "stores audio at 16000 Hz" in line and "needs 24000 Hz" in line
