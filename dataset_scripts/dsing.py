"""DSing (Dabike & Barker, 2019): English solo karaoke singing from Smule's Sing! 300x30x2, in the Kaldi data
directories the DSing recipe writes, for the lyrics task.

Layout under ``data_dir`` (the recipe's ``s5`` folder, or one folder up), as groadabike/Kaldi-Dsing-task's
``local/prepare_data.py`` makes it:

* ``data/<set>/`` for ``<set>`` in ``train1`` / ``train3`` / ``train30`` (the ``train`` option; default ``train30``),
  ``dev`` and ``test``, each with ``text`` (``<utt_id> <WORDS ...>``, upper case), ``segments`` (``<utt_id>
  <rec_id> <start_s> <end_s>``), ``utt2spk`` (``<utt_id> <speaker>``) and ``wav.scp`` (``<rec_id> sox
  wav/<country>/<country>Vocals/<file>.m4a -G -t wav -r 16000 -c 1 - remix 1 |``, or ``<rec_id> <path>``);
* the performances themselves under the path ``wav.scp`` names, relative to ``data_dir`` (the recipe links ``wav``
  to the Sing! 300x30x2 root): each recording is decoded once (24 kHz mono) and cut at its utterances' segments.

DSing's utterances are its lines (a few seconds each, times of the line, no word times): one chunk per utterance,
the utterance's span widened by 0.1 s each side. Splits are DSing's own: ``<train>`` train, ``dev`` validation,
``test`` test. An utterance without text or segment, a recording ``wav.scp`` lacks, a missing or unreadable audio
file are counted and named in the report.
"""

import shlex
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import datasets

from svu.modeling_svu.audio_io import AUDIO_SUFFIXES

from .common import LyricsLine
from .corpora import Corpus, isolated_vocals
from .lyrics_corpus import LyricsCorpus, LyricsSong, count_found
from .pitch_corpus import find_root

TRAIN_SETS = ("train30", "train3", "train1")
SETS = {"validation": "dev", "test": "test"}
LISTS = ("text", "segments", "utt2spk", "wav.scp")
EXPECTED = "expected <root>/data/<set>/{text,segments,utt2spk,wav.scp} for the sets train30 (or train3/train1), dev, test"


def kaldi_table(path: Path) -> dict:
    """``{first field: rest of the line}`` of a Kaldi list (blank lines skipped); ValueError naming an unreadable
    file."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: cannot read it: {error}") from None
    table = {}
    for line in lines:
        key, _, rest = line.strip().partition(" ")
        if key:
            table[key] = rest.strip()
    return table


def wav_path(entry: str, root: Path):
    """The audio file a ``wav.scp`` entry names (a path, or the input of a ``sox ... |`` pipe), under `root`."""
    for token in shlex.split(entry.rstrip("|")):
        if Path(token).suffix.lower() in AUDIO_SUFFIXES:
            return root / token
    return None


@dataclass
class DSingConfig(datasets.BuilderConfig):
    chunk_seconds: float = 5.0  # unused: DSing's utterances are its chunks
    train: str = "train30"
    validation: str = "ours"  # "none": dev trains too

    def __post_init__(self):
        super().__post_init__()
        if self.train not in TRAIN_SETS:
            raise ValueError(f"dsing train={self.train!r} unknown; expected one of {TRAIN_SETS}")


class DSing(LyricsCorpus):
    BUILDER_CONFIG_CLASS = DSingConfig
    DESCRIPTION = "DSing: sung English lines from Sing! 300x30x2"

    def listed_songs(self) -> list:
        root = find_root(self.config.data_dir, "dsing", lambda folder: (folder / "data" / "test" / "text").is_file(),
                         "no data/test/text", EXPECTED)
        songs = []
        for split, kaldi_set in (("train", self.config.train), *SETS.items()):
            songs += [(split, song) for song in self.set_songs(root, kaldi_set)]
        return songs

    def set_songs(self, root: Path, kaldi_set: str) -> list:
        folder = root / "data" / kaldi_set
        missing = [name for name in LISTS if not (folder / name).is_file()]
        if missing:
            raise ValueError(f"dsing: {folder} has no {', '.join(missing)}; {EXPECTED}")
        text, segments, speakers, wavs = (kaldi_table(folder / name) for name in LISTS)
        lines = defaultdict(list)
        for utt_id, words in sorted(text.items()):
            segment = segments.get(utt_id, "").split()
            if len(segment) != 3:
                self.report.skip(utt_id, "utterance without a segment",
                                 f"{folder / 'segments'}: no <rec_id> <start> <end> for {utt_id} (listed in text)")
                continue
            try:
                start, end = float(segment[1]), float(segment[2])
            except ValueError:
                self.report.skip(utt_id, "utterance without a segment", f"{folder / 'segments'}: {utt_id}: {segment}")
                continue
            lines[segment[0]].append((LyricsLine(start, end, words), speakers.get(utt_id, "")))
        songs = []
        for rec_id in sorted(lines):
            self.report.files_found += 1
            path = wav_path(wavs[rec_id], root) if rec_id in wavs else None
            if path is None:
                self.report.skip(rec_id, "recording not in wav.scp",
                                 f"{folder / 'wav.scp'}: no audio file for {rec_id} (its utterances are in segments)")
                continue
            ordered = sorted(lines[rec_id], key=lambda item: item[0].start)
            songs.append(LyricsSong(rec_id, path, tuple(line for line, _ in ordered), ordered[0][1]))
        found = sum(Path(song.audio).is_file() for song in songs)
        count_found(self.report, found, len(lines), f"{kaldi_set} performances")
        return songs


BIBTEX = """@inproceedings{dabike2019automatic,
  author    = {Dabike, Gerardo Roa and Barker, Jon},
  title     = {Automatic Lyric Transcription from Karaoke Vocal Tracks: Resources and a Baseline System},
  booktitle = {Proc. Interspeech},
  pages     = {579--583},
  year      = {2019}
}"""

CORPUS = Corpus(
    name="dsing",
    builder=DSing,
    tasks=("lyrics",),
    title="DSing (Sing! 300x30x2)",
    homepage="https://github.com/groadabike/Kaldi-Dsing-task",
    licence="other",
    licence_note="DSing is built from Smule's Sing! 300x30x2 (DAMP), distributed by Stanford CCRMA for research under "
                 "Smule's terms; the DSing lists are the recipe's.",
    bibtex=BIBTEX,
    splits="DSing's own: train30 (or train3 / train1) train, dev validation, test test",
    preprocessing="decoded to 24 kHz mono, one chunk per DSing utterance (its line, a few seconds; +-0.1 s), no "
                  "fixed {chunk:g} s cut",
    no_redistribution="Sing! 300x30x2 audio is distributed by Stanford CCRMA under Smule's research terms",
    separation_note=isolated_vocals,
    split_help="the train option picks the training list: train30 (default) | train3 | train1",
    option_help="train=train30",
)
