"""A corpus is one entry: its module of this package declares ``CORPUS = Corpus(...)`` next to its builder.

    CORPUS = Corpus(
        name="vocalset", builder=VocalSet, tasks=("technique",), title="VocalSet",
        homepage="https://zenodo.org/record/1193957", licence="cc-by-4.0", licence_note="...", bibtex=BIBTEX,
        splits="singers: test female2, ...", preprocessing="resampled 44.1 -> 24 kHz mono, ... {chunk:g} s chunks",
        separation_note=isolated_vocals,
    )

`corpora()` collects the entries of every module that declares one, and everything else reads them:
`svu data prepare <name>` (its choices and help, `prepare`'s dispatch), the dataset card (licence, source,
citation, preprocessing, whether a public upload is refused) and the model card (licence note, citation, default
splits, the vocal separation of a prepared folder). No other module names a corpus (`tests/test_corpora.py`).
"""

import importlib
import re
from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path
from typing import Callable, Optional

from svu.modeling_svu.tasks import get_task

# a module declares a corpus with a top-level `CORPUS = ...`; only those modules are imported to collect them
DECLARES = re.compile(r"^CORPUS\s*[:=]", re.M)
ISOLATED_VOCALS = "none needed (isolated vocals)"


def isolated_vocals(options: dict) -> str:
    return ISOLATED_VOCALS


def not_recorded(options: dict) -> Optional[str]:
    return None


@dataclass(frozen=True)
class Corpus:
    name: str  # `svu data prepare <name>`, the `corpus` of svu_meta.json and of a training config's dataset
    builder: type  # its `common.CorpusBuilder` subclass (a `datasets` builder)
    tasks: tuple  # the tasks (`modeling_svu.tasks`) its rows serve; with several, the `task` option picks one
    title: str
    homepage: str  # where the corpus comes from (the cards' "Source")
    licence: str  # Hub `license:` identifier of what SVU prepares from it
    licence_note: str  # one line: what the licence covers and why
    bibtex: str  # its paper; "" only for a corpus SVU generates or the user's own data
    splits: str  # the default split, as the model card states it
    preprocessing: str  # the dataset card's preprocessing line; `{chunk:g}` is the chunk length in seconds
    no_redistribution: str = ""  # non-empty: why its prepared audio may not be redistributed (public upload refused)
    generated: bool = False  # made by SVU from the seed: no data_dir, and the seed goes to the builder's config
    user_data: bool = False  # the user's own recordings: no paper to cite, and the seed draws the split (builder's config)
    separable: bool = False  # holds mixtures: the `separation` option applies
    # the vocal separation of a folder that recorded none, from its options (None: "not recorded")
    separation_note: Callable[[dict], Optional[str]] = not_recorded
    card_name: str = ""  # the model card's name of the data (`{task}` filled in); "": the task's paper corpus, or title
    split_help: str = ""  # the `split` option's values, for `svu data prepare --help`
    option_help: str = ""  # other builder options worth knowing (`--option key=value`)

    @property
    def seeded(self) -> bool:
        """The seed goes to the builder's config (it draws the corpus, or the split of the user's own data)."""
        return self.generated or self.user_data

    def __post_init__(self):
        required = ("name", "builder", "tasks", "title", "homepage", "licence", "licence_note", "splits", "preprocessing")
        missing = [field for field in required if not getattr(self, field)]
        if not self.bibtex and not self.seeded:
            missing.append("bibtex")
        if missing:
            raise ValueError(f"corpus {self.name or '?'}: no {', '.join(missing)}")
        if not isinstance(self.tasks, tuple):
            raise ValueError(f"corpus {self.name}: tasks must be a tuple of task names, got {self.tasks!r}")
        for task in self.tasks:
            get_task(task)  # an unknown task: one line listing the known ones
        if "{chunk" not in self.preprocessing:
            raise ValueError(f"corpus {self.name}: preprocessing says nothing of the chunk length ({{chunk:g}} s)")


FIELDS = tuple(field.name for field in fields(Corpus))


def _corpus_modules() -> list:
    """The names of this package's modules that declare a `CORPUS`, sorted."""
    package = importlib.import_module(__package__)
    names = []
    for folder in package.__path__:
        for path in sorted(Path(folder).glob("*.py")):
            if path.stem != Path(__file__).stem and DECLARES.search(path.read_text(encoding="utf-8")):
                names.append(path.stem)
    return sorted(set(names))


@cache
def corpora() -> dict:
    """``{name: Corpus}`` of every corpus module, in module-name order."""
    entries = {}
    for module_name in _corpus_modules():
        entry = importlib.import_module(f"{__package__}.{module_name}").CORPUS
        if not isinstance(entry, Corpus):
            raise TypeError(f"{__package__}.{module_name}.CORPUS is a {type(entry).__name__}, not a Corpus")
        if entry.name in entries:
            raise ValueError(f"corpus {entry.name!r} is declared twice (by {module_name} and another module)")
        entries[entry.name] = entry
    return entries


def corpus_names() -> tuple:
    return tuple(corpora())


def get_corpus(name: str) -> Corpus:
    """The corpus called `name`; ValueError (one line, listing the known ones) for any other value."""
    try:
        return corpora()[name]
    except KeyError:
        raise ValueError(f"unknown corpus {name!r}; expected one of {', '.join(corpora())}") from None


def find_corpus(name: str) -> Optional[Corpus]:
    """The corpus called `name`, or None (a prepared folder of a corpus this SVU does not know)."""
    return corpora().get(name)
