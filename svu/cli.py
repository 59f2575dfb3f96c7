"""`svu` console script: one sub-command per interface; each lives next to the code it drives."""

import argparse
import importlib

# sub-command name -> module defining `add_parser(subparsers)`; the parser sets `func(args) -> int`.
SUBCOMMANDS = {
    "data": "dataset_scripts.cli",
    "export": "svu.export",
    "transcribe": "svu.transcribe",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="svu", description="Singing voice understanding with SSL backbones.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in SUBCOMMANDS.values():
        importlib.import_module(module).add_parser(subparsers)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)
