"""DALI (Meseguer-Brocal et al., 2018): about 5000 songs with karaoke lyrics aligned at four levels (notes, words,
lines, paragraphs), for the lyrics task.

Layout under ``data_dir``:

* ``<id>.gz`` per song (at the root or one folder down, e.g. ``DALI_v1.0/``): the song's annotation as gzipped JSON,
  the form DALI's ``Annotations.write_json`` writes: ``{"info": {"id", "artist", "title", "audio": {"url", "path",
  "working"}, "metadata": {"language", ...}}, "annotations": {"type": "horizontal", "annot": {"notes", "words",
  "lines", "paragraphs"}}}``, each level a list of ``{"text", "time": [start_s, end_s], "freq": [low_hz, high_hz],
  "index"}`` where ``index`` is the entry's parent on the next level (a word's line, a line's paragraph). DALI's
  own ``.gz`` files are Python pickles, which SVU does not load (a pickle runs code): export them with
  ``write_json`` first; a file that is not gzipped JSON is counted and named;
* the audio, found by id: ``<audio_dir>/<id>.<ext>`` (``audio_dir`` option, default ``<root>/audio``; DALI's
  ``get_audio`` downloads ``<id>.mp3``). A song without its audio is counted and named (YouTube links die).

Songs become line-level chunks (the ``lines`` level, +-0.1 s) with the words of each line timed (the ``words`` level,
by their ``index``). ``language`` keeps the songs of one ``metadata.language`` (default ``english``; ``all``).
Splits (DALI has none; ours): the songs shuffled with ``split_seed`` and cut 80/10/10.
"""

import gzip
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import datasets

from svu.modeling_svu.audio_io import AUDIO_SUFFIXES

from .common import LyricsLine
from .corpora import Corpus
from .folder import split_groups
from .lyrics_corpus import LyricsCorpus, LyricsSong, count_found
from .pitch_corpus import find_root

RATIOS = (0.8, 0.1, 0.1)
EXPECTED = "expected <root>/<id>.gz annotations (gzipped JSON, DALI's write_json) and <root>/audio/<id>.mp3"


def read_annotation(path: Path) -> dict:
    """The annotation of a DALI song file; ValueError naming the file when it is not gzipped JSON of that form."""
    try:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            song = json.load(handle)
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not gzipped JSON ({str(error).splitlines()[0]}); a DALI pickle must be exported "
                         "with DALI's write_json") from None
    annot = (song.get("annotations") or {}).get("annot") if isinstance(song, dict) else None
    if not isinstance(annot, dict) or not isinstance(annot.get("lines"), list):
        raise ValueError(f"{path}: no annotations.annot.lines (not a DALI annotation)")
    return song


def dali_lines(annot: dict) -> tuple:
    """`LyricsLine`s of the ``lines`` level, each with the ``words`` whose ``index`` is the line's position."""
    words = defaultdict(list)
    for word in annot.get("words") or []:
        words[word["index"]].append((str(word["text"]).strip(), float(word["time"][0]), float(word["time"][1])))
    lines = []
    for position, line in enumerate(annot["lines"]):
        start, end = (float(t) for t in line["time"])
        timed = tuple(sorted((w for w in words.get(position, []) if w[0]), key=lambda w: w[1]))
        lines.append(LyricsLine(start, end, str(line["text"]).strip(), timed))
    return tuple(sorted(lines, key=lambda line: line.start))


def find_audio(audio_dir: Path, song_id: str) -> Optional[Path]:
    for suffix in AUDIO_SUFFIXES:
        if (audio_dir / f"{song_id}{suffix}").is_file():
            return audio_dir / f"{song_id}{suffix}"
    return None


@dataclass
class DaliConfig(datasets.BuilderConfig):
    chunk_seconds: float = 5.0  # unused: the sung lines are the chunks
    language: str = "english"  # a metadata.language value, or "all"
    audio_dir: Optional[str] = None  # default: <root>/audio
    split_seed: int = 0
    validation: str = "ours"


class Dali(LyricsCorpus):
    BUILDER_CONFIG_CLASS = DaliConfig
    DESCRIPTION = "DALI: songs with karaoke lyrics aligned to the audio"

    def listed_songs(self) -> list:
        config = self.config
        root = find_root(config.data_dir, "dali", lambda folder: any(folder.glob("*.gz")), "no <id>.gz annotation",
                         EXPECTED)
        audio_dir = Path(config.audio_dir) if config.audio_dir else root / "audio"
        songs, annotated = {}, 0
        for path in sorted(root.glob("*.gz")):
            song_id = path.name[: -len(".gz")].removesuffix(".json")
            try:
                song = read_annotation(path)
                lines = dali_lines(song["annotations"]["annot"])
            except (ValueError, KeyError, TypeError, IndexError) as error:
                self.report.files_found += 1
                self.report.skip(song_id, "unreadable annotation", str(error) if isinstance(error, ValueError)
                                 else f"{path}: malformed DALI annotation ({type(error).__name__}: {error})")
                continue
            info = song.get("info") or {}
            language = str((info.get("metadata") or {}).get("language", "")).lower()
            if config.language != "all" and language != config.language.lower():
                continue
            self.report.files_found += 1
            annotated += 1
            audio = find_audio(audio_dir, song_id)
            if audio is None:
                self.report.skip(song_id, "missing audio file", f"{audio_dir}/{song_id}.*: no audio file for this id")
                continue
            songs[song_id] = LyricsSong(song_id, audio, lines, str(info.get("artist", "")))
        count_found(self.report, len(songs), annotated, f"{config.language} songs annotated")
        splits = split_groups(songs, RATIOS, config.split_seed)
        return [(splits[song_id], song) for song_id, song in songs.items()]


BIBTEX = """@inproceedings{meseguer2018dali,
  author    = {Meseguer-Brocal, Gabriel and Cohen-Hadria, Alice and Peeters, Geoffroy},
  title     = {{DALI}: A Large Dataset of Synchronized Audio, Lyrics and Notes, Automatically Created Using
               Teacher-Student Machine Learning Paradigm},
  booktitle = {Proc. ISMIR},
  pages     = {431--437},
  year      = {2018}
}"""

CORPUS = Corpus(
    name="dali",
    builder=Dali,
    tasks=("lyrics",),
    title="DALI",
    homepage="https://github.com/gabolsgabs/DALI",
    licence="other",
    licence_note="DALI's annotations are for research (its terms of use); the audio is copyrighted music the user "
                 "fetches from YouTube.",
    bibtex=BIBTEX,
    splits="ours: songs shuffled (split_seed) and cut 80/10/10, a song in one split only",
    preprocessing="mixtures decoded to 24 kHz mono, one chunk per DALI line (+-0.1 s) with its words timed, no fixed "
                  "{chunk:g} s cut",
    no_redistribution="DALI audio is copyrighted music downloaded from YouTube",
    option_help="language=english (or all), audio_dir=<root>/audio, split_seed=0",
)
