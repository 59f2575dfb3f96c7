"""The lyrics corpus builders on trees in their real layouts, written here: DSing's Kaldi lists (train30 / dev /
test: text, segments, utt2spk, wav.scp with sox pipes onto Sing! m4a files), a JamendoLyrics clone
(JamendoLyrics.csv, mp3/, annotations/lines and annotations/words CSVs), DALI (gzipped JSON per song, audio found by
id) and Jam-ALT (the Hub dataset's Parquet files and columns). In each, one audio file is missing and one corrupt:
both are named and counted, and the rest is prepared as line-level chunks with their words."""

import gzip
import json
import subprocess

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from data_fixtures import write_corrupt
from svu.dataset_scripts.audio import SAMPLING_RATE as STORED
from svu.dataset_scripts.prepare import load_prepared, prepare

SR = 44100


def tone(seconds: float, hz: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def write_audio(path, seconds: float, hz: float = 220.0):
    """A tone as wav, or through ffmpeg as mp3 / m4a (the corpora's own formats)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".wav":
        sf.write(path, tone(seconds, hz), SR)
        return path
    wav = path.with_suffix(".tmp.wav")
    sf.write(wav, tone(seconds, hz), SR)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(wav), str(path)], check=True)
    wav.unlink()
    return path


def report_of(out):
    return load_prepared(out)[1]["report"]


# ---------------------------------------------------------------- DSing


def kaldi_set(root, name: str, utterances: list):
    """data/<name>/{text,segments,utt2spk,wav.scp} of (utt_id, rec_id, start, end, text) rows, as the recipe writes."""
    folder = root / "data" / name
    folder.mkdir(parents=True)
    recordings = sorted({u[1] for u in utterances})
    (folder / "text").write_text("".join(f"{u[0]} {u[4]}\n" for u in utterances))
    (folder / "segments").write_text("".join(f"{u[0]} {u[1]} {u[2]:.3f} {u[3]:.3f}\n" for u in utterances))
    (folder / "utt2spk").write_text("".join(f"{u[0]} {u[0].split('-')[0]}\n" for u in utterances))
    (folder / "wav.scp").write_text("".join(
        f"{rec} sox wav/GB/GBVocals/{rec}.m4a -G -t wav -r 16000 -c 1 - remix 1 | \n" for rec in recordings))


def utterance(spk: str, rec: str, index: int, start: float, end: float, text: str) -> tuple:
    return (f"{spk}-{rec}-GB-M-{index:03}", rec, start, end, text)


@pytest.fixture(scope="module")
def dsing_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("dsing") / "s5"
    vocals = root / "wav" / "GB" / "GBVocals"
    kaldi_set(root, "train30", [utterance("M1", "rec1", 1, 0.5, 2.0, "WISE MEN SAY"),
                                utterance("M1", "rec1", 2, 2.5, 4.0, "ONLY FOOLS RUSH IN"),
                                utterance("F2", "rec2", 1, 0.2, 1.5, "BUT I CAN'T HELP"),
                                utterance("F3", "rec3", 1, 0.2, 1.5, "FALLING IN LOVE")])
    kaldi_set(root, "dev", [utterance("M4", "rec4", 1, 0.3, 1.8, "LIKE A RIVER FLOWS")])
    kaldi_set(root, "test", [utterance("F5", "rec5", 1, 0.3, 1.8, "SURELY TO THE SEA"),
                             utterance("F6", "rec6", 1, 0.3, 1.8, "TAKE MY HAND")])
    for rec, seconds in (("rec1", 4.5), ("rec4", 2.0), ("rec5", 2.0)):
        write_audio(vocals / f"{rec}.m4a", seconds)
    write_corrupt(vocals / "rec3.m4a")  # rec2 (train) and rec6 (test) have no audio at all
    write_audio(vocals / "rec6.m4a", 2.0).unlink()
    return root


def test_dsing_utterances_become_chunks_and_bad_audio_is_named(dsing_tree, tmp_path):
    dataset = prepare("dsing", tmp_path / "out", data_dir=dsing_tree)
    assert {split: len(dataset[split]) for split in dataset} == {"train": 2, "validation": 1, "test": 1}
    rows = dataset["train"].remove_columns("audio")
    assert rows["text"] == ["WISE MEN SAY", "ONLY FOOLS RUSH IN"]
    assert rows["song_id"] == ["rec1", "rec1"] and rows["singer"] == ["M1", "M1"]
    assert rows["chunk_start"] == pytest.approx([0.4, 2.4]) and rows["words"] == [[], []]
    assert len(dataset["train"][0]["audio"]["array"]) == pytest.approx(1.7 * STORED, abs=2)  # 0.5-2.0 s +- 0.1 s
    report = report_of(tmp_path / "out")
    assert report["skipped"] == {"missing file": ["rec2", "rec6"], "unreadable audio": ["rec3"]}
    assert report["files_found"] == 6 and report["files_used"] == 3
    assert any("rec3.m4a" in message for message in report["messages"])
    meta = load_prepared(tmp_path / "out")[1]
    assert meta["songs"]["rec1"]["text"] == "WISE MEN SAY ONLY FOOLS RUSH IN"


def test_dsing_train_option_picks_the_list(dsing_tree, tmp_path):
    with pytest.raises(ValueError, match="has no text, segments, utt2spk, wav.scp"):
        prepare("dsing", tmp_path / "out", data_dir=dsing_tree, train="train3")


# ---------------------------------------------------------------- JamendoLyrics

JAMENDO_HEADER = "URL,Filepath,Artist,Title,Genre,LicenseType,Language,LyricOverlap,Polyphonic,NonLexical\n"
JAMENDO_LINES = {  # stem -> [(start, end, line)]
    "Avercage_-_Embers": [(0.4, 1.6, "through days of thunders"), (2.0, 3.5, "we're going on")],
    "Color_Out_-_Falling_Star": [(0.5, 1.5, "falling star")],
    "HILA_-_Give_Me_the_Same": [(0.5, 1.5, "give me the same")],
    "Kinematic_-_Peyote": [(0.5, 1.5, "peyote")],
    "Baila_-_Alfonso_Lugo": [(0.5, 1.5, "baila conmigo")],
}


@pytest.fixture(scope="module")
def jamendo_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("jamendo") / "jamendolyrics"
    (root / "annotations" / "lines").mkdir(parents=True)
    (root / "annotations" / "words").mkdir(parents=True)
    rows = []
    for stem, lines in JAMENDO_LINES.items():
        language = "Spanish" if stem.startswith("Baila") else "English"
        rows.append(f"https://www.jamendo.com/track/1/x,{stem}.mp3,{stem.split('_-_')[0]},T,Pop,CC BY,{language},"
                    "false,false,false\n")
        (root / "annotations" / "lines" / f"{stem}.csv").write_text(
            "start_time,end_time,lyrics_line\n" + "".join(f"{s},{e},{text}\n" for s, e, text in lines))
        words = []
        for start, end, text in lines:
            count = len(text.split())
            edges = np.linspace(start, end, count + 1)
            words += [f"{edges[i]:.4f},{edges[i + 1]:.4f},{end if i == count - 1 else 'nan'}\n" for i in range(count)]
        (root / "annotations" / "words" / f"{stem}.csv").write_text("word_start,word_end,line_end\n" + "".join(words))
    (root / "JamendoLyrics.csv").write_text(JAMENDO_HEADER + "".join(rows))
    write_audio(root / "mp3" / "Avercage_-_Embers.mp3", 4.0)
    write_audio(root / "mp3" / "Color_Out_-_Falling_Star.mp3", 2.0)
    write_audio(root / "mp3" / "Baila_-_Alfonso_Lugo.mp3", 2.0)
    write_corrupt(root / "mp3" / "HILA_-_Give_Me_the_Same.mp3")  # Kinematic's mp3 is missing (a clone without it)
    (root / "annotations" / "words" / "Color_Out_-_Falling_Star.csv").write_text("word_start,word_end,line_end\n0,1,1\n")
    return root.parent


def test_jamendolyrics_lines_with_words_and_bad_audio_named(jamendo_tree, tmp_path):
    dataset = prepare("jamendolyrics", tmp_path / "out", data_dir=jamendo_tree)  # English, all test data
    assert {split: len(dataset[split]) for split in dataset} == {"train": 0, "validation": 0, "test": 3}
    first = dataset["test"][0]
    assert first["text"] == "through days of thunders" and first["song_id"] == "Avercage_-_Embers"
    assert [w["word"] for w in first["words"]] == ["through", "days", "of", "thunders"]
    assert first["words"][0]["start"] == pytest.approx(0.1, abs=1e-4)  # from the chunk's start (0.4 s - 0.1 s)
    assert first["words"][-1]["end"] == pytest.approx(1.3, abs=1e-4)
    assert dataset["test"][2]["words"] == []  # Color Out: 1 word time for 2 words, its line kept untimed
    report = report_of(tmp_path / "out")
    assert report["skipped"] == {"missing audio file": ["Kinematic_-_Peyote"], "unreadable audio": ["HILA_-_Give_Me_the_Same"]}
    assert report["files_found"] == 4 and report["files_used"] == 2
    messages = "\n".join(report["messages"])
    assert "Kinematic_-_Peyote.mp3: no such file (listed in JamendoLyrics.csv)" in messages
    assert "Color_Out_-_Falling_Star: 1 word times for 2 words" in messages
    assert "3 of 4 listed English songs (audio and lines) have an audio file" in messages


def test_jamendolyrics_language_option(jamendo_tree, tmp_path):
    dataset = prepare("jamendolyrics", tmp_path / "out", data_dir=jamendo_tree, language="Spanish")
    assert dataset["test"]["text"] == ["baila conmigo"]
    with pytest.raises(ValueError, match="no such Language"):
        prepare("jamendolyrics", tmp_path / "out2", data_dir=jamendo_tree, language="Klingon")


# ---------------------------------------------------------------- DALI


def dali_song(song_id: str, language: str, lines: list) -> dict:
    """A DALI annotation as write_json exports it: lines and their words (index = the word's line)."""
    words, line_entries = [], []
    for position, (start, end, text) in enumerate(lines):
        line_entries.append({"text": text, "time": [start, end], "freq": [200.0, 400.0], "index": 0})
        edges = np.linspace(start, end, len(text.split()) + 1)
        words += [{"text": word, "time": [float(edges[i]), float(edges[i + 1])], "freq": [220.0, 220.0],
                   "index": position} for i, word in enumerate(text.split())]
    return {"info": {"id": song_id, "artist": f"artist of {song_id}", "title": "t",
                     "audio": {"url": "yt", "path": "None", "working": True},
                     "metadata": {"language": language, "genres": ["Pop"]}},
            "annotations": {"type": "horizontal", "annot": {
                "notes": [], "words": words, "lines": line_entries,
                "paragraphs": [{"text": "p", "time": [lines[0][0], lines[-1][1]], "freq": [200.0, 400.0], "index": 0}]}}}


@pytest.fixture(scope="module")
def dali_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("dali") / "DALI_v1.0"
    root.mkdir()
    songs = {f"{i:032x}": [(0.3, 1.2, "hello my love"), (1.5, 2.5, "goodbye")] for i in range(1, 11)}
    songs[f"{11:032x}"] = [(0.3, 1.2, "hola amor")]
    for song_id, lines in songs.items():
        with gzip.open(root / f"{song_id}.gz", "wt", encoding="utf-8") as handle:
            json.dump(dali_song(song_id, "spanish" if song_id.endswith("b") else "english", lines), handle)
        if int(song_id, 16) <= 8:
            write_audio(root / "audio" / f"{song_id}.mp3" if int(song_id, 16) % 2 else root / "audio" / f"{song_id}.wav",
                        3.0)
    write_corrupt(root / "audio" / f"{9:032x}.mp3")  # song 10 has no audio
    with gzip.open(root / "pickled.gz", "wb") as handle:  # DALI's own pickle: not read
        handle.write(b"\x80\x04\x95 not json")
    return root.parent


def test_dali_lines_with_words_our_split_and_bad_files_named(dali_tree, tmp_path):
    dataset = prepare("dali", tmp_path / "out", data_dir=dali_tree)
    assert sum(len(dataset[split]) for split in dataset) == 16  # 8 English songs with audio, 2 lines each
    songs = {split: set(dataset[split]["song_id"]) for split in dataset}
    assert all(songs.values()) and not (songs["train"] & songs["test"] or songs["train"] & songs["validation"])
    row = next(r for r in dataset["train"] if r["text"] == "hello my love")
    assert [w["word"] for w in row["words"]] == ["hello", "my", "love"]
    assert row["words"][0]["start"] == pytest.approx(0.1, abs=1e-4) and row["chunk_start"] == pytest.approx(0.2)
    report = report_of(tmp_path / "out")
    assert report["skipped"] == {"missing audio file": [f"{10:032x}"], "unreadable annotation": ["pickled"],
                                 "unreadable audio": [f"{9:032x}"]}
    assert report["files_found"] == 11 and report["files_used"] == 8
    assert any("pickled.gz: not gzipped JSON" in message for message in report["messages"])
    assert "9 of 10 english songs annotated have an audio file" in report["messages"]


# ---------------------------------------------------------------- Jam-ALT


@pytest.fixture(scope="module")
def jam_alt_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("jam_alt") / "jam-alt"
    good = tmp_path_factory.mktemp("audio") / "good.wav"
    sf.write(good, tone(3.0), SR)
    rows = {
        "name": ["Avercage_-_Embers", "Baila_-_Alfonso_Lugo", "HILA_-_Give_Me_the_Same", "Kinematic_-_Peyote"],
        "text": ["Through days of thunders\nWe're going on\n", "Baila conmigo\n", "Give me the same\n", "Peyote\n"],
        "language": ["en", "es", "en", "en"],
        "license_type": ["CC BY-NC-SA", "CC BY-NC-SA", "CC BY-ND", "CC BY-ND"],
        "audio": [{"bytes": good.read_bytes(), "path": "Avercage_-_Embers.mp3"},
                  {"bytes": good.read_bytes(), "path": "Baila_-_Alfonso_Lugo.mp3"},
                  {"bytes": b"RIFF\x00\x00\x00\x00WAVEthis is not audio", "path": "HILA_-_Give_Me_the_Same.mp3"},
                  {"bytes": None, "path": "audio/Kinematic_-_Peyote.mp3"}],  # a pointer to a file not downloaded
    }
    (root / "parquet" / "all").mkdir(parents=True)  # written as the Hub's Parquet files hold it: audio a struct
    pq.write_table(pa.table(rows), root / "parquet" / "all" / "test-00000-of-00001.parquet")
    return root


def test_jam_alt_whole_songs_and_bad_audio_named(jam_alt_tree, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))
    dataset = prepare("jam_alt", tmp_path / "out", data_dir=jam_alt_tree, language="all")
    assert {split: len(dataset[split]) for split in dataset} == {"train": 0, "validation": 0, "test": 2}
    first = dataset["test"][0]
    assert first["text"] == "Through days of thunders We're going on" and first["words"] == []
    assert len(first["audio"]["array"]) == pytest.approx(3.0 * STORED, abs=2)  # the whole song, one chunk
    report = report_of(tmp_path / "out")
    assert report["skipped"] == {"missing file": ["Kinematic_-_Peyote"], "unreadable audio": ["HILA_-_Give_Me_the_Same"]}
    assert report["files_found"] == 4 and report["files_used"] == 2
    english = prepare("jam_alt", tmp_path / "en", data_dir=jam_alt_tree, language="en")
    assert english["test"]["song_id"] == ["Avercage_-_Embers"]
