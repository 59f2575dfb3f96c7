"""Write ``manifests/artist20_paper.json``, the paper's 4/1/1 album split of Artist20, from the official lists.

Not needed to prepare the corpus: ``svu data prepare artist20`` applies the same rule on the fly when the
official lists are under the corpus root. This freezes the result as a file (e.g. to publish it).

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
from pathlib import Path

from .artist20 import MANIFEST, paper_manifest, read_official_lists


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
