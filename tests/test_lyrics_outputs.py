"""Lyrics scoring (Jam-ALT normalisation, WER/CER) and `svu lyrics` outputs (txt, json, srt, lrc: same words; SRT
and LRC parse back)."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from svu.lyrics import format_lyrics, lyric_lines, parse_lrc, parse_srt
from svu.train.evaluation import load_metric

WORDS = [{"word": "LA", "start": 0.3, "end": 0.5}, {"word": "MI", "start": 0.62, "end": 0.9},
         {"word": "LUNA", "start": 2.0, "end": 2.6}, {"word": "SO", "start": 2.7, "end": 3.05}]


@pytest.mark.parametrize(("raw", "normalised"), [
    ("Don’t STOP me now!", "don't stop me now"),
    ("Rock-n-roll / all night", "rock n roll all night"),
    ("(Oh, oh) 'cause I'm singin'", "oh oh 'cause i'm singin'"),
    ("I was 21 in 1999", "i was twenty one in one thousand nine hundred ninety nine"),
    ("3.5 ' ' stars…", "three point five stars"),
])
def test_jam_alt_normalisation(raw, normalised):
    import importlib.util
    from svu.train.evaluation import METRICS_DIR

    spec = importlib.util.spec_from_file_location("lyrics_metric", METRICS_DIR / "lyrics" / "lyrics.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.normalize(raw) == normalised


def test_wer_and_cer_of_songs_and_chunks():
    metric = load_metric("lyrics")
    same = metric.compute(predictions=["LA MI", "so"], references=["La, mi!", "So."], song_ids=["a", "a"])
    assert same["wer"] == 0.0 and same["cer"] == 0.0 and same["num_songs"] == 1
    scores = metric.compute(predictions=["la mo", ""], references=["la mi", "so"], song_ids=["a", "b"])
    assert scores["wer"] == pytest.approx(2 / 3)  # one substitution, one deletion over three words
    assert scores["cer"] == pytest.approx(3 / 7)  # "la mi" (5) + "so" (2): one substitution, two deletions
    assert [row["wer"] for row in scores["per_song"]] == [0.5, 1.0]
    assert scores["neg_cer"] == -scores["cer"]


def test_formats_carry_the_same_words_and_parse_back():
    lines = lyric_lines(WORDS, max_gap=0.6)
    assert [line["text"] for line in lines] == ["LA MI", "LUNA SO"]
    record = {"file": "take.wav", "model": "m", "decoder": "greedy"}
    result = {"text": "LA MI LUNA SO", "words": WORDS}
    texts = {fmt: format_lyrics(result, fmt, record, lines) for fmt in ("txt", "json", "srt", "lrc")}
    assert texts["txt"].split() == ["LA", "MI", "LUNA", "SO"]
    assert [w["word"] for w in json.loads(texts["json"])["words"]] == ["LA", "MI", "LUNA", "SO"]
    cues = parse_srt(texts["srt"])
    assert [(c["start"], c["end"], c["text"]) for c in cues] == [(0.3, 0.9, "LA MI"), (2.0, 3.05, "LUNA SO")]
    lrc = parse_lrc(texts["lrc"])
    assert [line["start"] for line in lrc] == [0.3, 2.0]
    assert [(w["word"], w["start"]) for line in lrc for w in line["words"]] == [(w["word"], round(w["start"], 2)) for w in WORDS]


def test_svu_lyrics_writes_every_format_with_the_same_words(tmp_path):
    from svu.cli import main
    from svu.modeling_svu import SVUForLyricsTranscription

    torch.manual_seed(0)
    model = SVUForLyricsTranscription.from_backbone("tiny-wav2vec2")
    model.save_pretrained(tmp_path / "model")
    t = np.arange(48000) / 16000
    sf.write(tmp_path / "take.wav", (0.3 * np.sin(2 * np.pi * 220 * t) * (t % 0.5 < 0.3)).astype(np.float32), 16000)
    out = tmp_path / "out"
    args = ["lyrics", str(tmp_path / "take.wav"), "--model", str(tmp_path / "model"), "-o", str(out), "--quiet"]
    assert main(args + [arg for fmt in ("txt", "json", "srt", "lrc") for arg in ("--format", fmt)]) == 0
    words = [w["word"] for w in json.loads((out / "take.lyrics.json").read_text())["words"]]
    assert words  # a random head still emits characters
    assert (out / "take.lyrics.txt").read_text().split() == words
    assert " ".join(c["text"] for c in parse_srt((out / "take.lyrics.srt").read_text())).split() == words
    assert [w["word"] for line in parse_lrc((out / "take.lyrics.lrc").read_text()) for w in line["words"]] == words
