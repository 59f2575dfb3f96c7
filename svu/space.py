"""`svu space --model M [--port P]`: run the demo Space (`space/app.py`) locally on an SVU repo id or folder."""

import runpy
import sys
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "space" / "app.py"


def run_space(args) -> int:
    if not APP.is_file():
        print(f"svu space: {APP} not found; run from a clone of the SVU repository.", file=sys.stderr)
        return 2
    try:
        import gradio  # noqa: F401
    except ImportError:
        print("svu space: the Space needs gradio: pip install gradio (or pip install -e '.[test]').", file=sys.stderr)
        return 2
    sys.argv = [str(APP), "--model", args.model, "--host", args.host, "--port", str(args.port)]
    runpy.run_path(str(APP), run_name="__main__")
    return 0


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("space", help="run the Gradio demo (space/app.py) on a model, locally")
    parser.add_argument("--model", required=True, help="SVU model repo id or folder")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7860)
    parser.set_defaults(func=run_space)
