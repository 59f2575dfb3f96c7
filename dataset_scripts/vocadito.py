"""vocadito (Bittner et al., 2021; CC BY 4.0): 40 solo singing excerpts with frame-level F0, for the pitch task.

Layout under ``data_dir`` (the Zenodo record 5578807 archive, at the root or one folder down), as mirdata's
loader and test resources have it:

* ``vocadito_metadata.csv``: header ``track_id,singer_id,average_pitch,language``, one row per excerpt (the track
  list: an audio file without a row is reported and skipped);
* ``Audio/vocadito_<id>.wav``: mono 44.1 kHz, decoded to 24 kHz;
* ``Annotations/F0/vocadito_<id>_f0.csv``: no header, ``time_s,f0_hz`` per line (CRLF line ends), 256-sample hop
  at 44.1 kHz (5.8 ms) from 0 s, ``f0_hz`` 0 = unvoiced;
* ``Annotations/Notes/vocadito_<id>_notesA{1,2}.csv`` and ``Annotations/Lyrics/`` are not used here.

Every listed excerpt whose audio or F0 file is missing, unreadable or malformed is skipped and named in the report
(one line each) and counted; the summary says how many of the listed excerpts remain. An annotation ending more
than 0.5 s before or after its audio is used, and reported (`pitch_corpus.span_mismatch`).

Splits (vocadito has no official one; ours): ``split="test"`` (default): every excerpt is test data, since
vocadito is an evaluation set; ``split="singers"``: by singer, test = S1, S9, S21, S28 (9 excerpts, Tagalog,
English, French, Mandarin), validation = S12, S23 (4; ``validation="none"``: they train), train = the other 23
singers. A singer's excerpts are in one split only, so no song leaks. `pitch_corpus` describes the chunks.
"""

import csv
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np

from .common import CorpusBuilder, pitch_features
from .corpora import Corpus, isolated_vocals
from .pitch_corpus import RECORDING_CHUNKING, f0_problem, find_root, singer_split, span_mismatch

METADATA_FILE = "vocadito_metadata.csv"
METADATA_COLUMNS = ("track_id", "singer_id")
TEST_SINGERS = ("S1", "S9", "S21", "S28")
VALIDATION_SINGERS = ("S12", "S23")
SPLITS = ("test", "singers")
EXPECTED = (
    f"expected <root>/{METADATA_FILE}, <root>/Audio/vocadito_<id>.wav and <root>/Annotations/F0/vocadito_<id>_f0.csv"
)


def load_metadata(path) -> dict:
    """``{track_id: singer_id}`` from ``vocadito_metadata.csv``; ValueError (one line) when it is not that table."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
            columns = rows[0].keys() if rows else ()
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ValueError(f"{path}: cannot read the vocadito metadata table: {error}") from None
    missing = [column for column in METADATA_COLUMNS if column not in columns]
    if missing:
        raise ValueError(f"{path}: not the vocadito metadata table (no {', '.join(missing)} column; expected the "
                         "header track_id,singer_id,average_pitch,language)")
    return {row["track_id"].strip(): row["singer_id"].strip() for row in rows if row["track_id"]}


def load_f0(path) -> tuple:
    """(times, f0_hz) float64 arrays of a vocadito F0 file (``time_s,f0_hz`` lines, blank lines ignored);
    ValueError naming the file and the first bad line or the problem (`pitch_corpus.f0_problem`)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: cannot read the F0 annotation: {error}") from None
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            time, f0 = (float(value) for value in line.split(","))
        except ValueError:
            raise ValueError(f"{path}: line {number} is {line.strip()[:40]!r}, expected time_s,f0_hz") from None
        rows.append((time, f0))
    times, f0_hz = np.array(rows, dtype=np.float64).reshape(-1, 2).T
    problem = f0_problem(times, f0_hz)
    if problem:
        raise ValueError(f"{path}: unusable F0 annotation: {problem}")
    return times, f0_hz


def vocadito_split(singer: str, split: str, validation_singers=VALIDATION_SINGERS) -> str:
    if split == "test":
        return "test"
    return singer_split(singer, TEST_SINGERS, validation_singers)


@dataclass
class VocaditoConfig(datasets.BuilderConfig):
    chunk_seconds: float = 5.0
    split: str = "test"  # "test": all excerpts test data (an evaluation set); "singers": our singer split
    validation_singers: tuple = VALIDATION_SINGERS
    validation: str = "ours"  # "none": the validation singers train too (split="singers")

    def __post_init__(self):
        super().__post_init__()
        if self.split not in SPLITS:
            raise ValueError(f"vocadito split={self.split!r} unknown; expected one of {SPLITS}")


class Vocadito(CorpusBuilder):
    """vocadito solo singing with frame-level F0 (the pitch task)."""

    BUILDER_CONFIG_CLASS = VocaditoConfig
    task = "pitch"
    label_names = []

    def _info(self):
        return datasets.DatasetInfo(description="vocadito solo singing with F0", features=pitch_features())

    def _split_generators(self, dl_manager):
        config = self.config
        root = find_root(config.data_dir, "vocadito", lambda folder: (folder / METADATA_FILE).is_file(),
                         f"no {METADATA_FILE}", EXPECTED)
        singers = load_metadata(root / METADATA_FILE)
        by_split = {"train": [], "validation": [], "test": []}
        for track_id in sorted(singers, key=lambda t: (not t.isdigit(), int(t) if t.isdigit() else 0, t)):
            self.report.files_found += 1
            name = f"vocadito_{track_id}"
            audio = root / "Audio" / f"{name}.wav"
            f0_path = root / "Annotations" / "F0" / f"{name}_f0.csv"
            if not audio.is_file():
                self.report.skip(name, "missing audio file", f"{audio}: no such file (listed in {METADATA_FILE})")
                continue
            if not f0_path.is_file():
                self.report.skip(name, "missing F0 annotation", f"{f0_path}: no such file (listed in {METADATA_FILE})")
                continue
            try:
                times, f0_hz = load_f0(f0_path)
            except ValueError as error:
                self.report.skip(name, "unreadable F0 annotation", str(error))
                continue
            split = self.assign(vocadito_split(singers[track_id], config.split, tuple(config.validation_singers)))
            by_split[split].append((name, singers[track_id], audio, times, f0_hz))
        listed = {f"vocadito_{track_id}.wav" for track_id in singers}
        for path in sorted((root / "Audio").glob("*.wav")) if (root / "Audio").is_dir() else []:
            if path.name not in listed:
                self.report.files_found += 1
                self.report.skip(path.stem, f"not listed in {METADATA_FILE}")
        usable = sum(len(entries) for entries in by_split.values())
        self.report.messages.append(f"{usable} of {len(singers)} listed excerpts have an audio file and a usable F0 annotation")
        return [datasets.SplitGenerator(name=split, gen_kwargs={"entries": by_split[split]}) for split in by_split]

    def _generate_examples(self, entries):
        for (name, singer, _, times, f0_hz), wave in self.decoded(entries, lambda e: e[2], lambda e: e[0]):
            self.report.files_used += 1
            if mismatch := span_mismatch(name, times, len(wave)):
                self.report.messages.append(mismatch)
            examples = self.pitch_song(wave, times, f0_hz, name, singer, **RECORDING_CHUNKING)
            for index, example in enumerate(examples):
                yield f"{name}#{index}", example


BIBTEX = """@techreport{bittner2021vocadito,
  author      = {Bittner, Rachel M. and Pasalo, Katherine and Bosch, Juan Jos{\'e} and Meseguer-Brocal, Gabriel and
                 Rubinstein, David},
  title       = {vocadito: A dataset of solo vocals with $f_0$, note, and lyric annotations},
  institution = {Spotify},
  year        = {2021},
  eprint      = {2110.05580},
  archivePrefix = {arXiv}
}"""

CORPUS = Corpus(
    name="vocadito",
    builder=Vocadito,
    tasks=("pitch",),
    title="vocadito",
    homepage="https://zenodo.org/record/5578807",
    licence="cc-by-4.0",
    licence_note="vocadito is released under CC BY 4.0 (Zenodo record 5578807).",
    bibtex=BIBTEX,
    splits="every excerpt test data (`test`, default), or by singer (`singers`): test S1, S9, S21, S28; "
           "validation S12, S23 (ours); train the rest",
    preprocessing="decoded 44.1 -> 24 kHz mono, {chunk:g} s chunks (a shorter rest joins the last), F0 frames of each "
                  "chunk in Hz with times from its start (256-sample hop at 44.1 kHz)",
    separation_note=isolated_vocals,
    split_help="test (default: all test data) | singers",
)
