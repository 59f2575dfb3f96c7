"""Regenerate ``manifests/artist20_paper.json``, the paper's 4/1/1 album split of Artist20.

The official lists (``a20-{trn,val,tst}-tracks.list``) split each artist's 6 albums 3/1/2. The
paper uses 4/1/1 but published no list, so the rule (ours) is fixed and deterministic:

* the official **validation** album stays validation;
* of the two official **test** albums, the first in sorted (byte-wise) name order stays test,
  the second moves to train;
* the three official **train** albums stay train.

Usage::

    python -m dataset_scripts.make_artist20_manifest --data-dir /data/artist20 [--output path]
"""

import argparse
import json
from collections import defaultdict
from pathlib import Path

from .artist20 import MANIFEST, read_official_lists

RULE = (
    "derived from the official a20-{trn,val,tst}-tracks.list: official val album -> validation; "
    "official tst albums sorted, first -> test, second -> train; official trn albums -> train"
)


def paper_manifest(official_tracks: dict) -> dict:
    """``{"rule", "albums": {artist: {album: split}}}`` from ``{artist/album/track: split}``."""
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="Artist20 root holding lists/a20-*-tracks.list")
    parser.add_argument("--output", default=str(MANIFEST))
    args = parser.parse_args(argv)
    manifest = paper_manifest(read_official_lists(args.data_dir))
    Path(args.output).write_text(json.dumps(manifest, indent=2) + "\n")
    counts = {a: sorted(m.values()).count("train") for a, m in manifest["albums"].items()}
    print(f"wrote {args.output}: {len(counts)} artists, train albums per artist: {sorted(set(counts.values()))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
