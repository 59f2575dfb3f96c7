"""A fresh clone runs the suite on its own: no file of the repository reaches for a folder outside it, and
every third-party data folder in tests/data says where it came from. (.ci/run runs the suite in a fresh
`git clone` with no sibling folders at all.)"""

import re
from pathlib import Path

from data_fixtures import TEST_DATA

REPO = Path(__file__).resolve().parents[1]
CHECKED = ("tests", "modeling_svu", "dataset_scripts", "svu", "train", "model_cards", "benchmarks", "scripts", ".ci")
TEXT_SUFFIXES = {".py", ".sh", ".yaml", ".yml", ".toml", ".cfg", ".ini", ""}
# A sibling `shared/` folder named in any form, an absolute path to our machines' work folders, or a path
# climbing out of the repository from a test file (parents[2] of tests/x.py is the repository's parent).
OUTSIDE = re.compile(r"""\.\./+shared|["']shared["']\s*[/)]|/work/|parents\[[2-9]\]""")


def test_no_file_refers_to_a_folder_outside_the_repository():
    offenders = []
    for top in CHECKED:
        for path in sorted((REPO / top).rglob("*")):
            if path.is_dir() or path.suffix not in TEXT_SUFFIXES or path == Path(__file__).resolve():
                continue
            if "__pycache__" in path.parts or TEST_DATA in path.parents:
                continue
            for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                if OUTSIDE.search(line):
                    offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offenders, "files that read outside the repository:\n" + "\n".join(offenders)


def test_the_pattern_catches_the_old_references():
    """The guard can fail: each way the suite used to reach the sibling folder is caught."""
    old = [
        'DATA = Path(__file__).resolve().parents[2] / "shared" / "data"',
        'REAL_FORMAT = Path("/work/shared/data/mir_st500/val_1005_55_icassp_ver.json")',
        'open("../shared/data/x.json")',
        "Path('shared') / 'data'",
    ]
    assert all(OUTSIDE.search(line) for line in old)
    assert not OUTSIDE.search("REAL_FORMAT = TEST_DATA / 'mir_st500' / 'val_1005_55_icassp_ver.json'")
    assert not OUTSIDE.search('"""Preprocessing shared by every corpus"""')


def test_every_data_folder_has_its_provenance():
    folders = [path for path in TEST_DATA.iterdir() if path.is_dir()]
    assert {path.name for path in folders} >= {"mir_eval_transcription", "mir_st500", "singing_examples"}
    for folder in folders:
        provenance = (folder / "PROVENANCE.md").read_text()
        assert "Licence" in provenance and re.search(r"\b[0-9a-f]{40}\b", provenance), folder  # licence + commit
    total = sum(path.stat().st_size for path in TEST_DATA.rglob("*") if path.is_file())
    assert total < 5e6, f"tests/data holds {total / 1e6:.1f} MB; keep it to a few MB"
