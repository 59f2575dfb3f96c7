"""MIR-1K (Hsu & Jang, 2010): 1000 karaoke clips of 19 amateur singers with semitone pitch labels, for the pitch task.

Layout under ``data_dir`` (the MIR Lab's ``MIR-1K.zip``; the folder holding ``Wavfile/`` and ``PitchLabel/`` may
be the root or one folder down, e.g. ``MIR-1K/`` or ``MIR-1K_for_MIREX/``), as public loaders read it (mirdata's
MIR-1K loader pull request and its test resources, timbre-trap's MIR_1K):

* ``Wavfile/<singer>_<song>_<clip>.wav`` (e.g. ``amy_3_01.wav``, ``Kenshin_1_01.wav``: singer names keep their
  case): **stereo** 16 kHz 16-bit, accompaniment on the **left** channel, the singing voice on the **right**.
  ``source="voice"`` (default) keeps the right channel; ``source="mixture"`` averages both (voice + karaoke);
* ``PitchLabel/<clip>.pv``: one value per line (``"59.4857 "``; trailing blanks, LF or CRLF), the voice's pitch
  in **semitones** on the MIDI scale (69 = A4 = 440 Hz), 0 = unvoiced; frames of 40 ms with a 20 ms hop, the
  first centred at **20 ms** (frame ``i`` at ``0.02 * (i + 1)`` s), as the MIREX 2009 melody collection from the
  same lab documents. Converted here to Hz: ``440 * 2 ** ((semitones - 69) / 12)``, 0 kept as 0;
* ``UnvoicedFrameLabel/``, ``vocal-nonvocalLabel/``, ``Lyrics/``, ``UndividedWavfile/``, ``LyricsWav/`` are not
  used here.

Every clip whose audio or pitch label is missing, unreadable or malformed (non-numeric, negative, or above MIDI
127: pitches in Hz, not semitones) is skipped and named in the report (one line each) and counted; so is a label
without audio and a file not named ``<singer>_<song>_<clip>``. The summary says how many clips remain. A label
ending more than 0.5 s before or after its audio is used, and reported (`pitch_corpus.span_mismatch`).

``song_id`` is the clip, ``<singer>_<song>_<clip>``: the recording file, scored whole; the clips of one song
(cut from ``UndividedWavfile/<singer>_<song>.wav``) share its singer, so the singer split keeps them together.
Splits (MIR-1K has no official one; ours): ``split="singers"`` (default): test = abjones, amy, jmzen, yifen;
validation = bobon, tammy (``validation="none"``: they train); train = the other 13 singers (any singer not in
these lists trains, and is named in the report). ``split="test"``: every clip is test data (the whole corpus as an
evaluation set, as pitch papers such as SPICE and PESTO use it). A singer's clips are in one split only, so no song leaks. `pitch_corpus` describes
the chunks.
"""

import re
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np

from .common import CorpusBuilder, pitch_features
from .corpora import Corpus
from .pitch_corpus import (
    RECORDING_CHUNKING, f0_problem, find_root, semitones_to_hz, singer_split, span_mismatch,
)

SINGERS = (
    "Ani", "Kenshin", "abjones", "amy", "annar", "ariel", "bobon", "bug", "davidson", "fdps", "geniusturtle",
    "heycat", "jmzen", "khair", "leon", "stool", "tammy", "titon", "yifen",
)  # fmt: skip
TEST_SINGERS = ("abjones", "amy", "jmzen", "yifen")
VALIDATION_SINGERS = ("bobon", "tammy")
SPLITS = ("singers", "test")
SOURCES = {"voice": 1, "mixture": None}  # the channel kept: right = voice; None = mean of both
HOP_SECONDS = 0.02  # label hop; the first frame is centred one hop after the start
MAX_SEMITONES = 127.0
CLIP_NAME = re.compile(r"^(?P<singer>[A-Za-z]+)_(?P<song>\d+)_(?P<clip>\d+)$")
EXPECTED = "expected <root>/Wavfile/<singer>_<song>_<clip>.wav and <root>/PitchLabel/<singer>_<song>_<clip>.pv"


def is_mir1k_root(folder: Path) -> bool:
    return (folder / "Wavfile").is_dir() and (folder / "PitchLabel").is_dir()


def load_pv(path) -> tuple:
    """(times, f0_hz) of a ``.pv`` pitch label: frame ``i`` at ``0.02 * (i + 1)`` s, semitones -> Hz, 0 unvoiced.
    ValueError naming the file and the first bad line or the problem."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="ascii").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: cannot read the pitch label: {error}") from None
    values = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            values.append(float(line))
        except ValueError:
            raise ValueError(f"{path}: line {number} is {line.strip()[:40]!r}, expected one semitone value") from None
    semitones = np.array(values, dtype=np.float64)
    if semitones.size and np.isfinite(semitones).all() and semitones.max() > MAX_SEMITONES:
        raise ValueError(f"{path}: unusable pitch label: value {semitones.max():g} above MIDI {MAX_SEMITONES:g} "
                         "(MIR-1K labels are semitones, not Hz)")
    times = HOP_SECONDS * np.arange(1, len(semitones) + 1)
    problem = f0_problem(times, semitones)
    if problem:
        raise ValueError(f"{path}: unusable pitch label: {problem.replace(' Hz', ' semitones')}")
    return times, semitones_to_hz(semitones)


def mir1k_split(singer: str, split: str, validation_singers=VALIDATION_SINGERS) -> str:
    if split == "test":
        return "test"
    return singer_split(singer, TEST_SINGERS, validation_singers)


@dataclass
class Mir1KConfig(datasets.BuilderConfig):
    chunk_seconds: float = 5.0
    source: str = "voice"  # "voice": the right channel; "mixture": both channels averaged (voice + karaoke)
    split: str = "singers"  # "singers": our singer split; "test": every clip test data
    validation_singers: tuple = VALIDATION_SINGERS
    validation: str = "ours"  # "none": the validation singers train too

    def __post_init__(self):
        super().__post_init__()
        if self.source not in SOURCES:
            raise ValueError(f"MIR-1K source={self.source!r} unknown; expected one of {tuple(SOURCES)}")
        if self.split not in SPLITS:
            raise ValueError(f"MIR-1K split={self.split!r} unknown; expected one of {SPLITS}")


class Mir1K(CorpusBuilder):
    """MIR-1K clips (the voice channel by default) with frame-level F0 in Hz (the pitch task)."""

    BUILDER_CONFIG_CLASS = Mir1KConfig
    task = "pitch"
    label_names = []

    def _info(self):
        return datasets.DatasetInfo(description="MIR-1K singing voice with F0", features=pitch_features())

    def _split_generators(self, dl_manager):
        config = self.config
        root = find_root(config.data_dir, "MIR-1K", is_mir1k_root, "no Wavfile/ and PitchLabel/ folders", EXPECTED)
        wavs = {p.stem: p for p in sorted((root / "Wavfile").iterdir()) if p.suffix.lower() == ".wav"}
        labels = {p.stem: p for p in sorted((root / "PitchLabel").iterdir()) if p.suffix.lower() == ".pv"}
        by_split = {"train": [], "validation": [], "test": []}
        unknown_singers = set()
        for clip in sorted(set(wavs) | set(labels)):
            self.report.files_found += 1
            match = CLIP_NAME.match(clip)
            if clip not in wavs:
                self.report.skip(clip, "missing audio file",
                                 f"{root / 'Wavfile' / clip}.wav: no such file (for {labels[clip].name})")
                continue
            if match is None:
                self.report.skip(clip, "name not <singer>_<song>_<clip>")
                continue
            if clip not in labels:
                self.report.skip(clip, "missing pitch label",
                                 f"{root / 'PitchLabel' / clip}.pv: no such file (for {wavs[clip].name})")
                continue
            try:
                times, f0_hz = load_pv(labels[clip])
            except ValueError as error:
                self.report.skip(clip, "unreadable pitch label", str(error))
                continue
            singer = match["singer"]
            if singer.lower() not in {s.lower() for s in SINGERS}:
                unknown_singers.add(singer)
            split = self.assign(mir1k_split(singer, config.split, tuple(config.validation_singers)))
            by_split[split].append((clip, singer, wavs[clip], times, f0_hz))
        if unknown_singers:
            self.report.messages.append(f"singers not among MIR-1K's 19 (put in train): {', '.join(sorted(unknown_singers))}")
        usable = sum(len(entries) for entries in by_split.values())
        self.report.messages.append(f"{usable} of {self.report.files_found} clips have an audio file and a usable pitch label")
        self.report.messages.append(
            "audio: the right (voice) channel" if config.source == "voice" else "audio: both channels averaged (voice + accompaniment)"
        )
        return [datasets.SplitGenerator(name=split, gen_kwargs={"entries": by_split[split]}) for split in by_split]

    def _generate_examples(self, entries):
        channel = SOURCES[self.config.source]
        for (clip, singer, _, times, f0_hz), wave in self.decoded(entries, lambda e: e[2], lambda e: e[0], channel):
            self.report.files_used += 1
            if mismatch := span_mismatch(clip, times, len(wave)):
                self.report.messages.append(mismatch)
            examples = self.pitch_song(wave, times, f0_hz, clip, singer, **RECORDING_CHUNKING)
            for index, example in enumerate(examples):
                yield f"{clip}#{index}", example


BIBTEX = """@article{hsu2010mir1k,
  author  = {Hsu, Chao-Ling and Jang, Jyh-Shing Roger},
  title   = {On the Improvement of Singing Voice Separation for Monaural Recordings Using the {MIR-1K} Dataset},
  journal = {IEEE Transactions on Audio, Speech, and Language Processing},
  volume  = {18},
  number  = {2},
  pages   = {310--319},
  year    = {2010},
  doi     = {10.1109/TASL.2009.2026503}
}"""


def separation_note(options: dict) -> str:
    if options.get("source", "voice") == "voice":
        return "none: the voice channel of the clips"
    return "none: voice and accompaniment channels averaged (source=mixture)"


CORPUS = Corpus(
    name="mir1k",
    builder=Mir1K,
    tasks=("pitch",),
    title="MIR-1K",
    homepage="http://mirlab.org/dataset/public/",
    licence="other",
    licence_note="MIR-1K is offered by the MIR Lab (National Taiwan University) for download without a stated "
                 "licence; its clips are karaoke recordings of copyrighted Chinese pop songs.",
    bibtex=BIBTEX,
    splits="by singer (`singers`, default): test abjones, amy, jmzen, yifen; validation bobon, tammy (ours); "
           "train the other 13",
    preprocessing="the right (voice) channel of the stereo 16 kHz clips (or both averaged: source=mixture; nothing "
                  "above 8 kHz), {chunk:g} s chunks (a shorter rest joins the last), the .pv semitone labels "
                  "converted to Hz at 20 ms + 20 ms x i",
    no_redistribution="MIR-1K states no licence and holds karaoke recordings of copyrighted songs",
    separation_note=separation_note,
    split_help="singers (default) | test",
    option_help="source=mixture",
)
