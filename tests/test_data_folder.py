"""Your own folder (`dataset_scripts/folder.py`), for every task of the registry whose targets a folder holds: real
audio files of several rates and formats (wav 44.1 kHz, flac 22.05 kHz, mp3 and ogg via ffmpeg) in the documented
conventions (class sub-folders or metadata.csv, note lists as CSV or MIDI, F0 CSVs, lyrics as timed word CSVs or
plain text) -> `svu data prepare folder`
-> `accelerate launch train/run.py` on a config whose dataset is `corpus: folder` -> `svu evaluate` reproduces the
run's test metrics. Every bad input in one folder is named once in the report and the good files are prepared;
only a folder with nothing usable fails the command."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml
from demo_runs import ENV, REPO, demo_config

from svu.cli import main as svu_main
from svu.dataset_scripts.folder import READERS, allocate, scan, split_groups
from svu.dataset_scripts.common import PrepareReport
from svu.dataset_scripts.prepare import load_prepared
from svu.modeling_svu.midi_io import midi_bytes
from svu.modeling_svu.tasks import CHUNK_LABEL, FRAME_CONTOUR, NOTE_EVENTS, TASKS, TOKEN_SEQUENCE, get_task

pytestmark = pytest.mark.timeout(900)
# (suffix, rate) of the files, in turn: the decoder meets every format and rate
FORMATS = ((".wav", 44100), (".flac", 22050), (".mp3", 32000), (".ogg", 48000))
RATIOS = "0.5,0.25,0.25"


def svu(*args):
    return subprocess.run([sys.executable, "-m", "svu", *args], capture_output=True, text=True, env=ENV, cwd=REPO,
                          timeout=600)


def svu_here(capsys, *args):
    """`svu` in this process (no start-up cost): (exit code, stdout, stderr)."""
    code = svu_main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write_audio(path: Path, wave: np.ndarray, rate: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix in (".wav", ".flac"):
        sf.write(path, wave, rate)
        return path
    wav = path.with_suffix(".tmp.wav")
    sf.write(wav, wave, rate)
    codec = {".mp3": ["-b:a", "64k"], ".ogg": ["-c:a", "libvorbis", "-q:a", "3"]}[path.suffix]
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(wav), *codec, str(path)], check=True)
    wav.unlink()
    return path


def sung(notes, seconds: float, rate: int) -> np.ndarray:
    """Sines at each note's (fractional MIDI) pitch, silence between notes."""
    wave = np.zeros(int(seconds * rate), dtype=np.float32)
    for onset, offset, pitch in notes:
        n = np.arange(int(onset * rate), min(int(offset * rate), len(wave)))
        wave[n] = 0.3 * np.sin(2 * np.pi * 440.0 * 2 ** ((pitch - 69) / 12) * n / rate)
    return wave


def melody(seed: int, seconds: float, fractional: bool) -> list:
    rng = np.random.default_rng(seed)
    notes, t = [], 0.2
    while t < seconds - 0.7:
        duration = rng.uniform(0.3, 0.6)
        pitch = rng.uniform(52, 70) if fractional else float(rng.integers(52, 70))
        notes.append((round(t, 3), round(t + duration, 3), round(pitch, 2)))
        t += duration + rng.uniform(0.1, 0.2)
    return notes


def write_labelled(root: Path, layout: str) -> dict:
    """Three classes, each its own pitch: class sub-folders (4 recordings each, each recording its own group), or
    metadata.csv (4 singers each singing every class; grouped by singer). Returns the prepare flags."""
    classes = {"low": 48, "mid": 57, "high": 66}
    rows = ["file_name,label,singer"]
    for index in range(12):
        label = list(classes)[index % 3]
        suffix, rate = FORMATS[index % len(FORMATS)]
        wave = sung([(0.1, 2.9, classes[label] + index // 3)], 3.0, rate)
        if layout == "subfolders":
            write_audio(root / label / f"take{index}{suffix}", wave, rate)
        else:
            write_audio(root / "clips" / f"take{index}{suffix}", wave, rate)
            rows.append(f"clips/take{index}{suffix},{label},singer{index // 3}")
    if layout == "subfolders":
        return {}
    (root / "metadata.csv").write_text("\n".join(rows) + "\n")
    return {"group_by": "singer"}


def write_notes(root: Path, layout=None) -> dict:
    """Four songs, each beside its note list: a CSV with a header (fractional pitches) or a MIDI file."""
    for song in range(4):
        suffix, rate = FORMATS[song % len(FORMATS)]
        notes = melody(song, 4.0, fractional=song % 2 == 0)
        write_audio(root / f"song{song}{suffix}", sung(notes, 4.0, rate), rate)
        if song % 2 == 0:
            lines = ["onset,offset,pitch", *(f"{on},{off},{pitch}" for on, off, pitch in notes)]
            (root / f"song{song}.csv").write_text("\n".join(lines) + "\n")
        else:
            (root / f"song{song}.mid").write_bytes(midi_bytes([(on, off, int(pitch)) for on, off, pitch in notes]))
    return {}


def write_f0(root: Path, layout=None) -> dict:
    """Four songs, each beside its F0 CSV (10 ms hop, 0 = unvoiced between notes)."""
    for song in range(4):
        suffix, rate = FORMATS[song % len(FORMATS)]
        notes = melody(10 + song, 4.0, fractional=True)
        write_audio(root / f"song{song}{suffix}", sung(notes, 4.0, rate), rate)
        times = np.arange(0, 4.0, 0.01)
        f0 = np.zeros_like(times)
        for onset, offset, pitch in notes:
            f0[(times >= onset) & (times < offset)] = 440.0 * 2 ** ((pitch - 69) / 12)
        lines = ["time,f0_hz", *(f"{t:.2f},{hz:.3f}" for t, hz in zip(times, f0))]
        (root / f"song{song}.csv").write_text("\n".join(lines) + "\n")
    return {}


def write_lyrics(root: Path, layout=None) -> dict:
    """Four songs, one word per note: two beside a ``start,end,word`` CSV (with a header), two beside a plain
    ``.txt`` of their lyrics (untimed: each song one chunk)."""
    words = ("LA", "MI", "SO", "TA", "LIMO", "SATI")
    for song in range(4):
        suffix, rate = FORMATS[song % len(FORMATS)]
        notes = melody(20 + song, 4.0, fractional=False)
        sung_words = [words[(song + index) % len(words)] for index in range(len(notes))]
        write_audio(root / f"song{song}{suffix}", sung(notes, 4.0, rate), rate)
        if song % 2 == 0:
            lines = ["start,end,word", *(f"{on},{off},{word}" for (on, off, _), word in zip(notes, sung_words))]
            (root / f"song{song}.csv").write_text("\n".join(lines) + "\n")
        else:
            (root / f"song{song}.txt").write_text(" ".join(sung_words) + "\n")
    return {}


WRITERS = {CHUNK_LABEL: write_labelled, NOTE_EVENTS: write_notes, FRAME_CONTOUR: write_f0, TOKEN_SEQUENCE: write_lyrics}


def layout_of(task: str) -> str:
    """Chunk-label tasks take turns between the two conventions."""
    same_kind = [name for name, other in TASKS.items() if other.target == get_task(task).target]
    return ("subfolders", "metadata")[same_kind.index(task) % 2]


def folder_task(task: str):
    if get_task(task).target not in READERS:
        pytest.skip(f"a folder holds no {get_task(task).target} targets")


def prepare_args(task, data_dir, out, options) -> list:
    args = ["data", "prepare", "folder", "--task", task, "--data-dir", str(data_dir), "--output", str(out),
            "--split-ratios", RATIOS, "-q"]
    return args + (["--group-by", options["group_by"]] if "group_by" in options else [])


@pytest.mark.parametrize("task", TASKS)
def test_own_folder_prepared_trained_and_evaluated(task, tmp_path):
    folder_task(task)
    raw, data, out = tmp_path / "raw", tmp_path / "data", tmp_path / "run"
    options = WRITERS[get_task(task).target](raw, layout_of(task))
    prepared = svu(*prepare_args(task, raw, data, options))
    assert prepared.returncode == 0, prepared.stderr[-3000:]
    assert ("no --group-by: the chunks of one recording stay together" in prepared.stdout) == ("group_by" not in options)
    dataset, meta = load_prepared(data)
    assert meta["corpus"] == "folder" and meta["task"] == task
    assert meta["report"]["files_found"] == meta["report"]["files_used"] == (12 if get_task(task).pooled else 4)
    assert all(len(dataset[split]) for split in dataset)
    stamp = (data / "svu_meta.json").stat().st_mtime_ns

    config = yaml.safe_load(demo_config(task).read_text())
    config.update(epochs=2, stage1_epochs=1, output_dir=str(out),
                  dataset={"corpus": "folder", "data_dir": str(raw), "prepared_dir": str(data),
                           "options": {"split_ratios": [float(r) for r in RATIOS.split(",")], **options}})
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    train = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "1", "--num_machines", "1",
         "--mixed_precision", "no", "--dynamo_backend", "no", str(REPO / "train" / "run.py"),
         "--config", str(tmp_path / "config.yaml")],
        capture_output=True, text=True, env={**ENV, "TQDM_DISABLE": "1"}, cwd=REPO, timeout=900)
    assert train.returncode == 0, train.stderr[-5000:]
    assert (data / "svu_meta.json").stat().st_mtime_ns == stamp  # the config's folder corpus is the prepared one

    evaluated = svu("evaluate", "--model", str(out / "repo"), "--data", str(data), "-o", str(tmp_path / "eval"), "-q")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    trained = json.loads((out / "metrics.json").read_text())["test"]
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["metrics"] == trained
    print(task, {key: trained[key] for key in get_task(task).card_metric_keys if key in trained})


def write_bad_inputs(root: Path, target: str) -> dict:
    """The good files of the kind, plus every bad input of the kind: {file named in the report: reason}."""
    if target == CHUNK_LABEL:
        write_labelled(root, "subfolders")
        write_audio(root / "take_nolabel.wav", sung([(0.1, 2.9, 60)], 3.0, 44100), 44100)
        write_audio(root / "lonely" / "only.wav", sung([(0.1, 2.9, 60)], 3.0, 44100), 44100)
        bad = {"take_nolabel.wav": "no label", "lonely/only.wav": "label in one group only (cannot be split)"}
        broken_audio = ("mid/broken.wav", "mid/empty.flac")
    else:
        WRITERS[target](root)
        bad = {}
        broken_audio = ("broken.wav", "empty.flac")
        annotations = {
            NOTE_EVENTS: {
                "overlap": ("0.1,0.6,60\n0.5,0.9,62\n", "note list: overlapping notes", "line 2"),
                "negative": ("0.1,0.6,60\n0.9,0.7,62\n", "note list: offset not after onset (negative or zero duration)",
                             "line 2"),
                "range": ("onset,offset,pitch\n0.1,0.6,60\n0.7,0.9,130\n", "note list: pitch outside MIDI 0-127",
                          "line 3"),
            },
            FRAME_CONTOUR: {
                "unsorted": ("0.00,0\n0.01,220\n0.03,220\n0.02,220\n", "F0 CSV: times not increasing", "line 4"),
                "words": ("time,f0_hz\n0.00,0\n0.01,high\n", "F0 CSV: a line is not time,f0_hz numbers", "line 3"),
            },
            TOKEN_SEQUENCE: {
                "unsorted": ("0.0,0.1,LA\n0.1,0.2,MI\n0.3,0.4,SO\n0.2,0.25,TA\n", "lyrics: words not in time order",
                             "line 4"),
                "late": ("start,end,word\n0.1,0.4,LA\n0.5,late,MI\n", "lyrics: a line is not start,end,word", "line 3"),
            },
        }[target]
        for stem, (text, reason, _) in annotations.items():
            write_audio(root / f"{stem}.wav", sung([(0.1, 0.9, 60)], 1.0, 22050), 22050)
            (root / f"{stem}.csv").write_text(text)
            bad[f"{stem}.wav"] = reason
        write_audio(root / "unannotated.wav", sung([(0.1, 0.9, 60)], 1.0, 22050), 22050)
        bad["unannotated.wav"] = f"no {READERS[target].what}"
    (root / broken_audio[0]).write_bytes(b"RIFF\x00\x00\x00\x00WAVEthis is not audio")
    (root / broken_audio[1]).write_bytes(b"")
    if target != CHUNK_LABEL:  # well annotated: the audio is the problem
        for name in broken_audio:
            (root / name).with_suffix(".csv").write_text({NOTE_EVENTS: "0.1,0.6,60\n", FRAME_CONTOUR: "0,0\n0.01,220\n",
                                                     TOKEN_SEQUENCE: "0.1,0.6,LA\n"}[target])
    bad.update({broken_audio[0]: "unreadable audio", broken_audio[1]: "empty file (0 bytes)"})
    return bad


@pytest.mark.parametrize("task", TASKS)
def test_bad_input_is_named_once_and_the_good_files_prepared(task, tmp_path, capsys):
    folder_task(task)
    target = get_task(task).target
    bad = write_bad_inputs(tmp_path / "raw", target)
    code, stdout, stderr = svu_here(capsys, *prepare_args(task, tmp_path / "raw", tmp_path / "data", {}))
    assert code == 0, stderr[-3000:]
    _, meta = load_prepared(tmp_path / "data")
    report = meta["report"]
    named = [name for names in report["skipped"].values() for name in names]
    assert sorted(named) == sorted(bad)  # each bad file once, nothing else
    for name, reason in bad.items():
        assert report["skipped"][reason] == [name] or name in report["skipped"][reason], (name, report["skipped"])
        assert any(Path(name).stem in message for message in report["messages"]), name
    if target != CHUNK_LABEL:  # the annotation problems name the file and the line
        assert any("overlap.csv line 2" in m or "unsorted.csv line 4" in m for m in report["messages"])
    good = 12 if get_task(task).pooled else 4
    assert report["files_used"] == good and report["files_found"] == good + len(bad)
    for reason in set(bad.values()):
        assert reason in stdout  # the summary table names each reason


def test_nothing_usable_fails_in_one_line(tmp_path, capsys):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "empty.wav").write_bytes(b"")
    (tmp_path / "raw" / "notes.txt").write_text("nothing")
    code, _, stderr = svu_here(capsys, "data", "prepare", "folder", "--task", next(iter(TASKS)), "--data-dir",
                               str(tmp_path / "raw"), "--output", str(tmp_path / "data"), "-q")
    assert code == 2 and not (tmp_path / "data").exists()
    assert stderr.strip().count("\n") == 0 and "nothing usable in folder corpus" in stderr


def test_split_flags_are_the_folder_corpus_own(tmp_path, capsys):
    code, _, stderr = svu_here(capsys, "data", "prepare", "synthetic", "--output", str(tmp_path / "d"),
                               "--split-ratios", RATIOS)
    assert code == 2 and stderr.strip() == \
        "svu data prepare: --split-ratios applies to folder only; synthetic has its own splits"
    (tmp_path / "raw" / "a").mkdir(parents=True)
    folder = ("data", "prepare", "folder", "--data-dir", str(tmp_path / "raw"), "--output", str(tmp_path / "d"))
    code, _, stderr = svu_here(capsys, *folder, "--group-by", "singer")
    assert code == 2 and stderr.strip().count("\n") == 0 and "group_by=singer" in stderr
    code, _, stderr = svu_here(capsys, *folder, "--split-ratios", "0.5,0.5,0.5")
    assert code == 2 and "summing to 1" in stderr and stderr.strip().count("\n") == 0


def test_metadata_rows_without_a_label_or_a_file_are_named(tmp_path):
    for name in ("a1.wav", "a2.wav", "b1.wav", "b2.wav", "nolabel.wav", "unlisted.wav"):
        write_audio(tmp_path / name, sung([(0.1, 0.9, 60)], 1.0, 16000), 16000)
    (tmp_path / "metadata.csv").write_text("file_name,label,singer\na1.wav,a,s1\na2.wav,a,s2\nb1.wav,b,s1\n"
                                           "b2.wav,b,s2\nnolabel.wav,,s1\ngone.wav,a,s3\na1.wav,b,s9\n")
    report = PrepareReport()
    task = next(name for name, task in TASKS.items() if task.pooled)
    recordings = scan(tmp_path, task, "singer", report)
    assert sorted((r.name, r.label, r.group) for r in recordings) == [
        ("a1.wav", "a", "s1"), ("a2.wav", "a", "s2"), ("b1.wav", "b", "s1"), ("b2.wav", "b", "s2")]
    assert dict(report.skipped) == {"no label": ["nolabel.wav", "unlisted.wav"],
                                    "listed in metadata.csv but missing": ["gone.wav"]}
    assert "nolabel.wav: no label (metadata.csv line 6 has an empty label)" in report.messages
    assert "metadata.csv line 7: gone.wav: no such file under " + str(tmp_path) in report.messages
    assert "metadata.csv line 8: a1.wav is listed again; line 2 is used" in report.messages
    assert report.files_found == 7


def test_splits_are_seeded_whole_groups_and_every_label_trains():
    assert allocate(4, (0.5, 0.25, 0.25)) == [2, 1, 1] and allocate(2, (0.8, 0.1, 0.1)) == [1, 0, 1]
    assert allocate(10, (0.8, 0.1, 0.1)) == [8, 1, 1] and allocate(1, (0.8, 0.1, 0.1)) == [1, 0, 0]
    groups = [f"g{i}" for i in range(30)]
    labels = {group: ("a", "b", "c")[i % 3] for i, group in enumerate(groups)}
    first = split_groups(groups, (0.8, 0.1, 0.1), 0, labels)
    assert first == split_groups(list(reversed(groups)), (0.8, 0.1, 0.1), 0, labels)  # seeded, order-free
    assert first != split_groups(groups, (0.8, 0.1, 0.1), 1, labels)
    for label in "abc":
        splits = [first[group] for group in groups if labels[group] == label]
        assert (splits.count("train"), splits.count("validation"), splits.count("test")) == (8, 1, 1)
