"""The Gradio Space (`space/app.py`) in a real browser: `svu space --model M` serves it on localhost, headless
Chromium (Debian `chromium` + `chromium-driver`, driven by selenium) uploads a sung clip, clicks Run and reads
the result, for the view of every pipeline the task registry names: the predicted label of a classifier; the piano
roll image, the notes table and the MIDI link of a transcriber; the F0 contour image and the F0 table / CSV of a
pitch model; the lyrics, the timed words and their CSV of a lyrics transcriber. `scripts/setup.sh` installs Chromium; the test skips only where it could not be installed."""

import csv
import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import sung_tone
from data_fixtures import constant_pitch_model

from svu.modeling_svu import (
    TASKS,
    SVUForLyricsTranscription,
    SVUForNoteTranscription,
    SVUForTechniqueClassification,
    tiny_backbone_config,
)
from svu.train.native_export import save_native

REPO = Path(__file__).resolve().parents[1]
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
LABELS = {0: "belt", 1: "breathy", 2: "vibrato"}

pytestmark = [
    pytest.mark.timeout(600),
    pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="Chromium / chromedriver not installed (apt-get install "
                       "chromium chromium-driver; scripts/setup.sh does it where apt works)"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def serve(tmp_path):
    """Start `svu space --model M` on a free port; yield its URL; stop it (by its pid) afterwards."""
    started = []

    def start(model_dir):
        port = free_port()
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONPATH": str(REPO)}
        log = open(tmp_path / f"space_{port}.log", "w")
        proc = subprocess.Popen([sys.executable, "-m", "svu", "space", "--model", str(model_dir), "--port", str(port)],
                                cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
        started.append(proc)
        url = f"http://127.0.0.1:{port}/"
        deadline = time.time() + 300
        while time.time() < deadline:
            assert proc.poll() is None, (tmp_path / f"space_{port}.log").read_text()[-3000:]
            try:
                urllib.request.urlopen(url, timeout=5)
                return url
            except OSError:
                time.sleep(2)
        raise AssertionError("the Space did not start in 300 s")

    yield start
    for proc in started:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def sung_clip(path) -> Path:
    audio = np.concatenate([sung_tone(220, 1.0, seed=1), np.zeros(1600, np.float32), sung_tone(330, 1.0, seed=2)])
    sf.write(path, audio, 16000)
    return path


def upload_and_run(browser, url, clip):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    wait = WebDriverWait(browser, 180)
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#audio-input input[type=file]"))).send_keys(str(clip))
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#audio-input audio, #audio-input .waveform-container, #audio-input [data-testid=waveform-controls]")))
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "#run"))).click()
    return wait


def wait_for_image(wait, selector: str, wider_than: int):
    """Wait until the image under `selector` has loaded, wider than `wider_than` pixels."""
    from selenium.webdriver.common.by import By

    image = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f"{selector} img"))[0]
    wait.until(lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image) > wider_than)


def download(wait, link_selector: str) -> bytes:
    from selenium.webdriver.common.by import By

    link = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, link_selector))[0]
    with urllib.request.urlopen(link.get_attribute("href"), timeout=30) as response:
        return response.read()


def classifier_in_chromium(tmp_path, serve, browser):
    from selenium.webdriver.common.by import By

    torch.manual_seed(0)
    model = SVUForTechniqueClassification.from_backbone(tiny_backbone_config("wavlm"), id2label=LABELS)
    with torch.no_grad():
        model.head.bias.copy_(torch.tensor([0.0, 0.0, 8.0]))  # "vibrato" whatever the audio
    save_native(model, tmp_path / "classifier")
    url = serve(tmp_path / "classifier")
    wait = upload_and_run(browser, url, sung_clip(tmp_path / "sung.wav"))
    wait.until(lambda d: "vibrato" in d.find_element(By.CSS_SELECTOR, "#label").text)
    shown = browser.find_element(By.CSS_SELECTOR, "#label").text
    assert [line.strip() for line in shown.splitlines()[:2]] == ["Prediction", "vibrato"], shown  # title, top class
    wait_for_image(wait, "#chart", 100)


def transcriber_in_chromium(tmp_path, serve, browser):
    from selenium.webdriver.common.by import By

    torch.manual_seed(0)
    SVUForNoteTranscription.from_backbone(tiny_backbone_config("hubert")).save_pretrained(tmp_path / "transcriber")
    url = serve(tmp_path / "transcriber")
    wait = upload_and_run(browser, url, sung_clip(tmp_path / "sung.wav"))
    wait_for_image(wait, "#piano-roll", 500)
    assert download(wait, "#midi a[href$='.mid']")[:4] == b"MThd"  # a Standard MIDI File
    assert "MIDI pitch" in browser.find_element(By.CSS_SELECTOR, "#notes").text


def pitch_contour_in_chromium(tmp_path, serve, browser):
    from selenium.webdriver.common.by import By

    hz = constant_pitch_model(tmp_path / "pitch", 220.0)  # every frame but digital silence: voiced at `hz`
    url = serve(tmp_path / "pitch")
    wait = upload_and_run(browser, url, sung_clip(tmp_path / "sung.wav"))
    wait_for_image(wait, "#pitch-contour", 500)
    header, *rows = csv.reader(io.StringIO(download(wait, "#pitch-csv a[href$='.csv']").decode()))
    assert header == ["time (s)", "F0 (Hz)", "voicing", "voiced"]
    voiced_f0 = [float(f0) for _, f0, _, voiced in rows if voiced == "True"]
    assert len(voiced_f0) > 0.9 * len(rows) and voiced_f0 == pytest.approx([hz] * len(voiced_f0), abs=0.01)
    assert "F0 (Hz)" in browser.find_element(By.CSS_SELECTOR, "#pitch-table").text


def lyrics_in_chromium(tmp_path, serve, browser):
    from selenium.webdriver.common.by import By

    torch.manual_seed(0)
    model = SVUForLyricsTranscription.from_backbone(tiny_backbone_config("wav2vec2"))
    with torch.no_grad():  # "L" on every frame: the lyrics are one word "L" over the whole clip
        model.head.weight.zero_()
        model.head.bias.fill_(-10.0)
        model.head.bias[model.config.ctc_vocab.index("L")] = 10.0
    model.save_pretrained(tmp_path / "lyrics")
    clip = tmp_path / "sung.wav"  # no digital silence: the pipeline's silence gate would split the word ("LL")
    sf.write(clip, sung_tone(220, 2.0, seed=1), 16000)
    url = serve(tmp_path / "lyrics")
    wait = upload_and_run(browser, url, clip)
    header, *rows = csv.reader(io.StringIO(download(wait, "#lyrics-csv a[href$='.csv']").decode()))
    assert header == ["word", "start (s)", "end (s)"]
    assert len(rows) == 1 and rows[0][0] == "L" and float(rows[0][1]) == 0.0, rows
    assert abs(float(rows[0][2]) - sf.info(clip).duration) < 0.05, rows
    assert browser.find_element(By.CSS_SELECTOR, "#lyrics-text textarea").get_attribute("value") == "L"
    assert "start (s)" in browser.find_element(By.CSS_SELECTOR, "#lyrics-words").text


# the browser check of each pipeline's view; a task whose pipeline has none fails the test below
VIEW_CHECKS = {
    "audio-classification": classifier_in_chromium,
    "singing-transcription": transcriber_in_chromium,
    "singing-pitch": pitch_contour_in_chromium,
    "automatic-speech-recognition": lyrics_in_chromium,
}


@pytest.mark.parametrize("pipeline", sorted({task.pipeline for task in TASKS.values()}))
def test_space_view_of_every_task_pipeline_in_chromium(pipeline, tmp_path, serve, browser):
    assert pipeline in VIEW_CHECKS, f"no browser check of the Space's {pipeline} view"
    VIEW_CHECKS[pipeline](tmp_path, serve, browser)
