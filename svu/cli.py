"""`svu` console script: one sub-command per interface; each lives next to the code it drives."""

import argparse
import importlib
import os
import sys

# sub-command name -> module defining `add_parser(subparsers)`; the parser sets `func(args) -> int`.
SUBCOMMANDS = {
    "data": "dataset_scripts.cli",
    "classify": "svu.classify",
    "evaluate": "svu.evaluate",
    "export": "svu.export",
    "transcribe": "svu.transcribe",
    "space": "svu.space",
}


def version_text() -> str:
    """``svu X.Y.Z (torch ..., transformers ...)``, read from the installed metadata (imports nothing heavy)."""
    from importlib.metadata import PackageNotFoundError, version

    def installed(name):
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    return f"svu {installed('svu')} (torch {installed('torch')}, transformers {installed('transformers')}, python {sys.version.split()[0]})"


def silence_progress_bars() -> None:
    """`--quiet`: no progress bars from tqdm (ours, in this process and its children), transformers or datasets."""
    os.environ["TQDM_DISABLE"] = "1"
    os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    from huggingface_hub.utils import disable_progress_bars

    disable_progress_bars()  # transformers' bars follow the hub's switch when imported later
    for module, function in (("transformers.utils.logging", "disable_progress_bar"),
                             ("datasets", "disable_progress_bars")):  # fmt: skip
        if module.split(".")[0] in sys.modules:  # already imported: switch off in-process too
            getattr(importlib.import_module(module), function)()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="svu", description="Singing voice understanding with SSL backbones.")
    parser.add_argument("--version", action="version", version=version_text())
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in SUBCOMMANDS.values():
        importlib.import_module(module).add_parser(subparsers)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "quiet", False):
        silence_progress_bars()
    return int(args.func(args) or 0)
