"""What the lyrics corpora (DSing, JamendoLyrics, DALI, Jam-ALT) share: a song as its audio and its sung lines, and a
builder that decodes each song once and cuts it into line-level chunks (`common.lyrics_examples`).

A builder lists its songs per split (`LyricsCorpus.listed_songs`: ``(split, LyricsSong)`` pairs), counting and naming
in the report whatever its layout lacks (a missing audio file, an unreadable annotation); an audio file that does
not decode is counted and named while decoding, as for every corpus (`CorpusBuilder.decoded`).
"""

from dataclasses import dataclass

import datasets

from .common import SPLITS, CorpusBuilder, lyrics_features


@dataclass(frozen=True)
class LyricsSong:
    song_id: str
    audio: object  # its audio file (a path), or the encoded bytes of a Hub row
    lines: tuple  # `common.LyricsLine`s, times in the song
    singer: str = ""


class LyricsCorpus(CorpusBuilder):
    """A lyrics corpus: songs -> line-level chunks with their words."""

    task = "lyrics"
    label_names = []
    DESCRIPTION = "sung lyrics"

    def listed_songs(self) -> list:
        """``(split, LyricsSong)`` of every usable song of the corpus (subclasses)."""
        raise NotImplementedError

    def _info(self):
        return datasets.DatasetInfo(description=self.DESCRIPTION, features=lyrics_features())

    def _split_generators(self, dl_manager):
        by_split = {split: [] for split in SPLITS}
        for split, song in self.listed_songs():
            by_split[self.assign(split)].append(song)
        return [datasets.SplitGenerator(name=split, gen_kwargs={"songs": by_split[split]}) for split in SPLITS]

    def _generate_examples(self, songs):
        for song, wave in self.decoded(songs, lambda s: s.audio, lambda s: s.song_id):
            self.report.files_used += 1
            for index, example in enumerate(self.lyrics_song(wave, song.lines, song.song_id, song.singer)):
                yield f"{song.song_id}#{index}", example


def count_found(report, found: int, listed: int, what: str) -> None:
    """The report's summary line of how many listed songs have their audio (a clone often lacks it)."""
    report.messages.append(f"{found} of {listed} {what} have an audio file")
