"""`svu space --model M [--port P]`: run the demo Space (`space/app.py`) locally on an SVU repo id or folder."""

import runpy
import sys
from pathlib import Path

# space/app.py in a clone; installed, the same file is package data in svu/space_app/
APP_CANDIDATES = (Path(__file__).resolve().parents[1] / "space" / "app.py", Path(__file__).resolve().parent / "space_app" / "app.py")


def app_path() -> Path:
    return next((path for path in APP_CANDIDATES if path.is_file()), APP_CANDIDATES[-1])


def run_space(args) -> int:
    app = app_path()
    if not app.is_file():
        print(f"svu space: {app} not found: the package is incomplete; reinstall svu.", file=sys.stderr)
        return 2
    try:
        import gradio  # noqa: F401
    except ImportError:
        print("svu space: the Space needs gradio: pip install gradio (or pip install -e '.[test]').", file=sys.stderr)
        return 2
    sys.argv = [str(app), "--model", args.model, "--host", args.host, "--port", str(args.port)]
    runpy.run_path(str(app), run_name="__main__")
    return 0


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("space")
    parser.add_argument("--model", required=True, help="SVU model repo id or folder")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7860)
    parser.set_defaults(func=run_space)
