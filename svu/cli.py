"""`svu` console script: one sub-command per interface; each lives next to the code it drives."""

import argparse
import contextlib
import importlib
import os
import sys

# sub-command name -> (module defining `add_parser(subparsers)`, whose parser sets `func(args) -> int`; its line in
# `svu --help`, which lists the sub-commands without importing them)
SUBCOMMANDS = {
    "data": ("svu.dataset_scripts.cli", "prepare corpora as datasets folders"),
    "classify": ("svu.classify", "name the singer or the singing technique of recordings"),
    "evaluate": ("svu.evaluate", "score a saved model on a prepared dataset split (no training)"),
    "distill": ("svu.distill", "distil a fine-tuned model into a small, fast student of the same task"),
    "export": ("svu.export", "write a pruned copy of an SVU model repo, or one carrying its ONNX exports"),
    "transcribe": ("svu.transcribe", "transcribe sung notes to MIDI, CSV, JSON, pictures, audio"),
    "pitch": ("svu.pitch", "track the F0 (pitch) of singing, frame by frame, to CSV, JSON, PNG"),
    "lyrics": ("svu.lyrics", "transcribe sung lyrics with word timings to text, JSON, SRT subtitles, LRC karaoke"),
    "space": ("svu.space", "run the Gradio demo (space/app.py) on a model, locally"),
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


QUIET_ENV = ("TQDM_DISABLE", "HF_DATASETS_DISABLE_PROGRESS_BARS", "HF_HUB_DISABLE_PROGRESS_BARS")
# (module, is-enabled, disable, enable) of the libraries whose bars have an in-process switch
BAR_SWITCHES = (
    ("huggingface_hub.utils", "are_progress_bars_disabled", "disable_progress_bars", "enable_progress_bars"),
    ("transformers.utils.logging", "is_progress_bar_enabled", "disable_progress_bar", "enable_progress_bar"),
    ("datasets.utils.logging", "is_progress_bar_enabled", "disable_progress_bar", "enable_progress_bar"),
)


@contextlib.contextmanager
def progress_bars_silenced():
    """`--quiet`: no progress bars from tqdm (ours, in this process and its children), transformers or datasets,
    for the command only: `main()` called in-process (tests, notebooks) leaves the environment as it found it."""
    saved_env = {key: os.environ.get(key) for key in QUIET_ENV}
    os.environ.update({key: "1" for key in QUIET_ENV})
    switched = []
    for module, is_on, disable, enable in BAR_SWITCHES:
        if module.split(".")[0] != "huggingface_hub" and module.split(".")[0] not in sys.modules:
            continue  # imported later: it reads the environment (transformers follows the hub's switch)
        library = importlib.import_module(module)
        was_on = not getattr(library, is_on)() if is_on.startswith("are_") else getattr(library, is_on)()
        getattr(library, disable)()
        if was_on:
            switched.append(getattr(library, enable))
    try:
        yield
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        for enable in switched:
            enable()


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The `svu` parser with `command`'s arguments, or, for `svu --help` and typos, the list of sub-commands alone:
    each sub-command module imports what it drives (torch, transformers, datasets...), so only the command run
    loads its own (`svu pitch` never imports datasets; `svu --help` imports none)."""
    parser = argparse.ArgumentParser(prog="svu", description="Singing voice understanding with SSL backbones.")
    parser.add_argument("--version", action="version", version=version_text())
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name, (module, summary) in SUBCOMMANDS.items():
        if command == name:
            importlib.import_module(module).add_parser(subparsers)
            subparsers.choices[name].description = summary
        elif command is None:
            subparsers.add_parser(name, help=summary)
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = argv[0] if argv and argv[0] in SUBCOMMANDS else None  # else: the full parser (--help, typos)
    args = build_parser(command).parse_args(argv)
    quiet = progress_bars_silenced() if getattr(args, "quiet", False) else contextlib.nullcontext()
    with quiet:
        return int(args.func(args) or 0)
