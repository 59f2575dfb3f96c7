"""A command's `main` in the test process: the same function, Accelerator and files as the command run from a shell,
without a fresh interpreter importing torch, transformers and datasets again (about 8 s of CPU per training run
here, about 4 s per `svu` command).

    proc = train(*run_args)          # train/run.py -> CompletedProcess: returncode, stdout, stderr (what it printed)
    proc = svu("transcribe", ...)    # python -m svu

For runs whose test is about what the command does (accumulation, trackers, the model's rate, the kept epoch, a
catalogue's outputs). The launch itself (`accelerate launch` or `python -m svu` in a subprocess, 1 or 2 processes)
is walked by the demo runs (`demo_runs.demo_run`), the own-folder path and the tests that kill, resume or spread a
run over processes.
"""

import contextlib
import io
import os
import subprocess


def reset_accelerate_state():
    """Accelerate's state objects are one per process: start from none, as a new process would."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()


def run_main(main, argv: list, name: str, cwd=None) -> subprocess.CompletedProcess:
    """`main(argv)` with its output captured and its exit turned into a return code, as a subprocess would give."""
    stdout, stderr = io.StringIO(), io.StringIO()
    previous = os.getcwd()
    reset_accelerate_state()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                code = main(argv) or 0
            except SystemExit as exit_:
                if isinstance(exit_.code, str):
                    print(exit_.code, file=stderr)
                code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    finally:
        os.chdir(previous)
        reset_accelerate_state()
    return subprocess.CompletedProcess([name, *argv], code, stdout.getvalue(), stderr.getvalue())


def train(*args, cwd=None, check=True) -> subprocess.CompletedProcess:
    from svu.train import run

    proc = run_main(run.main, [str(arg) for arg in args], "train/run.py", cwd=cwd)
    if check and proc.returncode != 0:
        raise AssertionError(f"run failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def svu(*args) -> subprocess.CompletedProcess:
    from svu.cli import main

    return run_main(main, [str(arg) for arg in args], "svu")
