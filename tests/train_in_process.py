"""`train/run.py`'s `main` in the test process: the same training function, Accelerator and files as a one-process
`accelerate launch train/run.py`, without a fresh interpreter importing torch, transformers and datasets again
(about 8 s of CPU per run here).

    proc = train(*run_args)          # -> CompletedProcess: returncode, stdout, stderr (what run.py printed)

For runs whose test is about what training does (accumulation, trackers, the model's rate, the kept epoch). The
launch itself (`accelerate launch` in a subprocess, 1 or 2 processes) is walked by the demo runs
(`demo_runs.demo_run`) and by the tests that kill, resume or spread a run over processes.
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


def train(*args, cwd=None, check=True) -> subprocess.CompletedProcess:
    from svu.train import run

    argv = [str(arg) for arg in args]
    stdout, stderr = io.StringIO(), io.StringIO()
    previous = os.getcwd()
    reset_accelerate_state()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                run.main(argv)
                code = 0
            except SystemExit as exit_:
                if isinstance(exit_.code, str):
                    print(exit_.code, file=stderr)
                code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    finally:
        os.chdir(previous)
        reset_accelerate_state()
    proc = subprocess.CompletedProcess(["train/run.py", *argv], code, stdout.getvalue(), stderr.getvalue())
    if check and code != 0:
        raise AssertionError(f"run failed ({code}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc
