"""Jam-ALT (Cífka et al., 2023): JamendoLyrics' songs with lyrics revised for transcription (the readability-aware
benchmark of lyrics transcription), for the lyrics task.

Layout under ``data_dir``: a local copy of the Hub dataset ``jamendolyrics/jam-alt`` (``huggingface-cli download
jamendolyrics/jam-alt --repo-type dataset --local-dir DIR``): Parquet files ``parquet/<config>/test-*.parquet``
(``<config>``: ``all``, ``en``, ``es``, ``de``, ``fr``; other Parquet files under the folder are read when there is
no such sub-folder), each row a song with the columns ``name`` (the JamendoLyrics stem), ``text`` (its whole
lyrics, one line per line, no times), ``language`` (``en``, ``es``, ``de``, ``fr``), ``license_type`` and ``audio``.

The lyrics have no times, so each song is one chunk: the whole song and its whole text, scored as a whole song as
the benchmark does (`train/metrics/lyrics`: Jam-ALT's normalisation); the pipeline transcribes it in windows. A row
whose audio is missing (no bytes, a path that does not exist) or does not decode is counted and named.
``language``: ``all`` (default) or one language code. Every song is test data (an evaluation set).
"""

from dataclasses import dataclass
from pathlib import Path

import datasets

from .common import LyricsLine
from .corpora import Corpus
from .lyrics_corpus import LyricsCorpus, LyricsSong, count_found

COLUMNS = ("name", "text", "language", "audio")
LANGUAGES = ("all", "en", "es", "de", "fr")
EXPECTED = "expected a local copy of the Hub dataset jamendolyrics/jam-alt (parquet/<config>/test-*.parquet)"
SONG_SECONDS = 36000.0  # a line spanning any song: the whole song is its chunk


def parquet_files(root: Path, language: str) -> list:
    """The Parquet files of `language`'s config (``parquet/<language>/``), else every Parquet file under `root`."""
    own = sorted((root / "parquet" / language).glob("*.parquet"))
    return [str(path) for path in own or sorted(root.rglob("*.parquet"))]


@dataclass
class JamAltConfig(datasets.BuilderConfig):
    chunk_seconds: float = 5.0  # unused: each song is one chunk
    language: str = "all"
    validation: str = "ours"

    def __post_init__(self):
        super().__post_init__()
        if self.language not in LANGUAGES:
            raise ValueError(f"jam_alt language={self.language!r} unknown; expected one of {LANGUAGES}")


class JamAlt(LyricsCorpus):
    BUILDER_CONFIG_CLASS = JamAltConfig
    DESCRIPTION = "Jam-ALT: JamendoLyrics songs with revised lyrics"

    def listed_songs(self) -> list:
        root, language = Path(self.config.data_dir), self.config.language
        files = parquet_files(root, language) if root.is_dir() else []
        if not files:
            raise ValueError(f"jam_alt: no Parquet file under {root}; {EXPECTED}")
        table = datasets.load_dataset("parquet", data_files=files, split="train")
        missing = [column for column in COLUMNS if column not in table.column_names]
        if missing:
            raise ValueError(f"jam_alt: {files[0]} has no {', '.join(missing)} column (columns: "
                             f"{', '.join(table.column_names)}); {EXPECTED}")
        table = table.cast_column("audio", datasets.Audio(decode=False))
        songs, listed = [], 0
        for row in table:
            if language != "all" and row["language"] != language:
                continue
            listed += 1
            self.report.files_found += 1
            name = str(row["name"])
            audio = row["audio"] or {}
            source = audio.get("bytes") or audio.get("path")
            if not source:
                self.report.skip(name, "missing audio file", f"{name}: its audio cell holds no audio")
                continue
            if not audio.get("bytes") and not Path(source).is_absolute():
                source = str(root / source)
            text = " ".join(str(row["text"] or "").split())
            songs.append(("test", LyricsSong(name, source, (LyricsLine(0.0, SONG_SECONDS, text),))))
        count_found(self.report, len(songs), listed, f"{language} songs")
        return songs


BIBTEX = """@inproceedings{cifka2023jamalt,
  author    = {C{\\'\\i}fka, Ond{\\v{r}}ej and Dimitriou, Constantinos and Wang, Cheng-i and Schreiber, Hendrik and
               Miner, Luke and St{\\"o}ter, Fabian-Robert},
  title     = {{Jam-ALT}: A Formatting-Aware Lyrics Transcription Benchmark},
  booktitle = {ISMIR Late-Breaking Demo Session},
  year      = {2023}
}"""

CORPUS = Corpus(
    name="jam_alt",
    builder=JamAlt,
    tasks=("lyrics",),
    title="Jam-ALT",
    homepage="https://huggingface.co/datasets/jamendolyrics/jam-alt",
    licence="cc-by-nc-sa-4.0",
    licence_note="Jam-ALT's revised lyrics are CC BY-NC-SA 4.0; each song keeps its own Creative Commons licence "
                 "(the license_type column, several of them no-derivatives).",
    bibtex=BIBTEX,
    splits="every song test data (an evaluation set); language all (default) or en / es / de / fr",
    preprocessing="mixtures decoded to 24 kHz mono, each whole song one chunk with its whole lyrics (they have no "
                  "times), no fixed {chunk:g} s cut",
    no_redistribution="several Jam-ALT songs are CC BY-ND / BY-NC-ND: derived audio may not be redistributed",
    option_help="language=all (or en, es, de, fr)",
)
