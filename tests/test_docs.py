"""The documentation cites only what the repository holds: every relative link (and its `#anchor`), every
repository path (`train/run.py`, `docs/figures/x.png`, `train/configs/<task>_<family>.yaml`) and every `*.md`
file named in README.md, docs/*.md and the comments of train/configs/*.yaml exists here, and none of them
reaches for a folder outside the repository. README.md stays a newcomer's page (at most 150 lines) and keeps
its two commands, (a) the demo training and (b) the test suite, word for word (`.ci/run` runs (b))."""

import fnmatch
import re
from pathlib import Path

import pytest

from test_self_contained import OUTSIDE as CODE_OUTSIDE

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
CONFIGS = sorted((REPO / "train" / "configs").glob("*.yaml"))
MAX_README_LINES = 150
COMMANDS = """```bash
# (a) set up a fresh CPU machine and run the main job: fine-tune a tiny backbone on the synthetic corpus (~1 min)
bash scripts/setup.sh && accelerate launch --cpu train/run.py
# (b) set up and run the full test suite
bash scripts/test.sh
```"""

# The repository's top-level folders: a path starting with one of them is a citation of a repository file.
TOP = ("modeling_svu", "dataset_scripts", "train", "model_cards", "svu", "space", "docs", "tests", "scripts",
       "benchmarks", ".ci")
PATH = re.compile(r"(?<![\w./~-])((?:%s)/[\w./<>*{},-]*)" % "|".join(re.escape(top) for top in TOP))
MD_NAME = re.compile(r"(?<![\w./-])([\w-]+\.md)\b")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
CODE_SPAN = re.compile(r"`([^`\n]+)`")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)
# What the code may not name (test_self_contained: a sibling shared folder, our machines' work folders), and, in
# prose, a bare `shared/` or `seed/` folder.
OUTSIDE = re.compile(CODE_OUTSIDE.pattern + r"|(?<![\w-])shared/|(?<![\w-])seed/")


def expand(pattern: str) -> list[str]:
    """`a/{b,c}_<x>.yaml` -> the globs `a/b_*.yaml`, `a/c_*.yaml`."""
    match = re.search(r"\{([^{}]*)\}", pattern)
    if match:
        return [glob for choice in match.group(1).split(",")
                for glob in expand(pattern[:match.start()] + choice + pattern[match.end():])]
    return [re.sub(r"<[^<>]*>", "*", pattern)]


def exists(pattern: str) -> bool:
    pattern = pattern.rstrip("/")
    for glob in expand(pattern):
        if any(char in glob for char in "*?["):
            parent = REPO / glob.split("*")[0].rsplit("/", 1)[0]
            if any(fnmatch.fnmatch(str(path.relative_to(REPO)), glob) for path in parent.rglob("*")):
                continue
            return False
        if not (REPO / glob).exists():
            return False
    return True


def slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    text = heading.strip().lower().replace("`", "")
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text())
    return {slug(line.lstrip("#")) for line in text.splitlines() if re.match(r"#{1,6} ", line)}


MD_NAMES = {path.name for path in REPO.rglob("*.md") if ".git" not in path.parts}


def cited_paths(text: str, markdown: bool) -> set[str]:
    """Repository paths in code spans and code blocks (markdown) or anywhere (a config's comments)."""
    if not markdown:
        return {match.rstrip(".,;:") for match in PATH.findall(text)}
    found = set()
    for block in FENCE.findall(text) + CODE_SPAN.findall(FENCE.sub("", text)):
        found |= {match.rstrip(".,;:") for match in PATH.findall(block)}
    return found


def problems(text: str, source: Path, markdown: bool = True) -> list[str]:
    """Every citation in `text` (the contents of `source`) that the repository does not hold."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        if OUTSIDE.search(line):
            found.append(f"line {number} reaches outside the repository: {line.strip()}")
    found += [f"{path}: no such file in the repository" for path in sorted(cited_paths(text, markdown))
              if not exists(path)]
    found += [f"{name}: no file of that name in the repository" for name in sorted(set(MD_NAME.findall(text)))
              if name not in MD_NAMES]
    for target in LINK.findall(text) if markdown else ():
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (source.parent / path).resolve() if path else source
        if not file.is_relative_to(REPO) or not file.exists():
            found.append(f"link {target}: no such file in the repository")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            found.append(f"link {target}: {file.name} has no heading #{anchor}")
    return found


@pytest.mark.parametrize("path", [README, *DOCS], ids=lambda path: str(path.relative_to(REPO)))
def test_every_file_and_link_a_document_cites_is_in_the_repository(path):
    found = problems(path.read_text(), path)
    assert not found, "\n".join(found)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda path: path.stem)
def test_every_file_a_config_cites_is_in_the_repository(path):
    comments = "\n".join(line.partition("#")[2] for line in path.read_text().splitlines() if "#" in line)
    found = problems(comments, path, markdown=False)
    assert not found, "\n".join(found)


def test_the_reference_pages_exist():
    assert {"protocol.md", "reliability.md", "training.md", "models.md", "data.md", "cli.md"} <= {
        path.name for path in DOCS}


def test_readme_is_short_and_keeps_its_two_commands():
    text = README.read_text()
    assert len(text.splitlines()) <= MAX_README_LINES, f"README.md has {len(text.splitlines())} lines"
    assert COMMANDS in text
    for doc in DOCS:  # the README links every reference page
        assert f"](docs/{doc.name})" in text, doc.name
    assert "README command (b)" in (REPO / ".ci" / "run").read_text()
    assert "bash scripts/test.sh" in (REPO / ".ci" / "run").read_text()


def test_the_checks_can_fail():
    """Citations the old README and configs made, and broken links, are each caught."""
    old = {
        "The paper's numbers (PROTOCOL.md) next to ours.": "PROTOCOL.md",
        "slides in\n`seed/apsipa2023_slides.txt`; the facts below": "outside",
        "see `shared/PROTOCOL.md`": "outside",
        "the [protocol](docs/nope.md)": "docs/nope.md",
        "[On the Hub](docs/models.md#no-such-heading)": "no heading",
        "`train/configs/<task>_nope.yaml` and `modeling_svu/nope.py`": "nope",
        "```bash\naccelerate launch train/run.py --config train/configs/nope.yaml\n```": "nope.yaml",
        "![figure](docs/figures/nope.png)": "nope.png",
    }
    for text, expected in old.items():
        found = problems(text, README)
        assert found and expected in " ".join(found), (text, found)
    assert problems(" PROTOCOL.md task 1: 30 epochs", CONFIGS[0], markdown=False)
    assert not problems("`train/configs/{technique,singer_id}_{wavlm,mert}.yaml`, `train/configs/<task>_<family>.yaml`, "
                        "[x](docs/cli.md#svu-export), train/val/test albums, https://huggingface.co/x/y", README)
