"""VocalSet (Wilkins et al., 2018): 10 singing-technique classes, 20 singers, 44.1 kHz wav.

Layouts accepted under ``data_dir`` (searched at the root and one or two folders down):

* v1.1: ``FULL/<singer>/<context>/<technique>/<file>.wav``
* v1.2: ``data_by_singer/<singer>/<context>/<technique>/<file>.wav``

Quirks handled (each one is counted in the report):

* the label is the **technique folder**, never a filename substring ("trill" is inside
  "trillo"); the misspelled folder ``vibrado`` means ``vibrato``; folders of other
  techniques (``fast_forte``, ``messa``, ...) are skipped as "not one of the 10 classes";
* ``name (1).wav`` next to ``name.wav`` is a duplicate and skipped (kept if the original is
  missing);
* the singer is read from the filename prefix (``f2_...`` -> female2, ``m10_...`` -> male10)
  when there is one, so a file stored in another singer's folder goes to its real singer (and
  split); a file without the prefix takes the singer folder;
* macOS debris (``.DS_Store``, ``._*``, ``__MACOSX/``) and non-wav files are skipped.

Preprocessing: decode + resample to 24 kHz mono, trim leading/trailing silence (40 dB below
the loudest 32 ms frame), 3 s chunks (last partial chunk kept zero-padded if >= 1.5 s).

Splits: test = the paper's singers female2, female8, male3, male5, male10. ``validation="ours"``
(default): validation = female9 and male11 (ours), carved from the 15 training singers, train = the other
13; ``validation="none"``: train = all 15 non-test singers (the paper's training data), no validation.
"""

import re
from dataclasses import dataclass
from pathlib import Path

import datasets

from .audio import trim_silence
from .common import CorpusBuilder, PrepareReport, classification_examples, classification_features
from .corpora import Corpus, isolated_vocals

TECHNIQUES = ("belt", "breathy", "inhaled", "lip_trill", "spoken", "straight", "trill", "trillo", "vibrato", "vocal_fry")
FOLDER_ALIASES = {"vibrado": "vibrato"}
TEST_SINGERS = ("female2", "female8", "male3", "male5", "male10")
VALIDATION_SINGERS = ("female9", "male11")
LAYOUTS = ("FULL", "data_by_singer")
SINGER_FOLDER = re.compile(r"^(female|male)\d+$")
SINGER_PREFIX = re.compile(r"^([fm])(\d+)_", re.IGNORECASE)
DUPLICATE = re.compile(r"^(.*) \(\d+\)$")
EXPECTED = (
    "expected a VocalSet folder: <root>/FULL/<singer>/<context>/<technique>/*.wav (v1.1) "
    "or <root>/data_by_singer/<singer>/<context>/<technique>/*.wav (v1.2)"
)


def is_macos_debris(path: Path) -> bool:
    return path.name == ".DS_Store" or path.name.startswith("._") or "__MACOSX" in path.parts


def find_singers_root(data_dir) -> Path:
    """The ``FULL`` or ``data_by_singer`` folder under ``data_dir``; ValueError naming the layout."""
    root = Path(data_dir)
    if not root.is_dir():
        raise ValueError(f"VocalSet data_dir {root} is not a folder; {EXPECTED}")
    candidates = [root] + [p for p in root.glob("*") if p.is_dir()] + [p for p in root.glob("*/*") if p.is_dir()]
    for candidate in candidates:
        if "__MACOSX" in candidate.parts:
            continue
        for layout in LAYOUTS:
            folder = candidate / layout if candidate.name != layout else candidate
            if folder.is_dir() and any(SINGER_FOLDER.match(p.name) for p in folder.iterdir() if p.is_dir()):
                return folder
    raise ValueError(f"no VocalSet layout found under {root}; {EXPECTED}")


def singer_from_name(stem: str) -> str | None:
    match = SINGER_PREFIX.match(stem)
    if not match:
        return None
    return ("female" if match.group(1).lower() == "f" else "male") + str(int(match.group(2)))


def vocalset_split(singer: str, validation_singers=VALIDATION_SINGERS) -> str:
    if singer in TEST_SINGERS:
        return "test"
    return "validation" if singer in validation_singers else "train"


def scan_vocalset(singers_root: Path, report: PrepareReport) -> list:
    """(path, clip_id, technique, singer) for every usable file; everything else reported."""
    entries = []
    for path in sorted(p for p in singers_root.rglob("*") if p.is_file() or p.is_symlink()):
        relative = path.relative_to(singers_root)
        report.files_found += 1
        if is_macos_debris(relative):
            report.skip(relative, "macOS metadata (.DS_Store, ._*, __MACOSX)")
            continue
        if path.suffix.lower() != ".wav":
            report.skip(relative, "not a .wav file")
            continue
        folder = FOLDER_ALIASES.get(path.parent.name.lower(), path.parent.name.lower())
        if folder not in TECHNIQUES:
            report.skip(relative, "technique folder not one of the 10 classes")
            continue
        duplicate = DUPLICATE.match(path.stem)
        if duplicate and path.with_name(duplicate.group(1) + path.suffix).exists():
            report.skip(relative, "duplicate copy ('name (1).wav' next to 'name.wav')")
            continue
        folder_singer = relative.parts[0]
        singer = singer_from_name(path.stem) or folder_singer
        if singer != folder_singer:
            report.messages.append(f"{relative}: stored under {folder_singer}, assigned to {singer} by its name prefix")
        entries.append((path, str(relative.with_suffix("")), folder, singer))
    return entries


@dataclass
class VocalSetConfig(datasets.BuilderConfig):
    chunk_seconds: float = 3.0
    trim_top_db: float = 40.0
    validation_singers: tuple = VALIDATION_SINGERS
    validation: str = "ours"  # "none": the validation singers train too


class VocalSet(CorpusBuilder):
    """VocalSet technique classification; ``singer`` column kept for singer ID."""

    BUILDER_CONFIG_CLASS = VocalSetConfig
    task = "technique"
    label_names = list(TECHNIQUES)

    def _info(self):
        return datasets.DatasetInfo(description="VocalSet singing techniques", features=classification_features(TECHNIQUES))

    def _split_generators(self, dl_manager):
        entries = scan_vocalset(find_singers_root(self.config.data_dir), self.report)
        by_split = {"train": [], "validation": [], "test": []}
        for entry in entries:
            by_split[self.assign(vocalset_split(entry[3], tuple(self.config.validation_singers)))].append(entry)
        return [datasets.SplitGenerator(name=split, gen_kwargs={"entries": by_split[split]}) for split in by_split]

    def _generate_examples(self, entries):
        for (path, clip_id, technique, singer), wave in self.decoded(entries, lambda e: e[0], lambda e: e[1]):
            wave = trim_silence(wave, self.config.trim_top_db)
            for example in classification_examples(
                wave, clip_id=clip_id, label=technique, singer=singer,
                chunk_seconds=self.chunk_seconds, report=self.report,
            ):
                yield f"{clip_id}#{example['chunk_index']}", example


BIBTEX = """@inproceedings{wilkins2018vocalset,
  author    = {Wilkins, Julia and Seetharaman, Prem and Wahl, Alison and Pardo, Bryan},
  title     = {{VocalSet}: A Singing Voice Dataset},
  booktitle = {Proceedings of the 19th International Society for Music Information Retrieval Conference (ISMIR)},
  pages     = {468--474},
  year      = {2018}
}"""

CORPUS = Corpus(
    name="vocalset",
    builder=VocalSet,
    tasks=("technique",),
    title="VocalSet",
    homepage="https://zenodo.org/record/1193957",
    licence="cc-by-4.0",
    licence_note="VocalSet is released under CC BY 4.0 (Zenodo record 1193957).",
    bibtex=BIBTEX,
    splits="singers: test female2, female8, male3, male5, male10; validation female9, male11 (ours); train the rest",
    preprocessing="resampled 44.1 -> 24 kHz mono, leading/trailing silence trimmed, cut into {chunk:g} s chunks",
    separation_note=isolated_vocals,
)
