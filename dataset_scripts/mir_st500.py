"""MIR-ST500 (Wang & Jang, ICASSP 2021): note transcription of 500 pop-song vocals.

Layout under ``data_dir``:

* annotations: ``MIR-ST500_corrected.json`` = ``{"<id>": [[onset_s, offset_s, midi], ...]}``, at
  the root or one folder down (e.g. ``MIR-ST500_20210206/``), or given as ``annotations=path``;
* audio (fetched by the user from YouTube; ``audio_dir=``, default ``data_dir``): per song id
  ``<id>/Vocal.wav`` (``source="vocal"``, default: an already separated vocal stem), or
  ``<id>/Mixture.mp3`` / ``<id>/Mixture.wav`` (``source="mixture"``), passed through the
  ``separation`` option (``htdemucs``, or ``stems:<dir>`` with ``<dir>/<id>/Mixture.wav``; see
  ``separation.py``) or the builder's ``separate(waveform, sr) -> waveform`` hook (default identity, which
  the report flags). ``<id>/`` may also sit under ``train/`` or ``test/``.

Songs without audio are skipped and counted ("N of 500 songs have usable audio"); unreadable audio is
skipped and named. Annotation rows are dropped as the official ``evaluate.py`` does (``offset <= onset``
or ``onset < 0``), and also when malformed, non-finite or with a pitch outside MIDI 0-127; the report counts
them per reason and names them (``<song>#<row index>``). Unknown song ids (not 1-500) are skipped.
Each song is cut into 5 s chunks (the last partial chunk zero-padded, whatever its length) with its
notes cut at chunk edges; frame targets are computed from the notes for the model at collate time (``common.py``
documents the edge rule); each song's length and complete notes go to ``svu_meta.json`` ``songs`` (whole-song
test scoring).

Splits: test = ids 401-500 (paper); ``validation="ours"`` (default): validation = ids 361-400 (ours), train =
ids 1-360; ``validation="none"``: train = ids 1-400 (the paper's training data), no validation split.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np

from .common import CorpusBuilder, transcription_features
from .corpora import Corpus

ANNOTATION_FILE = "MIR-ST500_corrected.json"
NUM_SONGS = 500
AUDIO_FILES = {"vocal": ("Vocal.wav",), "mixture": ("Mixture.mp3", "Mixture.wav")}
EXPECTED = (
    f"expected <root>/{ANNOTATION_FILE} (or <root>/*/{ANNOTATION_FILE}) with audio in <root>/<id>/Vocal.wav "
    "or <root>/<id>/Mixture.mp3"
)


def load_annotations(path) -> dict:
    """``{song_id: [row, ...]}`` from the MIR-ST500 JSON, rows as written (checked by `note_problem`);
    ValueError when the file itself is not ``{id: [[onset, offset, pitch], ...]}``."""
    path = Path(path)
    expected = "{id: [[onset, offset, pitch], ...]}"
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not MIR-ST500 annotation JSON {expected}: {error}") from None
    if not isinstance(raw, dict) or not all(isinstance(notes, list) for notes in raw.values()):
        raise ValueError(f"{path} is not MIR-ST500 annotation JSON {expected}: not a mapping of lists")
    return {str(song): notes for song, notes in raw.items()}


def note_problem(row) -> str | None:
    """Why an annotation row is unusable, or None. The first two rules are the official evaluate.py filter."""
    try:
        onset, offset, pitch = (float(value) for value in row)
    except (TypeError, ValueError):
        return "malformed row (expected [onset, offset, pitch] numbers)"
    if not np.isfinite([onset, offset, pitch]).all():
        return "NaN or infinite value"
    if onset < 0:
        return "negative onset"
    if offset <= onset:
        return "offset <= onset (zero or negative duration)"
    if not 0 <= pitch <= 127:
        return "pitch outside MIDI 0-127"
    return None


def valid_notes(notes) -> tuple:
    """(usable notes as (onset, offset, pitch) floats sorted by onset, {reason: [row index, ...]} of dropped rows)."""
    kept, dropped = [], {}
    for index, row in enumerate(notes):
        problem = note_problem(row)
        if problem is None:
            kept.append(tuple(float(value) for value in row))
        else:
            dropped.setdefault(problem, []).append(index)
    return sorted(kept, key=lambda n: n[0]), dropped


def find_annotations(data_dir) -> Path:
    root = Path(data_dir)
    if not root.is_dir():
        raise ValueError(f"MIR-ST500 data_dir {root} is not a folder; {EXPECTED}")
    for candidate in [root / ANNOTATION_FILE, *sorted(root.glob(f"*/{ANNOTATION_FILE}"))]:
        if candidate.is_file():
            return candidate
    raise ValueError(f"no {ANNOTATION_FILE} under {root}; {EXPECTED}")


def find_audio(audio_dir: Path, song_id: str, source: str) -> Path | None:
    for folder in (audio_dir / song_id, audio_dir / "train" / song_id, audio_dir / "test" / song_id):
        for name in AUDIO_FILES[source]:
            if (folder / name).is_file():
                return folder / name
    return None


def mir_st500_split(song_id: str, validation_songs: int = 40) -> str | None:
    number = int(song_id)
    if 401 <= number <= NUM_SONGS:
        return "test"
    if 1 <= number <= 400:
        return "validation" if number > 400 - validation_songs else "train"
    return None


@dataclass
class MirST500Config(datasets.BuilderConfig):
    annotations: str | None = None  # default: find MIR-ST500_corrected.json under data_dir
    audio_dir: str | None = None  # default: data_dir
    source: str = "vocal"  # "vocal" (<id>/Vocal.wav) or "mixture" (<id>/Mixture.mp3 + separate)
    chunk_seconds: float = 5.0
    validation_songs: int = 40
    validation: str = "ours"  # "none": songs 1-400 all train
    separation: str = "none"  # none | stems:<dir> | htdemucs (source="mixture" only)

    def __post_init__(self):
        super().__post_init__()
        if self.source not in AUDIO_FILES:
            raise ValueError(f"MIR-ST500 source {self.source!r} unknown; expected one of {sorted(AUDIO_FILES)}")
        if self.separation != "none" and self.source != "mixture":
            raise ValueError(
                f"MIR-ST500 separation={self.separation} separates mixtures: add source=mixture "
                "(source=vocal reads the already separated <id>/Vocal.wav)"
            )


class MirST500(CorpusBuilder):
    BUILDER_CONFIG_CLASS = MirST500Config
    task = "transcription"
    label_names = []

    def _info(self):
        return datasets.DatasetInfo(description="MIR-ST500 singing transcription", features=transcription_features())

    def _split_generators(self, dl_manager):
        config = self.config
        annotations_path = Path(config.annotations) if config.annotations else find_annotations(config.data_dir)
        annotations = load_annotations(annotations_path)
        audio_dir = Path(config.audio_dir or config.data_dir)
        by_split = {"train": [], "validation": [], "test": []}
        dropped_notes = {}  # reason -> ["<song>#<row>", ...]
        for song_id in sorted(annotations, key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else 0, s)):
            self.report.files_found += 1
            split = mir_st500_split(song_id, config.validation_songs) if song_id.isdigit() else None
            split = self.assign(split) if split else None
            if split is None:
                self.report.skip(song_id, f"unknown song id (not 1-{NUM_SONGS})")
                continue
            audio = find_audio(audio_dir, song_id, config.source)
            if audio is None:
                self.report.skip(song_id, f"no audio file ({song_id}/{' or '.join(AUDIO_FILES[config.source])})")
                continue
            notes, dropped = valid_notes(annotations[song_id])
            for reason, rows in dropped.items():
                dropped_notes.setdefault(reason, []).extend(f"{song_id}#{row}" for row in rows)
            by_split[split].append((song_id, audio, audio.relative_to(audio_dir), notes))
        with_audio = sum(len(songs) for songs in by_split.values())
        self.report.songs_total = len(annotations)
        self.report.messages.append(f"{with_audio} of {len(annotations)} songs have an audio file")
        for reason, rows in sorted(dropped_notes.items()):
            shown = ", ".join(rows[:5]) + (f", ... (+{len(rows) - 5})" if len(rows) > 5 else "")
            self.report.messages.append(f"{len(rows)} notes dropped ({reason}): {shown}")
        if config.source == "mixture":
            self.report.messages.append(self.separation_message("mixtures"))
            if self.separation.kind == "htdemucs":
                self.separator  # noqa: B018  (loads HT-Demucs now: unavailable -> one line, before any decoding)
        return [datasets.SplitGenerator(name=split, gen_kwargs={"songs": by_split[split]}) for split in by_split]

    def _generate_examples(self, songs):
        for (song_id, audio, relative, notes), wave in self.vocals(songs, lambda song: (song[1], [song[2]], song[0])):
            self.report.files_used += 1
            for index, example in enumerate(self.transcription_song(wave, notes, song_id)):
                yield f"{song_id}#{index}", example


BIBTEX = """@inproceedings{wang2021mirst500,
  author    = {Wang, Jun-You and Jang, Jyh-Shing Roger},
  title     = {On the Preparation and Validation of a Large-Scale Dataset of Singing Transcription},
  booktitle = {IEEE International Conference on Acoustics, Speech and Signal Processing (ICASSP)},
  pages     = {276--280},
  year      = {2021}
}"""


def separation_note(options: dict) -> str | None:
    if options.get("source", "vocal") == "vocal":
        return "the corpus' `Vocal.wav` stems, separated before SVU"
    return None


CORPUS = Corpus(
    name="mir_st500",
    builder=MirST500,
    tasks=("transcription",),
    title="MIR-ST500",
    homepage="https://github.com/york135/singing_transcription_ICASSP2021",
    licence="other",
    licence_note="MIR-ST500's annotations come from its authors; its audio is copyrighted pop songs fetched from "
                 "YouTube.",
    bibtex=BIBTEX,
    splits="songs 1-360 train, 361-400 validation (ours), 401-500 test",
    preprocessing="24 kHz mono, {chunk:g} s chunks, notes cut at chunk edges (frame targets made for each model when "
                  "batches are built)",
    no_redistribution="MIR-ST500 audio is copyrighted songs downloaded from YouTube",
    separable=True,
    separation_note=separation_note,
    option_help="source=mixture (with --separation)",
)
