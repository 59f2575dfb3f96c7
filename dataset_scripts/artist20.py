"""Artist20 (Ellis, 2007): singer (artist) identification, 20 artists x 6 albums, 32 kbps mp3.

Layout under ``data_dir``: ``mp3s-32k/<artist>/<album>/<NN-Title>.mp3`` and the official lists
``lists/a20-{trn,val,tst}-tracks.list`` (one ``artist/album/track`` per line, relative to
``mp3s-32k``, with or without ``.mp3``; the lists may also sit at the root).

Splits (option ``split``), both album-level so no song or album is in two splits:

* ``paper`` (default): per artist 4/1/1 train/validation/test albums, by a fixed, published rule on
  the official lists (`paper_manifest`: the official validation album stays validation; of the two
  official test albums the first in sorted name order stays test, the second joins the three train
  albums). Where the albums come from, in order: ``manifest=path`` if given; else the official lists
  when they are under the corpus root (as the corpus is distributed), the rule applied on the fly;
  else the bundled manifest ``manifests/artist20_paper.json`` when it lists albums; else one error
  line naming both. An album the split does not cover stops the preparation with a one-line error
  (never a silent fallback to filesystem order or a seed). The report says which source was used.
* ``official``: the dataset's own 3/1/2 lists (``trn`` -> train, ``val`` -> validation,
  ``tst`` -> test); tracks in no list are skipped and reported.

``validation="none"`` moves the validation album(s) to train (not the paper's protocol for singer ID,
which keeps its validation album).

Preprocessing (paper): vocal separation (option ``separation``: ``htdemucs`` as the paper, on the
original-rate mp3 before resampling, or ``stems:<dir>``, see ``separation.py``; or the builder's
``separate(waveform, sr)`` hook; default none, flagged in the report), decode + resample to 24 kHz
mono, 5 s chunks (last partial chunk zero-padded if >= 2.5 s), keep a chunk only if its mean
32 ms frame RMS (512 samples at 16 kHz) > 0.01.
"""

import json
from collections import defaultdict
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import datasets

from .common import CorpusBuilder, classification_examples, classification_features
from .corpora import Corpus
from .vocalset import is_macos_debris

MANIFEST = Path(__file__).parent / "manifests" / "artist20_paper.json"
LIST_SPLITS = {"trn": "train", "val": "validation", "tst": "test"}
SPLIT_NAMES = ("paper", "official")
EXPECTED = "expected <root>/mp3s-32k/<artist>/<album>/*.mp3 (and <root>/lists/a20-{trn,val,tst}-tracks.list)"
RULE = (
    "derived from the official a20-{trn,val,tst}-tracks.list: official val album -> validation; "
    "official tst albums sorted, first -> test, second -> train; official trn albums -> train"
)


def find_audio_root(data_dir) -> Path:
    root = Path(data_dir)
    for candidate in (root / "mp3s-32k", root, *sorted(root.glob("*/mp3s-32k"))):
        if candidate.name == "mp3s-32k" and candidate.is_dir():
            return candidate
    raise ValueError(f"no mp3s-32k folder under {root}; {EXPECTED}")


def track_key(line: str) -> str:
    line = line.strip().replace("\\", "/")
    return line[: -len(".mp3")] if line.lower().endswith(".mp3") else line


def official_list_paths(data_dir) -> dict:
    """``{short: path}`` of the official lists found under ``data_dir`` (root, ``lists/``, ``*/lists/``)."""
    root = Path(data_dir)
    found = {}
    for short in LIST_SPLITS:
        name = f"a20-{short}-tracks.list"
        paths = [p for p in (root / "lists" / name, root / name, *sorted(root.glob(f"*/lists/{name}"))) if p.is_file()]
        if paths:
            found[short] = paths[0]
    return found


def read_official_lists(data_dir) -> dict:
    """``{artist/album/track: split}`` from ``a20-{trn,val,tst}-tracks.list``."""
    root = Path(data_dir)
    assignment = {}
    paths = official_list_paths(root)
    for short, split in LIST_SPLITS.items():
        name = f"a20-{short}-tracks.list"
        found = [paths[short]] if short in paths else []
        if not found:
            raise ValueError(f"official list {name} not found under {root}; {EXPECTED}")
        for line in found[0].read_text().splitlines():
            if line.strip():
                assignment[track_key(line)] = split
    return assignment


def read_manifest(path) -> dict:
    """``{artist: {album: split}}`` of a published album manifest; ValueError on a bad file."""
    path = Path(path)
    try:
        albums = json.loads(path.read_text())["albums"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(f"{path} is not an Artist20 album manifest ({{'albums': {{artist: {{album: split}}}}}}): {error}") from None
    bad = {s for a in albums.values() for s in a.values()} - {"train", "validation", "test"}
    if bad:
        raise ValueError(f"{path}: unknown split names {sorted(bad)} (expected train/validation/test)")
    return albums


def paper_manifest(official_tracks: dict) -> dict:
    """``{"split", "rule", "albums": {artist: {album: split}}}`` from ``{artist/album/track: split}`` (`RULE`)."""
    albums_by_split = defaultdict(lambda: defaultdict(set))
    for track, split in official_tracks.items():
        artist, album, _ = track.split("/", 2)
        albums_by_split[artist][split].add(album)
    albums = {}
    for artist in sorted(albums_by_split):
        splits = albums_by_split[artist]
        test = sorted(splits["test"])
        assignment = {album: "train" for album in splits["train"]}
        assignment.update({album: "validation" for album in splits["validation"]})
        assignment.update({album: "test" if i == 0 else "train" for i, album in enumerate(test)})
        albums[artist] = dict(sorted(assignment.items()))
    return {"split": "paper (4/1/1 albums per artist)", "rule": RULE, "albums": albums}


def paper_albums(data_dir, manifest=None) -> tuple:
    """(``{artist: {album: split}}``, where it came from) of the paper split (module docstring for the order)."""
    if manifest:
        return read_manifest(manifest), f"manifest {manifest}"
    if official_list_paths(data_dir):
        albums = paper_manifest(read_official_lists(data_dir))["albums"]
        return albums, f"official lists under {data_dir} (the published rule: {RULE})"
    albums = read_manifest(MANIFEST)
    if albums:
        return albums, f"manifest {MANIFEST}"
    raise ValueError(
        f"Artist20 paper split: no official lists a20-{{trn,val,tst}}-tracks.list under {data_dir} (or its lists/) "
        f"and no albums in the manifest {MANIFEST}; put the lists that ship with the corpus under its root, or "
        "pass manifest=<path>"
    )


@dataclass
class Artist20Config(datasets.BuilderConfig):
    split: str = "paper"  # "paper" (4/1/1 albums) or "official" (3/1/2 lists)
    manifest: str | None = None  # default: the official lists by the published rule, else the bundled manifest
    chunk_seconds: float = 5.0
    rms_threshold: float = 0.01
    validation: str = "ours"  # "none": the validation album joins train (not the paper's protocol)
    separation: str = "none"  # none | stems:<dir> | htdemucs (the paper's)

    def __post_init__(self):
        super().__post_init__()
        if self.split not in SPLIT_NAMES:
            raise ValueError(f"Artist20 split {self.split!r} unknown; expected one of {SPLIT_NAMES}")


class Artist20(CorpusBuilder):
    BUILDER_CONFIG_CLASS = Artist20Config
    task = "singer_id"

    @cached_property
    def audio_root(self) -> Path:
        return find_audio_root(self.config.data_dir)

    @cached_property
    def label_names(self) -> list:
        """The artist folders, sorted (the real corpus has 20)."""
        names = sorted(p.name for p in self.audio_root.iterdir() if p.is_dir() and not is_macos_debris(p))
        if not names:
            raise ValueError(f"no artist folders in {self.audio_root}; {EXPECTED}")
        return names

    def _info(self):
        return datasets.DatasetInfo(description="Artist20 singer identification", features=classification_features(self.label_names))

    def assign_split(self):
        """``(artist, album, track) -> split or None``, for the configured split scheme."""
        if self.config.split == "official":
            tracks = read_official_lists(self.config.data_dir)
            return lambda artist, album, track: tracks.get(f"{artist}/{album}/{track}")
        albums, source = paper_albums(self.config.data_dir, self.config.manifest)
        self.report.messages.append(f"paper split (4/1/1 albums per artist): {source}")

        def from_manifest(artist, album, track):
            if album not in albums.get(artist, {}):
                raise ValueError(
                    f"album {artist}/{album} is not in the Artist20 {source.split(' (')[0]}; check the corpus "
                    "layout, or pass manifest=<path> listing it"
                )
            return albums[artist][album]

        return from_manifest

    def _split_generators(self, dl_manager):
        assign = self.assign_split()
        by_split = {"train": [], "validation": [], "test": []}
        for path in sorted(p for p in self.audio_root.rglob("*") if p.is_file() or p.is_symlink()):
            relative = path.relative_to(self.audio_root)
            self.report.files_found += 1
            if is_macos_debris(relative):
                self.report.skip(relative, "macOS metadata (.DS_Store, ._*, __MACOSX)")
            elif path.suffix.lower() != ".mp3" or len(relative.parts) != 3:
                self.report.skip(relative, "not an mp3 at <artist>/<album>/<track>.mp3")
            else:
                artist, album, _ = relative.parts
                split = assign(artist, album, path.stem)
                if split is None:
                    self.report.skip(relative, "track not in the official lists")
                else:
                    by_split[self.assign(split)].append((path, str(relative.with_suffix("")), artist))
        if self.config.split == "official":  # a listed track without its mp3 is a missing file
            found = {clip_id for tracks in by_split.values() for _, clip_id, _ in tracks}
            for track in sorted(set(read_official_lists(self.config.data_dir)) - found):
                self.report.files_found += 1
                self.report.skip(track, "missing file (in the official lists, no mp3)")
        self.report.messages.append(self.separation_message("mp3 mixtures"))
        if self.separation.kind == "htdemucs":
            self.separator  # noqa: B018  (loads HT-Demucs now: unavailable -> one line, before any decoding)
        return [datasets.SplitGenerator(name=split, gen_kwargs={"tracks": by_split[split]}) for split in by_split]

    def _generate_examples(self, tracks):
        def source(track):
            path, clip_id, _ = track
            return path, [path.relative_to(self.audio_root), path.relative_to(self.config.data_dir)], clip_id

        for (path, clip_id, artist), wave in self.vocals(tracks, source):
            for example in classification_examples(
                wave, clip_id=clip_id, label=artist, singer=artist, chunk_seconds=self.chunk_seconds,
                report=self.report, rms_threshold=self.config.rms_threshold,
            ):
                yield f"{clip_id}#{example['chunk_index']}", example


BIBTEX = """@inproceedings{ellis2007artist20,
  author    = {Ellis, Daniel P. W.},
  title     = {Classifying Music Audio with Timbral and Chroma Features},
  booktitle = {Proceedings of the 8th International Conference on Music Information Retrieval (ISMIR)},
  pages     = {339--340},
  year      = {2007}
}"""

CORPUS = Corpus(
    name="artist20",
    builder=Artist20,
    tasks=("singer_id",),
    title="Artist20",
    homepage="https://labrosa.ee.columbia.edu/projects/artistid/",
    licence="other",
    licence_note="Artist20 holds commercial recordings (copyrighted albums), distributed by LabROSA for research only.",
    bibtex=BIBTEX,
    splits="albums per artist, `paper` split 4/1/1 (train/validation/test) from the SVU manifest",
    preprocessing="decoded to 24 kHz mono, cut into {chunk:g} s chunks, a chunk kept when its mean frame RMS > 0.01",
    no_redistribution="Artist20 is copyrighted commercial music distributed for research only",
    separable=True,
    split_help="paper (4/1/1, default) | official (3/1/2)",
)
