"""`train/run.py --dataset_name`: a `save_to_disk` folder and an audiofolder folder with renamed columns train for
real (`accelerate launch`, one epoch); pitch trains from F0 columns; transcription rows are made from a notes column
(in process); a Parquet folder in the Hub's layout is read (in process); a missing column is one line, exit 2."""

import json
import subprocess
import sys

import datasets
import numpy as np
import pytest
import soundfile as sf

from conftest import SR, sung_tone
from demo_runs import CONFIGS, ENV, REPO

LAUNCH = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "1", "--num_machines", "1",
          "--mixed_precision", "no", "--dynamo_backend", "no", str(REPO / "train" / "run.py")]  # fmt: skip
STYLES = ("belt", "breathy")


def technique_rows(count: int = 8) -> dict:
    """`count` 2 s takes, alternating styles, two per singer, under column names of the user's own."""
    return {
        "sound": [{"array": sung_tone(200.0 + 150.0 * (i % 2), seconds=2.0, seed=i), "sampling_rate": SR}
                  for i in range(count)],
        "technique_name": [STYLES[i % 2] for i in range(count)],
        "vocalist": [f"singer{i // 2}" for i in range(count)],
    }


def save_to_disk_folder(path, rows: dict, audio: str = "sound"):
    data = datasets.Dataset.from_dict(rows).cast_column(audio, datasets.Audio())
    datasets.DatasetDict({"train": data.select(range(len(data) - 2)),
                          "test": data.select(range(len(data) - 2, len(data)))}).save_to_disk(str(path))
    return path


def train(tmp_path, config: str, *flags) -> tuple:
    out = tmp_path / "run"
    env = {**ENV, "TQDM_DISABLE": "1", "HF_DATASETS_CACHE": str(tmp_path / "hf_cache")}
    command = [*LAUNCH, "--config", str(CONFIGS / config), "--output_dir", str(out), "--report_to", "none", *flags]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out, json.loads((out / "metrics.json").read_text()), json.loads((out / "data" / "svu_meta.json").read_text())


def test_save_to_disk_folder_with_renamed_columns_trains(tmp_path):
    folder = save_to_disk_folder(tmp_path / "takes", technique_rows())
    out, metrics, meta = train(
        tmp_path, "demo_technique.yaml", "--dataset_name", str(folder), "--audio_column_name", "sound",
        "--label_column_name", "technique_name", "--epochs", "1", "--stage1_epochs", "1",
        "--dataset.options.chunk_seconds", "1",
    )
    assert metrics["task"] == "technique" and "macro_f1" in metrics["test"]
    assert meta["label_names"] == list(STYLES) and meta["corpus"] == str(folder)
    # the dataset's own test split is kept; validation is cut from its train split, a take's chunks together
    assert meta["report"]["chunks"]["test"] == {"belt": 2, "breathy": 2}
    assert all(meta["report"]["groups"][split] for split in ("train", "validation", "test"))
    card = (out / "repo" / "README.md").read_text()
    assert str(folder) in card and "VocalSet" not in card.split("## ")[0]


def test_audiofolder_with_renamed_columns_trains(tmp_path):
    folder = tmp_path / "audiofolder"
    folder.mkdir()
    rows = technique_rows()
    lines = ["file_name,style,who"]
    for i, (audio, style, singer) in enumerate(zip(rows["sound"], rows["technique_name"], rows["vocalist"])):
        sf.write(folder / f"take{i}.wav", audio["array"], SR)
        lines.append(f"take{i}.wav,{style},{singer}")
    (folder / "metadata.csv").write_text("\n".join(lines) + "\n")
    _, metrics, meta = train(
        tmp_path, "demo_technique.yaml", "--dataset_name", str(folder), "--label_column_name", "style",
        "--epochs", "1", "--stage1_epochs", "1", "--dataset.options", "{chunk_seconds: 1, group_by: who}",
    )
    assert "macro_f1" in metrics["test"] and meta["label_names"] == list(STYLES)
    groups = meta["report"]["groups"]  # the singers (group_by who) split whole, none in two splits
    assert groups["what"] == "singer" and groups["train"] + groups["validation"] + groups["test"] == 4


def test_pitch_from_f0_columns_trains(tmp_path):
    times = np.arange(0.0, 2.0, 0.01)
    rows = {"voice": [], "pitch_times": [], "pitch_hz": []}
    for i in range(6):
        f0 = 180.0 + 40.0 * i
        rows["voice"].append({"array": sung_tone(f0, seconds=2.0, vibrato_cents=0.0, seed=i), "sampling_rate": SR})
        rows["pitch_times"].append(times.tolist())
        rows["pitch_hz"].append(np.full(len(times), f0).tolist())
    folder = save_to_disk_folder(tmp_path / "songs", rows, audio="voice")
    _, metrics, meta = train(
        tmp_path, "demo_pitch.yaml", "--dataset_name", str(folder), "--audio_column_name", "voice",
        "--f0_column_name", "pitch_hz", "--f0_times_column_name", "pitch_times", "--epochs", "1",
    )
    assert "raw_pitch_accuracy" in metrics["test"]
    assert meta["task"] == "pitch" and len(meta["songs"]) == 6


def test_transcription_rows_come_from_a_notes_column(tmp_path):
    from svu.train.config import load_config
    from svu.train.external_dataset import prepare_external

    from svu.train.external_dataset import note_list

    melody = [[0.2, 0.9, 60.0], [1.0, 1.8, 62.0]]
    assert note_list([{"onset": 1.0, "offset": 1.8, "pitch": 62}, {"onset": 0.2, "offset": 0.9, "pitch": 60}],
                     "song") == [tuple(note) for note in melody]
    rows = {"audio": [{"array": sung_tone(262.0, seconds=2.0, seed=i), "sampling_rate": SR} for i in range(5)],
            "melody": [melody, melody, [[0.1, 1.5, 64.0]], melody, [[0.5, 0.4, 60.0]]]}
    folder = save_to_disk_folder(tmp_path / "sung", rows, audio="audio")
    cfg = load_config(CONFIGS / "demo_transcription.yaml", [
        "--dataset_name", str(folder), "--notes_column_name", "melody", "--output_dir", str(tmp_path / "run"),
        "--dataset.options.chunk_seconds", "1"])
    data, meta = prepare_external(cfg)
    assert data["test"].column_names == ["audio", "notes", "notes_unclipped", "song_id", "chunk_start"]
    assert sorted(meta["songs"]) == ["test/0", "train/0", "train/1", "train/2"]
    assert meta["songs"]["train/2"]["notes"] == [[0.1, 1.5, 64.0]]
    # the note ending before its onset is named, its song skipped
    assert any("test/1 note 1: offset 0.4 s is not after onset 0.5 s" in line for line in meta["report"]["messages"])


@pytest.mark.parametrize("flag, column", [("--label_column_name", "genre"), ("--audio_column_name", "recording")])
def test_a_missing_column_is_one_line(tmp_path, capsys, monkeypatch, flag, column):
    from svu.train import run

    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))
    folder = save_to_disk_folder(tmp_path / "takes", technique_rows(4))
    with pytest.raises(SystemExit) as exit_info:
        run.main(["--dataset_name", str(folder), "--audio_column_name", "sound", "--label_column_name",
                  "technique_name", flag, column, "--output_dir", str(tmp_path / "run"), "--report_to", "none"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: {flag} {column}: no such column; the dataset has: sound, technique_name, vocalist")


def test_dataset_name_and_a_corpus_are_one_line(tmp_path):
    from svu.train.config import load_config

    with pytest.raises(ValueError, match=r"^dataset_name \S+ and dataset.corpus vocalset: give one data source"):
        load_config(None, ["--dataset_name", str(tmp_path), "--dataset.corpus", "vocalset"])
    with pytest.raises(ValueError, match="Unknown config key 'dataset.options.clips_per_class' for dataset_name"):
        load_config(None, ["--dataset_name", str(tmp_path), "--dataset.options.clips_per_class", "2"])
    # on the command line, either source replaces the config file's
    assert load_config(None, ["--dataset_name", str(tmp_path)]).dataset.corpus is None


def test_a_parquet_folder_is_read_with_renamed_columns(tmp_path, monkeypatch):
    from svu.train.config import load_config
    from svu.train.external_dataset import prepare_external

    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))
    data = datasets.Dataset.from_dict(technique_rows()).cast_column("sound", datasets.Audio())
    folder = tmp_path / "parquet"
    (folder / "data").mkdir(parents=True)  # the Hub's layout: data/<split>-<i>-of-<n>.parquet
    data.select(range(6)).to_parquet(str(folder / "data" / "train-00000-of-00001.parquet"))
    data.select(range(6, 8)).to_parquet(str(folder / "data" / "test-00000-of-00001.parquet"))
    cfg = load_config(CONFIGS / "demo_technique.yaml", [
        "--dataset_name", str(folder), "--audio_column_name", "sound", "--label_column_name", "technique_name",
        "--output_dir", str(tmp_path / "run"), "--dataset.options.chunk_seconds", "1"])
    prepared, meta = prepare_external(cfg)
    assert meta["label_names"] == list(STYLES) and meta["corpus"] == str(folder)
    assert meta["report"]["chunks"]["test"] == {"belt": 2, "breathy": 2}  # the two test takes, 2 chunks of 1 s each
    assert sum(len(prepared[split]) for split in ("train", "validation")) == 12


def test_lyrics_rows_are_made_from_a_text_column(tmp_path, monkeypatch):
    """A token-sequence task reads `--text_column_name`: each recording is one chunk of its lyrics (no word times);
    an empty text is named and skipped (in process)."""
    from svu.train.config import load_config
    from svu.train.external_dataset import prepare_external

    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))
    lines = ["la mi so", "ta limo", "", "sati mola", "mi ta", "so la", "tosi maso", "lita la"]
    rows = {"audio": [{"array": sung_tone(262.0, seconds=2.0, seed=i), "sampling_rate": SR} for i in range(8)],
            "lyrics": lines}
    folder = save_to_disk_folder(tmp_path / "sung", rows, audio="audio")
    cfg = load_config(CONFIGS / "demo_lyrics.yaml", [
        "--dataset_name", str(folder), "--text_column_name", "lyrics", "--output_dir", str(tmp_path / "run")])
    data, meta = prepare_external(cfg)
    assert data["test"].column_names == ["audio", "text", "words", "song_id", "singer", "chunk_start"]
    assert sorted(data["test"]["text"]) == ["lita la", "tosi maso"]
    assert sum(len(data[split]) for split in ("train", "validation")) == 5
    assert meta["songs"]["test/0"]["text"] == "tosi maso"
    assert meta["report"]["skipped"] == {"lyrics: empty": ["train/2"]}
