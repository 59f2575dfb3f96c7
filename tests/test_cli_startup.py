"""`svu` start-up: `svu --help` imports no sub-command's module, and no `--help` imports torch or transformers
(seconds each); a sub-command imports only its own module's dependencies, so only `svu data` loads `datasets`.
Checked in fresh interpreters (what a user's shell runs)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from svu.cli import SUBCOMMANDS

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "datasets")
PROBE = """
import json, sys
from svu.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)))
"""


def loaded_modules(*argv):
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, set(json.loads(proc.stdout.strip().splitlines()[-1]))


def command_modules(loaded: set) -> set:
    return {name for name, (module, _) in SUBCOMMANDS.items() if module in loaded}


@pytest.mark.parametrize("command", list(SUBCOMMANDS))
def test_a_sub_commands_help_imports_only_its_own_module_and_never_torch(command):
    argv = [command, "prepare", "--help"] if command == "data" else [command, "--help"]
    out, loaded = loaded_modules(*argv)
    assert f"usage: svu {' '.join(argv[:-1])}" in out
    assert SUBCOMMANDS[command][1] in out.replace("\n", " ") or command == "data", out  # its description
    assert command_modules(loaded) == {command}, command_modules(loaded)
    assert {"torch", "transformers"}.isdisjoint(loaded), sorted(loaded & set(HEAVY))
    assert ("datasets" in loaded) == (command == "data"), command  # corpus builders are datasets builders


def test_top_level_help_lists_every_sub_command_and_imports_none():
    out, loaded = loaded_modules("--help")
    listed = out.split("{", 1)[1].split("}", 1)[0].split(",")
    assert listed == list(SUBCOMMANDS)
    for name, (_, summary) in SUBCOMMANDS.items():
        assert " ".join(summary.split()[:3]) in " ".join(out.split()), name
    assert not command_modules(loaded) and set(HEAVY).isdisjoint(loaded), sorted(loaded & set(HEAVY))


def test_an_unknown_sub_command_is_one_error_listing_the_known_ones():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "svu", "transcibe"], capture_output=True, text=True, env=env, cwd=REPO)
    assert proc.returncode == 2 and "invalid choice: 'transcibe'" in proc.stderr and "transcribe" in proc.stderr
