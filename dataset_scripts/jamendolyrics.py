"""JamendoLyrics MultiLang (Stoller et al., 2019; Durand et al., 2023): 80 Creative Commons songs with lyrics timed
word by word, an evaluation set for the lyrics task.

Layout under ``data_dir`` (a clone of github.com/f90/jamendolyrics, at the root or one folder down):

* ``JamendoLyrics.csv``: header ``URL,Filepath,Artist,Title,Genre,LicenseType,Language,LyricOverlap,Polyphonic,
  NonLexical``, one row per song (``Filepath``: ``<stem>.mp3``; ``Language``: English, German, French, Spanish);
* ``mp3/<stem>.mp3``: the songs (mixtures; a clone often lacks them: each missing one is counted and named);
* ``annotations/lines/<stem>.csv``: ``start_time,end_time,lyrics_line``, one sung line per row;
* ``annotations/words/<stem>.csv``: ``word_start,word_end,line_end``, one row per word of the lyrics in order
  (``line_end`` the line's end on its last word, else ``nan``);
* ``lyrics/<stem>.txt`` (the lyrics, one line per line) and ``lyrics/<stem>.words.txt`` are not read: the line CSV
  carries the same text.

Songs become line-level chunks (the line CSV's spans, +-0.1 s) with their words timed from the word CSV (the words
of the lines, split on white space, paired in order; a song whose counts differ keeps its lines untimed and is named).
``language`` picks the subset: ``English`` (default: the 20-song English benchmark), one of the other languages, or
``all``. JamendoLyrics is an evaluation set: every song is test data.
"""

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import datasets

from .common import LyricsLine
from .corpora import Corpus
from .lyrics_corpus import LyricsCorpus, LyricsSong, count_found
from .pitch_corpus import find_root

METADATA_FILE = "JamendoLyrics.csv"
EXPECTED = (f"expected <root>/{METADATA_FILE}, <root>/mp3/<stem>.mp3, <root>/annotations/lines/<stem>.csv and "
            "<root>/annotations/words/<stem>.csv (a clone of github.com/f90/jamendolyrics)")


def read_rows(path: Path, columns: tuple) -> list:
    """The rows of a CSV with a header holding `columns`; ValueError naming the file otherwise."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            header = reader.fieldnames or ()
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ValueError(f"{path}: cannot read it: {error}") from None
    missing = [column for column in columns if column not in header]
    if missing:
        raise ValueError(f"{path}: no {', '.join(missing)} column (header: {','.join(header)})")
    return rows


def song_lines(root: Path, stem: str) -> tuple:
    """(`LyricsLine`s of a song, a message when its words could not be timed or None); ValueError naming the file
    and row of the first unusable line."""
    path = root / "annotations" / "lines" / f"{stem}.csv"
    spans = []
    for number, row in enumerate(read_rows(path, ("start_time", "end_time", "lyrics_line")), 2):
        try:
            start, end = float(row["start_time"]), float(row["end_time"])
        except (TypeError, ValueError):
            raise ValueError(f"{path} line {number}: start_time,end_time are not numbers") from None
        if not (math.isfinite(start) and math.isfinite(end)) or end < start:
            raise ValueError(f"{path} line {number}: the line ends before it starts")
        spans.append((start, end, (row["lyrics_line"] or "").strip()))
    words_path = root / "annotations" / "words" / f"{stem}.csv"
    words = [word for _, _, text in spans for word in text.split()]
    try:
        times = [(float(row["word_start"]), float(row["word_end"]))
                 for row in read_rows(words_path, ("word_start", "word_end"))]
    except (ValueError, TypeError):
        times = None
    if times is None or len(times) != len(words):
        untimed = tuple(LyricsLine(start, end, text) for start, end, text in spans)
        found = "no usable word times" if times is None else f"{len(times)} word times for {len(words)} words"
        return untimed, f"{stem}: {found} ({words_path}); its lines are used without word times"
    lines, index = [], 0
    for start, end, text in spans:
        count = len(text.split())
        timed = tuple((word, *time) for word, time in zip(words[index:index + count], times[index:index + count]))
        lines.append(LyricsLine(start, end, text, timed))
        index += count
    return tuple(lines), None


@dataclass
class JamendoLyricsConfig(datasets.BuilderConfig):
    chunk_seconds: float = 5.0  # unused: the sung lines are the chunks
    language: str = "English"  # a `Language` value of JamendoLyrics.csv, or "all"
    validation: str = "ours"


class JamendoLyrics(LyricsCorpus):
    BUILDER_CONFIG_CLASS = JamendoLyricsConfig
    DESCRIPTION = "JamendoLyrics: Creative Commons songs with word-timed lyrics"

    def listed_songs(self) -> list:
        root = find_root(self.config.data_dir, "jamendolyrics", lambda folder: (folder / METADATA_FILE).is_file(),
                         f"no {METADATA_FILE}", EXPECTED)
        rows = read_rows(root / METADATA_FILE, ("Filepath", "Artist", "Language"))
        language = self.config.language
        if language != "all" and language not in {row["Language"] for row in rows}:
            raise ValueError(f"jamendolyrics language={language!r}: no such Language in {METADATA_FILE} (it has "
                             f"{', '.join(sorted({row['Language'] for row in rows}))}; or all)")
        chosen = [row for row in rows if language in ("all", row["Language"])]
        songs = []
        for row in chosen:
            self.report.files_found += 1
            stem = Path(row["Filepath"]).stem
            audio = root / "mp3" / row["Filepath"]
            if not audio.is_file():
                self.report.skip(stem, "missing audio file", f"{audio}: no such file (listed in {METADATA_FILE})")
                continue
            try:
                lines, message = song_lines(root, stem)
            except ValueError as error:
                self.report.skip(stem, "missing or unreadable line annotation", str(error))
                continue
            if message:
                self.report.messages.append(message)
            songs.append(("test", LyricsSong(stem, audio, lines, row["Artist"])))
        count_found(self.report, len(songs), len(chosen), f"listed {language} songs (audio and lines)")
        return songs


BIBTEX = """@inproceedings{stoller2019end,
  author    = {Stoller, Daniel and Durand, Simon and Ewert, Sebastian},
  title     = {End-to-end Lyrics Alignment for Polyphonic Music Using an Audio-to-Character Recognition Model},
  booktitle = {Proc. ICASSP},
  pages     = {181--185},
  year      = {2019}
}
@inproceedings{durand2023contrastive,
  author    = {Durand, Simon and Stoller, Daniel and Ewert, Sebastian},
  title     = {Contrastive Learning-Based Audio to Lyrics Alignment for Multiple Languages},
  booktitle = {Proc. ICASSP},
  year      = {2023}
}"""

CORPUS = Corpus(
    name="jamendolyrics",
    builder=JamendoLyrics,
    tasks=("lyrics",),
    title="JamendoLyrics MultiLang",
    homepage="https://github.com/f90/jamendolyrics",
    licence="cc-by-nc-sa-4.0",
    licence_note="The annotations are CC BY-NC-SA 4.0; each song keeps its own Creative Commons licence "
                 "(JamendoLyrics.csv LicenseType, several of them no-derivatives).",
    bibtex=BIBTEX,
    splits="every song test data (an evaluation set); language English (default, the 20-song benchmark) or all",
    preprocessing="mixtures decoded to 24 kHz mono, one chunk per annotated line (+-0.1 s) with its words timed, no "
                  "fixed {chunk:g} s cut",
    no_redistribution="several JamendoLyrics songs are CC BY-ND / BY-NC-ND: derived audio may not be redistributed",
    separable=False,
    option_help="language=English (or German, French, Spanish, all)",
)
