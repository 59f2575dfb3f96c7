"""Word and character error rates of lyrics transcripts (`jiwer`), after the normalisation of the Jam-ALT /
JamendoLyrics lyrics-transcription benchmarks.

Load by path (offline): `evaluate.load("train/metrics/lyrics/lyrics.py")`.

    metric.compute(predictions=["la mi so", ...], references=["La, mi... so!", ...], song_ids=["a", "a", "b"])

Normalisation (`normalize`, applied to both sides; as Jam-ALT scores WER/CER, case and punctuation insensitive):
1. Unicode NFKC; typographic apostrophes and single quotes (’ ‘ ʼ ` ´) become ASCII `'`;
2. lower case;
3. numbers written with digits become English words ("2" -> "two", "1999" -> "one thousand nine hundred ninety
   nine", "3.5" -> "three point five"; the benchmark references spell numbers out);
4. hyphens, dashes and slashes separate words ("rock-n-roll" -> "rock n roll");
5. every other character that is not a letter, a digit or an apostrophe is removed (punctuation, brackets of
   backing vocals, quotes); an apostrophe is kept only next to a letter ("don't", "'cause", "singin'");
6. white space collapsed to single spaces.

Segments (chunks or whole songs) with the same `song_ids` value are joined in order into one song. `wer` / `cer`
are corpus-level (all errors over all reference words / characters of the songs, as jiwer computes them over a
list); `per_song` holds each song's own rates.
"""

import re
import unicodedata

import datasets
import evaluate
import jiwer

_DESCRIPTION = "WER and CER (jiwer) of lyrics transcripts after Jam-ALT-style normalisation (case, punctuation, apostrophes, numbers)."
_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `str`): transcripts, one per segment.
    references (`list` of `str`): reference lyrics, one per segment.
    song_ids (`list` of `str`, *optional*): the song of each segment (default: each segment its own song).
    normalize (`bool`, *optional*, defaults to True): apply `normalize` to both sides first.
Returns:
    wer, cer (corpus-level over the songs), neg_wer, neg_cer (their negatives: higher is better, for picking an
    epoch), num_songs, num_reference_words, num_reference_chars, per_song (song_id, wer, cer, words).
"""

APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "ʼ": "'", "`": "'", "´": "'"})
ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
        "seventeen eighteen nineteen").split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_words(number: int) -> str:
    """English words of a non-negative integer (below 10^12)."""
    if number < 20:
        return ONES[number]
    if number < 100:
        return TENS[number // 10] + ("" if number % 10 == 0 else " " + ONES[number % 10])
    for size, name in ((10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred")):
        if number >= size:
            head, rest = divmod(number, size)
            return number_words(head) + " " + name + ("" if rest == 0 else " " + number_words(rest))
    raise AssertionError(number)


def _spell(match) -> str:
    whole, _, fraction = match.group(0).replace(",", "").partition(".")
    words = number_words(int(whole)) if len(whole) <= 12 else " ".join(ONES[int(d)] for d in whole)
    if fraction:
        words += " point " + " ".join(ONES[int(d)] for d in fraction)
    return f" {words} "


def normalize(text: str) -> str:
    """The benchmark normalisation of one transcript (module docstring)."""
    text = unicodedata.normalize("NFKC", text).translate(APOSTROPHES).lower()
    text = re.sub(r"\d+(?:,\d{3})*(?:\.\d+)?", _spell, text)
    text = re.sub(r"[-‐‑‒–—―/]", " ", text)
    text = "".join(ch if ch.isalnum() or ch == "'" or ch.isspace() else " " if unicodedata.category(ch) == "Zs" else ""
                   for ch in text)  # fmt: skip
    text = re.sub(r"(?<![^\W\d_])'(?![^\W\d_])", " ", text)  # an apostrophe with no letter on either side
    return " ".join(text.split())


def rates(hypotheses: list, references: list) -> tuple:
    """(wer, cer, reference words, reference characters) of aligned transcript lists; empty references count
    every hypothesis word / character as an insertion over nothing (rate = insertions, or 0 when both are empty)."""
    words = sum(len(r.split()) for r in references)
    chars = sum(len(r) for r in references)
    pairs = [(r, h) for r, h in zip(references, hypotheses) if r]
    inserted_words = sum(len(h.split()) for r, h in zip(references, hypotheses) if not r)
    inserted_chars = sum(len(h) for r, h in zip(references, hypotheses) if not r)
    word_errors = char_errors = 0
    if pairs:
        refs, hyps = [r for r, _ in pairs], [h for _, h in pairs]
        out = jiwer.process_words(refs, hyps)
        word_errors = out.substitutions + out.deletions + out.insertions
        out = jiwer.process_characters(refs, hyps)
        char_errors = out.substitutions + out.deletions + out.insertions
    word_errors, char_errors = word_errors + inserted_words, char_errors + inserted_chars
    wer = word_errors / words if words else float(word_errors > 0)
    cer = char_errors / chars if chars else float(char_errors > 0)
    return wer, cer, words, chars


class Lyrics(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
        )

    def _compute(self, predictions, references, song_ids=None, normalize=True):
        if song_ids is None:
            song_ids = [str(i) for i in range(len(references))]
        if len(song_ids) != len(references):
            raise ValueError(f"song_ids has {len(song_ids)} entries for {len(references)} segments.")
        clean = globals()["normalize"] if normalize else (lambda text: " ".join(text.split()))
        songs = {}
        for song, hypothesis, reference in zip(song_ids, predictions, references):
            parts = songs.setdefault(song, ([], []))
            parts[0].append(clean(hypothesis))
            parts[1].append(clean(reference))
        hypotheses = [" ".join(p for p in hyp if p) for hyp, _ in songs.values()]
        references = [" ".join(p for p in ref if p) for _, ref in songs.values()]
        wer, cer, words, chars = rates(hypotheses, references)
        per_song = []
        for song, hypothesis, reference in zip(songs, hypotheses, references):
            song_wer, song_cer, song_words, _ = rates([hypothesis], [reference])
            per_song.append({"song_id": song, "wer": song_wer, "cer": song_cer, "words": song_words})
        return {"wer": wer, "cer": cer, "neg_wer": -wer, "neg_cer": -cer, "num_songs": len(songs),
                "num_reference_words": words, "num_reference_chars": chars, "per_song": per_song}  # fmt: skip
