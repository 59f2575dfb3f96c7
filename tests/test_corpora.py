"""A corpus is one entry (`dataset_scripts.corpora`), and that entry alone wires it: the walk below takes every
corpus of the registry through `svu data prepare` (a choice of the CLI, its help, `prepare`'s dispatch to the
entry's builder, the seed and separation rules), the model card (licence note, citation, default splits, vocal
separation) and the dataset card (licence, source, citation, preprocessing, the public-upload refusal). A corpus
missing one field fails the walk, an entry without a required field is refused, a new entry is wired with nothing
else edited, and no module other than the corpus's own names a corpus. Fast, in-process."""

import argparse
import ast
import copy
import dataclasses
import re
from pathlib import Path

import pytest
import yaml
from test_model_card import fake_metrics

from svu.dataset_scripts import cli
from svu.dataset_scripts.common import CorpusBuilder
from svu.dataset_scripts.corpora import Corpus, corpora, corpus_names, get_corpus
from svu.dataset_scripts.hub import check_visibility, dataset_card
from svu.dataset_scripts.prepare import prepare
from svu.model_cards.card import separation_used
from svu.model_cards import model_card
from svu.train.config import load_config

REPO = Path(__file__).resolve().parents[1]
# what the walk finds on the cards and in `svu data prepare`; blanking any one of them must fail it
SURFACED = ("title", "homepage", "licence", "licence_note", "bibtex", "splits", "preprocessing", "tasks", "builder")
# the modules that wire corpora in: they read entries and never name a corpus
WIRING = [*(f"dataset_scripts/{name}.py" for name in ("prepare", "cli", "hub", "corpora", "common", "audio",
                                                      "parallel", "separation", "pitch_corpus")),
          "model_cards/card.py", "model_cards/citations.py", "train/data.py", "train/run.py", "train/evaluation.py"]
# prose where the word is an adjective, not a corpus's name (the model card's paper note)
PROSE = ("synthetic demo corpus",)


class Dispatched(Exception):
    """Raised by the builder instead of building: `prepare` reached it with these keyword arguments."""


def prepare_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="svu")
    cli.add_parser(parser.add_subparsers(dest="command"))
    return parser


def intercept_builder(monkeypatch, entry) -> dict:
    seen = {}

    def init(self, **kwargs):
        seen.update(kwargs)
        raise Dispatched

    monkeypatch.setattr(entry.builder, "__init__", init)
    return seen


class FakeApi:
    def repo_info(self, repo_id, repo_type):
        return type("Info", (), {"private": False})()


def assert_wired(name: str, tmp_path, monkeypatch) -> None:
    """Every surface of corpus `name` shows its entry's facts (AssertionError naming the first that does not)."""
    entry = get_corpus(name)
    for field in SURFACED:
        assert getattr(entry, field) or (field == "bibtex" and entry.seeded), f"{name}: empty {field}"
    assert isinstance(entry.builder, type) and issubclass(entry.builder, CorpusBuilder), f"{name}: builder"
    if not isinstance(entry.builder.__dict__.get("task"), property):
        assert entry.tasks == (entry.builder.task,), f"{name}: tasks {entry.tasks} but the builder makes {entry.builder.task}"

    # svu data prepare <name>: a choice, in the help it needs, dispatched to the entry's builder
    parser = prepare_parser()
    try:
        assert parser.parse_args(["data", "prepare", name, "--output", str(tmp_path / "x")]).corpus == name
    except SystemExit:
        raise AssertionError(f"{name}: not a choice of svu data prepare") from None
    help_text = " ".join(parser._subparsers._group_actions[0].choices["data"]._subparsers._group_actions[0]
                         .choices["prepare"].format_help().split())
    for field in ("split_help", "option_help"):
        if getattr(entry, field):
            assert " ".join(f"{name}: {getattr(entry, field)}".split()) in help_text, f"{name}: {field} not in --help"
    if len(entry.tasks) > 1:
        assert f"{name}: {' | '.join(entry.tasks)}" in help_text, f"{name}: its tasks are not in --task's help"
    if entry.no_redistribution:
        assert entry.title in help_text, f"{name}: --public's help does not say its audio is restricted"
    seen = intercept_builder(monkeypatch, entry)
    data_dir = tmp_path / "raw"
    data_dir.mkdir(exist_ok=True)
    with pytest.raises(Dispatched):
        prepare(name, tmp_path / "out", data_dir=None if entry.generated else data_dir)
    assert ("seed" in seen) == entry.seeded, f"{name}: the seed reaches the builder only for a generated corpus or user data"
    if not entry.generated:
        with pytest.raises(ValueError, match=f"corpus '{name}' needs data_dir"):
            prepare(name, tmp_path / "out")
    separated = pytest.raises(Dispatched) if entry.separable else pytest.raises(ValueError, match="holds solo voices")
    with separated:
        prepare(name, tmp_path / "out", data_dir=data_dir, separation="htdemucs")

    # the model card of every task it serves: licence note, citation, default splits, vocal separation
    for task in entry.tasks:
        config = load_config(None, ["--task", task]).to_dict()
        config["backbone"] = "wavlm"
        meta = {"corpus": name, "task": task, "label_names": ["a", "b"], "chunk_seconds": 5.0, "fingerprint": "f"}
        text = str(model_card(config, fake_metrics(task), meta, "wavlm"))
        assert entry.licence_note in text, f"{name}: the model card lacks its licence note"
        assert not entry.bibtex or f"```bibtex\n{entry.bibtex}\n```" in text, f"{name}: the model card lacks its citation"
        assert f"- Split: {entry.splits}." in text, f"{name}: the model card lacks its default splits"
        assert f"datasets:\n- {name}\n" in text
    assert separation_used(name, {}, {}) == (entry.separation_note({}) or
                                             "not recorded in the prepared dataset (see its svu_meta.json)")

    # the dataset card: licence, source, citation, preprocessing; a public upload refused when restricted
    meta = {"corpus": name, "task": entry.tasks[0], "chunk_seconds": 5.0, "label_names": [], "options": {}}
    card = dataset_card(meta, {"train": 2, "validation": 1, "test": 1})
    assert card.data.license == entry.licence, f"{name}: the dataset card's licence"
    assert f"# {entry.title} for " in card.text
    assert f"Source: {entry.homepage}. Licence: `{entry.licence}`. {entry.licence_note}" in card.text
    assert not entry.bibtex or f"```bibtex\n{entry.bibtex}\n```" in card.text, f"{name}: the dataset card's citation"
    assert f"- {entry.preprocessing.format(chunk=5.0)}." in card.text, f"{name}: the dataset card's preprocessing"
    assert yaml.safe_load(card.content.split("---\n")[1])["license"] == entry.licence
    if entry.no_redistribution:
        with pytest.raises(ValueError, match=re.escape(entry.no_redistribution)):
            check_visibility(FakeApi(), name, "me/public", public=False)
    else:
        check_visibility(FakeApi(), name, "me/public", public=False)


def test_the_registry_holds_every_corpus_module():
    declaring = sorted(path.stem for path in (REPO / "dataset_scripts").glob("*.py")
                       if re.search(r"^CORPUS\s*=", path.read_text(), re.M))
    assert declaring == sorted(corpus_names()) and len(declaring) >= 6
    for module in declaring:  # lhotse-like: a corpus is named after its module
        assert get_corpus(module).name == module


@pytest.mark.parametrize("name", corpus_names())
def test_every_corpus_is_wired_from_its_entry(name, tmp_path, monkeypatch):
    assert_wired(name, tmp_path, monkeypatch)


@pytest.mark.parametrize("field", SURFACED)
def test_the_walk_fails_for_a_corpus_missing_one_field(field, tmp_path, monkeypatch):
    entry = get_corpus("vocalset")
    half = copy.copy(entry)
    object.__setattr__(half, field, None if field == "builder" else type(getattr(entry, field))())  # unchecked
    monkeypatch.setitem(corpora(), "vocalset", half)
    with pytest.raises(AssertionError, match=f"vocalset: (empty {field}|{field})"):
        assert_wired("vocalset", tmp_path, monkeypatch)


@pytest.mark.parametrize("module, attribute, replacement, failure", [
    ("svu.model_cards.card", "find_corpus", lambda name: None, "the model card lacks its licence note"),
    ("svu.dataset_scripts.hub", "get_corpus",
     lambda name: dataclasses.replace(get_corpus(name), preprocessing="other {chunk:g} s"), "preprocessing"),
    ("svu.dataset_scripts.cli", "corpora", lambda: {}, "not a choice of svu data prepare"),
])
def test_the_walk_fails_when_a_surface_does_not_read_the_entry(module, attribute, replacement, failure, tmp_path,
                                                                monkeypatch):
    monkeypatch.setattr(f"{module}.{attribute}", replacement)
    with pytest.raises(AssertionError, match=f"vocalset: .*{failure}"):
        assert_wired("vocalset", tmp_path, monkeypatch)


@pytest.mark.parametrize("field", SURFACED)
def test_an_entry_without_a_required_field_is_refused(field):
    entry = get_corpus("mir1k")
    with pytest.raises(ValueError, match=f"corpus mir1k: no {field}"):
        dataclasses.replace(entry, **{field: None if field == "builder" else type(getattr(entry, field))()})
    arguments = {f.name: getattr(entry, f.name) for f in dataclasses.fields(Corpus) if f.name != field}
    with pytest.raises((TypeError, ValueError)):
        Corpus(**arguments)


def test_an_entry_checks_its_tasks_and_preprocessing():
    entry = get_corpus("vocadito")
    with pytest.raises(ValueError, match="Unknown task"):
        dataclasses.replace(entry, tasks=("phonemes",))
    with pytest.raises(ValueError, match="chunk length"):
        dataclasses.replace(entry, preprocessing="decoded to 24 kHz")


def test_a_new_corpus_needs_nothing_but_its_entry(tmp_path, monkeypatch):
    toy = dataclasses.replace(
        get_corpus("vocadito"), name="toy", title="Toy corpus", homepage="https://example.org/toy", licence="cc0-1.0",
        licence_note="Toy is public domain.", bibtex="@misc{toy, title = {Toy}}", splits="toy singers apart",
        preprocessing="toy {chunk:g} s chunks", no_redistribution="toy audio is borrowed", separable=True,
        split_help="toy_a | toy_b", option_help="toy_option=1",
    )
    monkeypatch.setitem(corpora(), "toy", toy)
    assert_wired("toy", tmp_path, monkeypatch)


class Identifier(str):
    """A name of the code (not a string constant)."""


def code_strings(path: Path):
    """(line, text) of the string constants of a module's code (docstrings left out), and of its names."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.lineno, node.value
        elif isinstance(node, ast.Name):
            yield node.lineno, Identifier(node.id)


def named_corpora(text: str) -> list:
    # the user's own data is named by an ordinary word ("folder"): only a string constant that is exactly it names it
    exact = [name for name, entry in corpora().items()
             if entry.user_data and text == name and not isinstance(text, Identifier)]
    for phrase in PROSE:
        text = text.replace(phrase, "")
    words = {name.lower() for name, entry in corpora().items() if not entry.user_data}
    words |= {entry.title.lower() for entry in corpora().values() if not entry.user_data}
    return [word for word in words if re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text.lower())] + exact


@pytest.mark.parametrize("module", WIRING)
def test_nothing_outside_a_corpus_module_names_a_corpus(module):
    named = [(line, text) for line, text in code_strings(REPO / module) if named_corpora(text)]
    assert not named, f"{module} names a corpus (read it from its entry, `dataset_scripts.corpora`): {named}"


def test_the_name_check_can_fail(tmp_path):
    source = tmp_path / "wiring.py"
    source.write_text('"""Docstrings may say vocalset."""\nSEPARATED = ("artist20", "mir_st500")\n'
                      'for folder in ("a folder", "folder"):\n    pass\n')
    assert [text for _, text in code_strings(source) if named_corpora(text)] == ["artist20", "mir_st500", "folder"]
