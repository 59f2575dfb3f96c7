"""`svu` start-up: a sub-command imports only its own module's dependencies (each verb's module imports what it
drives), so `svu pitch` / `transcribe` / `classify` never load `datasets` (~1.7 s); `svu --help` still lists every
sub-command. Checked in fresh interpreters (what a user's shell runs)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from svu.cli import SUBCOMMANDS

REPO = Path(__file__).resolve().parents[1]
PROBE = """
import json, sys
from svu.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps({name: name in sys.modules for name in ("datasets", "svu.pitch", "svu.classify")}))
"""


def loaded_modules(*argv):
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("verb", ["pitch", "transcribe", "classify"])
def test_a_model_verb_does_not_import_datasets(verb):
    out, loaded = loaded_modules(verb, "--help")
    assert f"usage: svu {verb}" in out
    assert not loaded["datasets"], loaded
    assert loaded["svu.pitch"] == (verb == "pitch") and loaded["svu.classify"] == (verb == "classify")


def test_top_level_help_lists_every_sub_command():
    out, loaded = loaded_modules("--help")
    listed = out.split("{", 1)[1].split("}", 1)[0].split(",")
    assert listed == list(SUBCOMMANDS)
    assert loaded["datasets"]  # the full parser: every sub-command's module, `data` included
