"""A synthetic singing corpus: deterministic from a seed, generated on the fly, no download.

Voices are additive harmonic sources (spectral tilt ``k^-tilt``) shaped by a three-formant
envelope, with jitter (slow random f0 wobble), shimmer (random amplitude wobble) and formant-
shaped breath noise. Everything is derived from ``numpy.random.default_rng([seed, ...ids])`` per
clip, so equal seeds give bit-identical corpora and clips do not depend on generation order.

Singers (``make_singers``): singer ``i`` of ``n`` has a median pitch spread evenly from MIDI 45
(A2) to 69 (A4), a formant scale from 0.82 to 1.22 (vocal-tract length), a tilt and a breath
level of its own, and a home vowel; so singers differ clearly in f0 range *and* timbre.

Tasks (option ``task``), each with its split rule (ours, mirroring the real corpora):

* ``technique`` (like VocalSet): 6 classes, acoustically real:
  straight (steady pitch), vibrato (5-6 Hz, +-50-80 cents), trill (pitch alternating 2-3
  semitones at 6.5-8 Hz), breathy (steep tilt, strong noise), vocal_fry (55-75 Hz irregular
  pulses: heavy jitter and shimmer, flat tilt), spoken (gliding, falling pitch in 150-300 ms
  syllables separated by short pauses, a new vowel per syllable). Each singer records
  ``clips_per_class`` clips of ``clip_seconds`` per technique, cut into 3 s chunks.
  Split **by held-out singers**: the last ``max(1, round(n/4))`` singers are test, the one
  before them validation, the rest train (needs ``num_singers >= 3``).
* ``singer_id`` (like Artist20): ``num_singers`` classes; each singer records
  ``recordings_per_singer`` melodies ("albums", straight or vibrato, home vowel), cut into 5 s
  chunks, RMS-filtered like Artist20. Split **by held-out recordings**: per singer the last
  recording is test, the one before validation, the rest train, so every singer is in every split
  (needs ``recordings_per_singer >= 3``).
* ``transcription`` (like MIR-ST500): ``num_songs`` songs of ``song_seconds`` s, melodies of
  notes 0.25-0.7 s long separated by 60-200 ms of silence (clear boundaries), pitch a random walk
  kept in MIDI 40-79 (inside the model's 36-83), 15 ms attack / 30 ms release inside the
  labelled note, light vibrato; labels are exact. Cut into 5 s chunks with notes cut at chunk
  edges (see `common.py`). Split **by song**: the last ``max(1, round(n/5))`` songs are test,
  the ``max(1, round(n/10))`` before them validation, the rest train (needs ``num_songs >= 3``).

* ``pitch`` (frame-level F0, like vocadito / MIR-1K): ``num_songs`` songs of ``song_seconds`` s sung by
  `sing`, which returns the exact F0 the source was driven with on a 10 ms grid (``f0_times`` / ``f0_hz``, 0 =
  unvoiced): notes off the semitone grid (+-``cent_spread`` cents), vibrato on some notes (0-80 cents, 4.5-6.5
  Hz), glides into legato notes, jitter, a random vowel per note (8 singers by default: timbre varies as
  much as pitch, so a pitch model cannot lean on one voice's formants), unvoiced gaps (a low noise floor and
  some breath/consonant noise bursts). Cut into 5 s chunks with the F0 of each chunk's span (see `common.pitch_examples`). Split **by
  song** as transcription.

* ``lyrics`` (like DSing / JamendoLyrics): ``num_songs`` songs of ``song_seconds`` s, sung as 3 s lines of words
  from `LEXICON` (consonant-vowel syllables of seven letters, one syllable per note of 0.25-0.4 s, the syllables
  of a word legato, short rests between words, silence at the line edges), rendered by `sing_syllables`: vowels
  by their formants, L / M as voiced murmurs with their own formants, S / T as noise (hiss, closure + burst)
  before the vowel. The words and their times are exact. Each 3 s chunk is one line (no word crosses a chunk
  edge, so chunk and whole-song transcripts agree). Split **by song** as transcription.

Default sizes give a few minutes of audio per task (technique 4.8 min, singer_id 4 min,
transcription 3.3 min, pitch 3.3 min); the size options shrink it for tests (~20-60 s).

Other code renders its own notes with known F0 through `sing(notes, seconds, ...)` (notes as fractional MIDI,
e.g. 60.25 = C4 + 25 cents): ``SungAudio(wave, f0_times, f0_hz)``.
"""

import dataclasses
from dataclasses import dataclass
from typing import Callable

import datasets
import numpy as np

# numpy loads these submodules lazily; load them now, before `datasets` swaps this module's `np` for a copy that
# holds only the attributes already loaded (its streaming patch), or `np.fft` is missing while generating.
import numpy.fft  # noqa: F401
import numpy.random  # noqa: F401

from svu.modeling_svu.tasks import DEFAULT_TASK, TASK_NAMES, get_task

from .audio import SAMPLING_RATE as STORED_RATE, audio_cell, resample
from .parallel import ordered_map
from .common import (
    CorpusBuilder,
    classification_examples,
    classification_features,
    lyrics_features,
    pitch_features,
    transcription_features,
)
from .corpora import Corpus, isolated_vocals

TECHNIQUES = ("straight", "vibrato", "trill", "breathy", "vocal_fry", "spoken")
# (F1, F2, F3) in Hz of an average adult voice
VOWELS = {
    "a": (800.0, 1200.0, 2500.0),
    "e": (500.0, 1900.0, 2600.0),
    "i": (320.0, 2300.0, 3000.0),
    "o": (500.0, 900.0, 2500.0),
    "u": (350.0, 750.0, 2400.0),
}
FORMANT_BANDWIDTHS = np.array([90.0, 110.0, 160.0])
FORMANT_GAINS = np.array([1.0, 0.6, 0.3])
CONTROL_HOP = 64  # samples between updates of the harmonic gains
MAX_HARMONIC_HZ = 6000.0
# The voices hold nothing above MAX_HARMONIC_HZ but breath noise, so they are synthesised at 16 kHz; the builder
# resamples each clip to the rate prepared datasets are stored at (`audio.SAMPLING_RATE`).
SYNTHESIS_RATE = 16000


def midi_to_hz(midi):
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69.0) / 12.0)


@dataclass(frozen=True)
class Singer:
    name: str
    median_midi: float
    formant_scale: float
    tilt: float
    breath: float
    vowel: str


def make_singers(num_singers: int, seed: int = 0) -> list:
    rng = np.random.default_rng([seed, 7])
    spread = np.linspace(0.0, 1.0, num_singers) if num_singers > 1 else np.zeros(1)
    scales = 0.82 + 0.40 * spread[rng.permutation(num_singers)]
    vowels = list(VOWELS)
    return [
        Singer(
            name=f"singer{i:02d}",
            median_midi=float(45.0 + 24.0 * spread[i]),
            formant_scale=float(scales[i]),
            tilt=float(rng.uniform(0.9, 1.4)),
            breath=float(rng.uniform(0.01, 0.04)),
            vowel=vowels[i % len(vowels)],
        )
        for i in range(num_singers)
    ]


def smooth_noise(rng, num_samples: int, rate_hz: float) -> np.ndarray:
    """Zero-mean unit-ish random signal with changes at about ``rate_hz`` (linear interpolation)."""
    num_points = int(num_samples * rate_hz / SYNTHESIS_RATE) + 2
    points = rng.standard_normal(num_points)
    return np.interp(np.arange(num_samples) * rate_hz / SYNTHESIS_RATE, np.arange(num_points), points)


def formant_envelope(freqs: np.ndarray, formants: np.ndarray) -> np.ndarray:
    """Sum of three resonance bumps evaluated at ``freqs`` (any shape); ``formants`` (..., 3)."""
    freqs = freqs[..., None]
    bumps = FORMANT_GAINS / (1.0 + ((freqs - formants) / FORMANT_BANDWIDTHS) ** 2)
    return bumps.sum(axis=-1) + 0.03


def synthesize(f0, amplitude, formants, tilt, breath, rng, jitter=0.003, shimmer=0.03) -> np.ndarray:
    """Per-sample f0 (Hz), amplitude and formants (N, 3) -> float32 waveform peaking at 0.5."""
    num_samples = len(f0)
    f0 = f0 * (1.0 + jitter * smooth_noise(rng, num_samples, 40.0))
    phase = 2.0 * np.pi * np.cumsum(f0) / SYNTHESIS_RATE
    control = slice(None, None, CONTROL_HOP)
    f0_control, formants_control = f0[control], formants[control]
    wave = np.zeros(num_samples, dtype=np.float32)
    rotation = np.exp(1j * phase).astype(np.complex64)
    harmonic = rotation.copy()  # exp(i k phase), by repeated multiplication (cheaper than sin)
    for k in range(1, int(MAX_HARMONIC_HZ / f0.min()) + 1):
        gain = formant_envelope(k * f0_control, formants_control) * k**-tilt * (k * f0_control < MAX_HARMONIC_HZ)
        wave += np.repeat(gain.astype(np.float32), CONTROL_HOP)[:num_samples] * harmonic.imag
        harmonic *= rotation
    wave *= 1.0 + shimmer * smooth_noise(rng, num_samples, 60.0)
    wave /= np.abs(wave).max() + 1e-9
    noise_spectrum = np.fft.rfft(rng.standard_normal(num_samples))
    bins = np.fft.rfftfreq(num_samples, 1.0 / SYNTHESIS_RATE)
    # aspiration noise: formant-coloured plus a flat floor from 1.5 kHz up (breathy voices are bright)
    shape = formant_envelope(bins, formants.mean(axis=0)) + 0.3 * (bins > 1500.0)
    noise = np.fft.irfft(noise_spectrum * shape, num_samples)
    wave += breath * noise / (np.abs(noise).max() + 1e-9)
    wave *= amplitude
    return (0.5 * wave / (np.abs(wave).max() + 1e-9)).astype(np.float32)


def note_envelope(num_samples: int, attack: float = 0.015, release: float = 0.03) -> np.ndarray:
    attack_n, release_n = int(attack * SYNTHESIS_RATE), int(release * SYNTHESIS_RATE)
    envelope = np.ones(num_samples)
    envelope[:attack_n] = np.linspace(0.0, 1.0, attack_n)[: num_samples]
    envelope[num_samples - min(release_n, num_samples) :] *= np.linspace(1.0, 0.0, min(release_n, num_samples))
    return envelope


def render_notes(notes, num_samples: int, vibrato_cents, vibrato_hz, rng) -> tuple:
    """Per-sample f0 and amplitude tracks for (onset_s, offset_s, midi) notes; silence between."""
    f0 = np.full(num_samples, np.nan)
    amplitude = np.zeros(num_samples)
    for onset, offset, pitch in notes:
        start, end = int(round(onset * SYNTHESIS_RATE)), min(int(round(offset * SYNTHESIS_RATE)), num_samples)
        f0[start:end] = midi_to_hz(pitch)
        amplitude[start:end] = note_envelope(end - start) * rng.uniform(0.7, 1.0)
    # the source keeps running through the gaps (silent there) so the phase stays continuous
    voiced = ~np.isnan(f0)
    f0 = np.interp(np.arange(num_samples), np.flatnonzero(voiced), f0[voiced])
    t = np.arange(num_samples) / SYNTHESIS_RATE
    f0 = f0 * 2.0 ** (vibrato_cents / 1200.0 * np.sin(2 * np.pi * vibrato_hz * t))
    return f0, amplitude


def steady_formants(singer: Singer, vowel: str, num_samples: int) -> np.ndarray:
    return np.tile(np.array(VOWELS[vowel]) * singer.formant_scale, (num_samples, 1))


def note_formants(singer: Singer, notes, vowels, num_samples: int) -> np.ndarray:
    """(num_samples, 3) formants of `singer` singing one vowel per note (`vowels`, None = the home vowel): each
    vowel held from its note's onset to the next note's, moving to the next over 40 ms (a smoothed step)."""
    if vowels is None:
        return steady_formants(singer, singer.vowel, num_samples)
    if len(vowels) != len(notes):
        raise ValueError(f"{len(vowels)} vowels for {len(notes)} notes: give one vowel per note.")
    table = np.array([VOWELS[vowel] for vowel in vowels]) * singer.formant_scale
    onsets = np.round(np.array([note[0] for note in notes]) * SYNTHESIS_RATE).astype(int)
    index = np.clip(np.searchsorted(onsets, np.arange(num_samples), side="right") - 1, 0, len(vowels) - 1)
    width = int(0.04 * SYNTHESIS_RATE)
    padded = np.pad(table[index], ((width // 2, width - width // 2 - 1), (0, 0)), mode="edge")
    kernel = np.ones(width) / width
    return np.stack([np.convolve(padded[:, j], kernel, mode="valid") for j in range(3)], axis=1)


def technique_clip(singer: Singer, technique: str, seconds: float, rng) -> np.ndarray:
    """One clip of ``technique`` sung by ``singer``: sustained notes near the singer's median."""
    n = int(seconds * SYNTHESIS_RATE)
    t = np.arange(n) / SYNTHESIS_RATE
    vowel = list(VOWELS)[rng.integers(len(VOWELS))]
    formants = steady_formants(singer, vowel, n)
    note_seconds = rng.uniform(1.0, 2.0)
    pitches = singer.median_midi + rng.integers(-4, 5, size=int(seconds / note_seconds) + 1)
    midi = pitches[np.minimum((t / note_seconds).astype(int), len(pitches) - 1)].astype(np.float64)
    amplitude = np.ones(n)
    tilt, breath, jitter, shimmer = singer.tilt, singer.breath, 0.003, 0.03
    if technique == "straight":
        midi = midi + 0.05 * smooth_noise(rng, n, 2.0)
    elif technique == "vibrato":
        midi = midi + rng.uniform(0.5, 0.8) * np.sin(2 * np.pi * rng.uniform(5.0, 6.0) * t)
    elif technique == "trill":
        square = np.tanh(6.0 * np.sin(2 * np.pi * rng.uniform(6.5, 8.0) * t))
        midi = midi + rng.uniform(2.0, 3.0) * 0.5 * (square + 1.0)
    elif technique == "breathy":
        tilt, breath = tilt + 1.5, 0.8
    elif technique == "vocal_fry":
        midi = np.full(n, 12 * np.log2(rng.uniform(55.0, 75.0) / 440.0) + 69.0)
        tilt, jitter, shimmer = 0.4, 0.15, 0.6
    elif technique == "spoken":
        syllable = rng.uniform(0.15, 0.3)
        position = (t % syllable) / syllable
        amplitude = np.clip(np.sin(np.pi * position) * 1.6, 0.0, 1.0) * (position < 0.8)
        phrase = t % 1.5
        midi = singer.median_midi - 3.0 + 2.0 - 3.0 * phrase / 1.5 + 0.7 * smooth_noise(rng, n, 4.0)
        syllable_vowels = rng.integers(len(VOWELS), size=int(seconds / syllable) + 1)
        vowel_table = np.array(list(VOWELS.values())) * singer.formant_scale
        formants = vowel_table[syllable_vowels[(t / syllable).astype(int)]]
    else:
        raise ValueError(f"unknown technique {technique!r}; expected one of {TECHNIQUES}")
    amplitude = amplitude * note_envelope(n, 0.05, 0.05)
    return synthesize(midi_to_hz(midi), amplitude, formants, tilt, breath, rng, jitter, shimmer)


def random_melody(rng, seconds: float, median_midi: float, legato: bool = False) -> list:
    """(onset, offset, midi) notes filling ``seconds``: clear gaps, pitch within MIDI 40-79."""
    notes, time, pitch = [], rng.uniform(0.05, 0.3), int(round(median_midi))
    while True:
        duration = rng.uniform(0.25, 0.7)
        if time + duration > seconds - 0.05:
            return notes
        pitch = int(np.clip(pitch + rng.integers(-4, 5), median_midi - 7, median_midi + 7))
        pitch = int(np.clip(pitch, 40, 79))
        notes.append((round(time, 4), round(time + duration, 4), float(pitch)))
        time += duration + (rng.uniform(0.02, 0.05) if legato else rng.uniform(0.06, 0.2))


def melody_clip(singer: Singer, notes, seconds: float, rng, vibrato_cents: float = 20.0) -> np.ndarray:
    n = int(seconds * SYNTHESIS_RATE)
    f0, amplitude = render_notes(notes, n, vibrato_cents, rng.uniform(5.0, 6.0), rng)
    formants = steady_formants(singer, singer.vowel, n) * (1.0 + 0.03 * smooth_noise(rng, n, 3.0))[:, None]
    return synthesize(f0, amplitude, formants, singer.tilt, singer.breath, rng)


F0_HOP_SECONDS = 0.01  # the F0 annotation grid of `sing` (as vocadito's and most F0 corpora's 10 ms or finer)


@dataclass(frozen=True)
class SungAudio:
    """A rendered voice and the exact F0 it was synthesised with."""

    wave: np.ndarray  # float32 mono at `SYNTHESIS_RATE` (16 kHz)
    f0_times: np.ndarray  # seconds, every `F0_HOP_SECONDS` from 0
    f0_hz: np.ndarray  # Hz of the source at those instants; 0 where no note sounds (unvoiced)


def f0_track(notes, num_samples: int, rng, vibrato=None, glide_seconds: float = 0.0, jitter: float = 0.003) -> tuple:
    """Per-sample (f0 Hz, amplitude, voiced) of (onset_s, offset_s, midi) notes, midi fractional for off-grid pitch.

    `vibrato`: per-note (depth_cents, rate_hz) pairs (default none). A note starting less than 0.1 s after the
    previous one ends glides from that note's pitch over its first `glide_seconds`. `jitter`: relative slow
    random f0 wobble. Between notes the source keeps running (silent, unvoiced) so its phase stays continuous."""
    t = np.arange(num_samples) / SYNTHESIS_RATE
    cents = np.full(num_samples, np.nan)
    amplitude = np.zeros(num_samples)
    previous = None
    for index, (onset, offset, pitch) in enumerate(notes):
        start, end = int(round(onset * SYNTHESIS_RATE)), min(int(round(offset * SYNTHESIS_RATE)), num_samples)
        if end <= start:
            continue
        note_cents = np.full(end - start, 100.0 * float(pitch))
        if previous is not None and onset - previous[0] < 0.1 and glide_seconds > 0:
            glide = min(int(glide_seconds * SYNTHESIS_RATE), end - start)
            ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(glide) / glide)  # smooth start and end
            note_cents[:glide] = 100.0 * (previous[1] + (float(pitch) - previous[1]) * ramp)
        if vibrato is not None and vibrato[index][0] > 0:
            depth, rate = vibrato[index]
            onset_ramp = np.clip((t[start:end] - onset) / 0.2, 0.0, 1.0)  # vibrato grows in over 200 ms
            note_cents += depth * onset_ramp * np.sin(2 * np.pi * rate * (t[start:end] - onset))
        cents[start:end] = note_cents
        amplitude[start:end] = note_envelope(end - start) * rng.uniform(0.7, 1.0)
        previous = (offset, float(pitch))
    voiced = ~np.isnan(cents)
    if not voiced.any():
        raise ValueError(f"no note inside the {num_samples / SYNTHESIS_RATE:g} s to sing: {list(notes)[:3]}")
    cents = np.interp(np.arange(num_samples), np.flatnonzero(voiced), cents[voiced])
    f0 = midi_to_hz(cents / 100.0) * (1.0 + jitter * smooth_noise(rng, num_samples, 40.0))
    return f0, amplitude, voiced


def sing(notes, seconds: float, *, singer: Singer | None = None, seed=0, vibrato=None, glide_seconds: float = 0.0,
         noise_bursts: bool = False, vowels=None) -> SungAudio:
    """`seconds` of `singer` (default: a mid-range voice) singing `notes` = (onset_s, offset_s, midi), midi
    fractional for cent offsets; returns the wave and its exact F0 every 10 ms (0 = unvoiced).

    `vibrato` and `glide_seconds` as in `f0_track`; `noise_bursts`: breath/consonant noise in some gaps (unvoiced
    sound the voicing decision must reject); `vowels`: one vowel (a key of `VOWELS`) per note, default the
    singer's home vowel throughout. Deterministic for a given `seed` (an int or a list of ints)."""
    rng = np.random.default_rng(seed)
    singer = singer or make_singers(3)[1]  # the middle of three: median MIDI 57 (A3)
    n = int(round(seconds * SYNTHESIS_RATE))
    f0, amplitude, voiced = f0_track(notes, n, rng, vibrato, glide_seconds)
    formants = note_formants(singer, notes, vowels, n) * (1.0 + 0.03 * smooth_noise(rng, n, 3.0))[:, None]
    wave = synthesize(f0, amplitude, formants, singer.tilt, singer.breath, rng, jitter=0.0)
    unvoiced = 0.002 * rng.standard_normal(n)  # a noise floor: gaps are not digital silence
    if noise_bursts:
        edges = np.flatnonzero(np.diff(voiced.astype(np.int8)) == 1)  # note onsets: a consonant before some
        for edge in edges[rng.random(len(edges)) < 0.5]:
            length = int(rng.uniform(0.03, 0.08) * SYNTHESIS_RATE)
            start = max(0, edge - length)
            burst = np.diff(rng.standard_normal(edge - start + 1))  # bright (differentiated) noise
            unvoiced[start:edge] += rng.uniform(0.02, 0.06) * burst * np.hanning(edge - start)
    wave = (wave + unvoiced * ~voiced).astype(np.float32)
    times = np.arange(0.0, n / SYNTHESIS_RATE, F0_HOP_SECONDS)
    at = np.minimum(np.round(times * SYNTHESIS_RATE).astype(int), n - 1)
    return SungAudio(wave, times.astype(np.float32), np.where(voiced[at], f0[at], 0.0).astype(np.float32))


def pitch_melody(rng, seconds: float, median_midi: float, cent_spread: float = 50.0) -> tuple:
    """(notes, vibrato, vowels) of a pitch-corpus song: legato runs (gaps 20-60 ms, glided into) and phrases separated by
    unvoiced gaps of 0.1-0.5 s; pitches a random walk around `median_midi`, each off the grid by up to
    +-`cent_spread` cents; vibrato (30-80 cents, 4.5-6.5 Hz) on about a third of the notes; a random vowel per note."""
    notes, time, pitch = [], rng.uniform(0.05, 0.3), int(round(median_midi))
    while True:
        duration = rng.uniform(0.2, 0.8)
        if time + duration > seconds - 0.05:
            break
        pitch = int(np.clip(pitch + rng.integers(-4, 5), median_midi - 8, median_midi + 8))
        offset_cents = rng.uniform(-cent_spread, cent_spread)
        notes.append((round(time, 4), round(time + duration, 4), pitch + offset_cents / 100.0))
        time += duration + (rng.uniform(0.02, 0.06) if rng.random() < 0.6 else rng.uniform(0.1, 0.5))
    vibrato = [(rng.uniform(30.0, 80.0), rng.uniform(4.5, 6.5)) if rng.random() < 0.35 else (0.0, 0.0) for _ in notes]
    vowels = [list(VOWELS)[i] for i in rng.integers(len(VOWELS), size=len(notes))]
    return notes, vibrato, vowels


# Consonant-vowel words sung one syllable per note (the `lyrics` task): seven letters that sound clearly apart (a
# lateral, a nasal, a hiss and a burst before three vowels far apart in F1/F2), so that a tiny model learns to hear the
# words in a CPU minute. Consonants: (seconds, voiced formants or None, noise band in Hz or None, closure seconds).
LEXICON = ("LA", "MI", "SO", "TA", "LIMO", "SATI", "MOLA", "TOSI", "MASO", "LITA")
CONSONANTS = {
    "L": (0.06, (360.0, 1300.0, 2700.0), None, 0.0),
    "M": (0.07, (250.0, 1000.0, 2200.0), None, 0.0),
    "S": (0.10, None, (4000.0, 7900.0), 0.0),
    "T": (0.05, None, (2500.0, 7900.0), 0.03),
}
MURMUR_GAIN = {"L": 0.5, "M": 0.3}


def syllables(word: str) -> list:
    """A `LEXICON` word's consonant-vowel syllables: "LIMO" -> ["LI", "MO"]."""
    return [word[i : i + 2] for i in range(0, len(word), 2)]


def lyrics_line(rng, seconds: float, median_midi: float, margin: float = 0.15) -> tuple:
    """(notes, words) of one sung line inside [margin, seconds - margin]: `LEXICON` words, one syllable per note
    (0.25-0.4 s, legato within a word), rests of 0.1-0.25 s between words, pitch a random walk around
    `median_midi`; words as (word, start_s, end_s)."""
    notes, words, time, pitch = [], [], margin + rng.uniform(0.0, 0.2), int(round(median_midi))
    while True:
        word = LEXICON[rng.integers(len(LEXICON))]
        durations = rng.uniform(0.25, 0.4, size=len(syllables(word)))
        if time + durations.sum() > seconds - margin:
            return notes, words
        start = time
        for duration in durations:
            pitch = int(np.clip(pitch + rng.integers(-3, 4), median_midi - 6, median_midi + 6))
            notes.append((round(time, 4), round(time + duration, 4), float(pitch)))
            time += duration
        words.append((word, round(start, 4), round(time, 4)))
        time += rng.uniform(0.1, 0.25)


def sing_syllables(notes, syllable_names, seconds: float, singer: Singer, rng) -> np.ndarray:
    """`singer` singing one consonant-vowel syllable per note (`syllable_names`, e.g. "LU"): the consonant at the
    note's start (a voiced murmur, or noise in a closure / release), the vowel held to the note's end."""
    n = int(round(seconds * SYNTHESIS_RATE))
    f0, amplitude, voiced = f0_track(notes, n, rng, vibrato=[(15.0, rng.uniform(5.0, 6.0))] * len(notes))
    formants = np.tile(np.array(VOWELS["a"]) * singer.formant_scale, (n, 1))
    noise_parts = []
    for (onset, offset, _), name in zip(notes, syllable_names):
        consonant, vowel = name[0], name[1].lower()
        start, end = int(round(onset * SYNTHESIS_RATE)), min(int(round(offset * SYNTHESIS_RATE)), n)
        length, murmur, band, closure = CONSONANTS[consonant]
        split = min(end, start + int(round((length + closure) * SYNTHESIS_RATE)))
        formants[start:end] = np.array(VOWELS[vowel]) * singer.formant_scale
        if murmur is not None:
            formants[start:split] = np.array(murmur) * singer.formant_scale
            amplitude[start:split] *= MURMUR_GAIN[consonant]
        else:
            amplitude[start:split] = 0.0
            noise_parts.append((start + int(round(closure * SYNTHESIS_RATE)), split, band))
    width = int(0.02 * SYNTHESIS_RATE)  # 20 ms formant transitions
    kernel = np.ones(width) / width
    padded = np.pad(formants, ((width // 2, width - width // 2 - 1), (0, 0)), mode="edge")
    formants = np.stack([np.convolve(padded[:, j], kernel, mode="valid") for j in range(3)], axis=1)
    wave = synthesize(f0, amplitude, formants, singer.tilt, singer.breath, rng, jitter=0.0)
    for start, end, (low, high) in noise_parts:
        if end <= start:
            continue
        spectrum = np.fft.rfft(rng.standard_normal(end - start))
        freqs = np.fft.rfftfreq(end - start, 1.0 / SYNTHESIS_RATE)
        burst = np.fft.irfft(spectrum * ((freqs >= low) & (freqs <= high)), end - start)
        wave[start:end] += (0.25 * burst / (np.abs(burst).max() + 1e-9) * np.hanning(end - start)).astype(np.float32)
    wave += (0.002 * rng.standard_normal(n)).astype(np.float32)  # a noise floor: rests are not digital silence
    return wave


def technique_split(singer_index: int, num_singers: int) -> str:
    num_test = max(1, round(num_singers / 4))
    if singer_index >= num_singers - num_test:
        return "test"
    return "validation" if singer_index == num_singers - num_test - 1 else "train"


def recording_split(recording_index: int, recordings_per_singer: int) -> str:
    return {recordings_per_singer - 1: "test", recordings_per_singer - 2: "validation"}.get(recording_index, "train")


def song_split(song_index: int, num_songs: int) -> str:
    num_test, num_validation = max(1, round(num_songs / 5)), max(1, round(num_songs / 10))
    if song_index >= num_songs - num_test:
        return "test"
    return "validation" if song_index >= num_songs - num_test - num_validation else "train"


@dataclass
class SyntheticConfig(datasets.BuilderConfig):
    """Sizes of the synthetic corpus; ``None`` means the task's default (module docstring)."""

    task: str = DEFAULT_TASK
    seed: int = 0
    num_singers: int | None = None  # default: the task's `SyntheticTask.num_singers`
    clips_per_class: int = 1  # technique
    recordings_per_singer: int = 4  # singer_id
    clip_seconds: float | None = None  # default: the task's `SyntheticTask.clip_seconds`
    num_songs: int = 10  # transcription, pitch
    song_seconds: float = 20.0  # transcription, pitch
    cent_spread: float = 50.0  # pitch: notes are off the semitone grid by up to +- this many cents (50: any pitch)
    techniques: tuple = TECHNIQUES
    validation: str = "ours"  # "none": the validation singers/recordings/songs go to train

    def __post_init__(self):
        super().__post_init__()
        sizes = get_task(self.task).hook("synthetic")  # an unknown task: one line listing the known ones
        unknown = set(self.techniques) - set(TECHNIQUES)
        if unknown:
            raise ValueError(f"unknown synthetic techniques {sorted(unknown)}; expected among {TECHNIQUES}")
        self.techniques = tuple(self.techniques)
        if self.num_singers is None:
            self.num_singers = sizes.num_singers
        if self.clip_seconds is None:
            self.clip_seconds = sizes.clip_seconds
        option, smallest = sizes.minimum
        if getattr(self, option) < smallest:
            raise ValueError(f"synthetic {self.task} needs {option} >= {smallest}, got {getattr(self, option)}")


class Synthetic(CorpusBuilder):
    """Synthetic singing for every task (its `synthetic` hook, a `SyntheticTask`), through the same chunking code as
    the real corpora."""

    BUILDER_CONFIG_CLASS = SyntheticConfig

    @property
    def task(self) -> str:
        return self.config.task

    @property
    def synthetic_task(self) -> "SyntheticTask":
        return get_task(self.task).hook("synthetic")

    @property
    def chunk_seconds(self) -> float:
        return self.synthetic_task.chunk_seconds

    @property
    def label_names(self) -> list:
        return self.synthetic_task.label_names(self.config)

    def _info(self):
        features = self.synthetic_task.features(self)
        return datasets.DatasetInfo(description="SVU synthetic singing corpus", features=features)

    def _split_generators(self, dl_manager):
        return [datasets.SplitGenerator(name=split, gen_kwargs={"split": split}) for split in ("train", "validation", "test")]

    def _generate_examples(self, split):
        yield from self.synthetic_task.generate(self, split)

    def _technique(self, split):
        config = self.config
        singers = make_singers(config.num_singers, config.seed)
        clips = [
            (s, singer, technique, clip)
            for s, singer in enumerate(singers) if self.assign(technique_split(s, len(singers))) == split
            for technique in config.techniques
            for clip in range(config.clips_per_class)
        ]
        jobs = [(singer, technique, config.clip_seconds, [config.seed, 1, s, TECHNIQUES.index(technique), clip])
                for s, singer, technique, clip in clips]
        for (s, singer, technique, clip), wave in zip(clips, ordered_map(_technique_wave, jobs, self.num_proc)):
            self.report.files_found += 1
            clip_id = f"{singer.name}/{technique}/{clip}"
            for example in classification_examples(
                wave, clip_id=clip_id, label=technique, singer=singer.name,
                chunk_seconds=self.chunk_seconds, report=self.report,
            ):
                yield f"{clip_id}#{example['chunk_index']}", example

    def _singer_id(self, split):
        config = self.config
        recordings = [
            (s, singer, recording)
            for s, singer in enumerate(make_singers(config.num_singers, config.seed))
            for recording in range(config.recordings_per_singer)
            if self.assign(recording_split(recording, config.recordings_per_singer)) == split
        ]
        jobs = [(singer, config.clip_seconds, [config.seed, 2, s, recording]) for s, singer, recording in recordings]
        for (s, singer, recording), wave in zip(recordings, ordered_map(_recording_wave, jobs, self.num_proc)):
            self.report.files_found += 1
            clip_id = f"{singer.name}/recording{recording}"
            for example in classification_examples(
                wave, clip_id=clip_id, label=singer.name, singer=singer.name,
                chunk_seconds=self.chunk_seconds, report=self.report, rms_threshold=0.01,
            ):
                yield f"{clip_id}#{example['chunk_index']}", example

    def _song_results(self, split, stream: int, make, *options):
        """``(song_id, singer, result)`` of each song of `split` in order: `make` run (on `num_proc` processes) on
        ``(singer, song_seconds, *options, seed)``, the seed ``[seed, stream, song]``."""
        config = self.config
        singers = make_singers(config.num_singers, config.seed)
        songs = [song for song in range(config.num_songs) if self.assign(song_split(song, config.num_songs)) == split]
        jobs = [(singers[song % len(singers)], config.song_seconds, *options, [config.seed, stream, song])
                for song in songs]
        for song, result in zip(songs, ordered_map(make, jobs, self.num_proc)):
            self.report.files_found += 1
            self.report.files_used += 1
            yield f"song{song:03d}", singers[song % len(singers)].name, result

    def _transcription(self, split):
        for song_id, _, (notes, wave) in self._song_results(split, 3, _song):
            for index, example in enumerate(self.transcription_song(wave, notes, song_id)):
                yield f"{song_id}#{index}", example

    def _pitch(self, split):
        for song_id, singer, sung in self._song_results(split, 4, _pitch_song, self.config.cent_spread):
            for index, example in enumerate(self.pitch_song(sung.wave, sung.f0_times, sung.f0_hz, song_id, singer)):
                yield f"{song_id}#{index}", example

    def _lyrics(self, split):
        for song_id, singer, lines in self._song_results(split, 5, _lyrics_song, self.chunk_seconds):
            self.songs[song_id] = {"seconds": len(lines) * self.chunk_seconds,
                                   "text": " ".join(" ".join(w[0] for w in words) for _, words in lines)}
            for index, (wave, words) in enumerate(lines):
                example = {
                    "audio": audio_cell(wave, f"{song_id}#{index}.wav"),
                    "text": " ".join(word for word, _, _ in words),
                    "words": [{"word": word, "start": start, "end": end} for word, start, end in words],
                    "song_id": song_id,
                    "singer": singer,
                    "chunk_start": index * self.chunk_seconds,
                }
                yield f"{song_id}#{index}", example


def stored(wave: np.ndarray) -> np.ndarray:
    """A synthesised wave at the rate prepared datasets are stored at."""
    return resample(wave, SYNTHESIS_RATE, STORED_RATE)


# Synthesis of one file from its seed: module-level, so `ordered_map` can run them in worker processes.
def _technique_wave(job):
    singer, technique, seconds, seed = job
    return stored(technique_clip(singer, technique, seconds, np.random.default_rng(seed)))


def _recording_wave(job):
    singer, seconds, seed = job
    rng = np.random.default_rng(seed)
    notes = random_melody(rng, seconds, singer.median_midi, legato=True)
    return stored(melody_clip(singer, notes, seconds, rng, vibrato_cents=rng.choice([10.0, 70.0])))


def _song(job):
    singer, seconds, seed = job
    rng = np.random.default_rng(seed)
    notes = random_melody(rng, seconds, singer.median_midi)
    return notes, stored(melody_clip(singer, notes, seconds, rng))


def _pitch_song(job):
    singer, seconds, cent_spread, seed = job
    rng = np.random.default_rng(seed)
    notes, vibrato, vowels = pitch_melody(rng, seconds, singer.median_midi, cent_spread)
    sung = sing(notes, seconds, singer=singer, seed=[*seed, 1], vibrato=vibrato, glide_seconds=0.08, noise_bursts=True,
                vowels=vowels)
    return dataclasses.replace(sung, wave=stored(sung.wave))


def _lyrics_song(job):
    """The lines of a lyrics song: [(wave of one chunk at the stored rate, [(word, start_s, end_s)])]."""
    singer, seconds, line_seconds, seed = job
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(max(1, int(seconds // line_seconds))):
        notes, words = lyrics_line(rng, line_seconds, singer.median_midi)
        names = [syllable for word, _, _ in words for syllable in syllables(word)]
        lines.append((stored(sing_syllables(notes, names, line_seconds, singer, rng)), words))
    return lines


@dataclass(frozen=True)
class SyntheticTask:
    """How the synthetic corpus makes the data of one task (`modeling_svu.tasks`)."""

    chunk_seconds: float
    num_singers: int  # default of `SyntheticConfig.num_singers`
    clip_seconds: float  # default of `SyntheticConfig.clip_seconds`
    minimum: tuple  # (size option, smallest value that still fills the three splits)
    label_names: Callable[[SyntheticConfig], list]
    features: Callable[[Synthetic], datasets.Features]
    generate: Callable  # (builder, split) -> (key, example) pairs


def _classification_features(builder: Synthetic) -> datasets.Features:
    return classification_features(builder.label_names)


# the `synthetic` hooks of the tasks (`modeling_svu.tasks`)
TECHNIQUE = SyntheticTask(
    chunk_seconds=3.0, num_singers=8, clip_seconds=6.0, minimum=("num_singers", 3),
    label_names=lambda config: list(config.techniques),
    features=_classification_features, generate=Synthetic._technique,
)
SINGER_ID = SyntheticTask(
    chunk_seconds=5.0, num_singers=6, clip_seconds=10.0, minimum=("recordings_per_singer", 3),
    label_names=lambda config: [singer.name for singer in make_singers(config.num_singers, config.seed)],
    features=_classification_features, generate=Synthetic._singer_id,
)
TRANSCRIPTION = SyntheticTask(
    chunk_seconds=5.0, num_singers=4, clip_seconds=0.0, minimum=("num_songs", 3),
    label_names=lambda config: [],
    features=lambda builder: transcription_features(), generate=Synthetic._transcription,
)
PITCH = SyntheticTask(
    chunk_seconds=5.0, num_singers=8, clip_seconds=0.0, minimum=("num_songs", 3),
    label_names=lambda config: [],
    features=lambda builder: pitch_features(), generate=Synthetic._pitch,
)
LYRICS = SyntheticTask(
    chunk_seconds=3.0, num_singers=6, clip_seconds=0.0, minimum=("num_songs", 3),
    label_names=lambda config: [],
    features=lambda builder: lyrics_features(), generate=Synthetic._lyrics,
)

CORPUS = Corpus(
    name="synthetic",
    builder=Synthetic,
    tasks=TASK_NAMES,  # every task's entry names its synthetic generator (`synthetic` hook)
    title="SVU synthetic singing corpus",
    homepage="dataset_scripts/synthetic.py in the SVU repository",
    licence="apache-2.0",
    licence_note="Generated by SVU's `dataset_scripts/synthetic.py` (Apache-2.0, like the SVU code).",
    bibtex="",
    splits="synthetic singers/songs, disjoint between splits",
    preprocessing="synthesised at 16 kHz (harmonics up to 6 kHz), stored at 24 kHz, {chunk:g} s chunks",
    generated=True,
    separation_note=isolated_vocals,
    card_name="SVU synthetic ({task})",
    option_help="num_singers=4, clip_seconds=3",
)
