"""`svu transcribe` as a singer runs it, whole process, beside basic-pitch 0.4 on ONNX Runtime (issue 16).

Over 10 minutes of sung-like melodies (20 files x 30 s, written as 44.1 kHz wav, decoded and resampled by the
command itself), each variant is one `python -m svu transcribe ... -q` process, timed from start to exit
(Python start-up, imports, model load, decoding, inference, MIDI writing): base-size model (random weights) in
fp32, torch bf16, torch int8, ONNX fp32, ONNX int8, and pruned to 6 layers (`svu export --max-layers 6`) in fp32,
with torch int8, with ONNX int8, and with ONNX int8 on 10 s windows overlapping by 0.5 s. The ONNX exports are made
once before the timed runs (their one-off cost is its own row). basic-pitch runs in its own venv (see
`basic_pitch_peer.py`) as one process over the same files, timed the same way, once before and once after the SVU
runs: the faster of the two is its RTF (on a shared machine load only ever adds time), and the two together show
how much the load moved. RTF = wall seconds / audio seconds; ratio = RTF / basic-pitch's RTF (goal for pruned + ONNX
int8: <= 1.0).

Students (issue 25, `student_rows`): `svu distill`'s sizes (`train.distill.STUDENT_SIZES`: nano, tiny; random
weights, the speed does not depend on them) with ONNX int8, ONNX fp32 and the torch default, each a whole
`svu transcribe` process (the export made by an untimed first run), on a 1-second file of real singing and on
minutes of real singing (the repository's test clips, `tests/data/singing_examples`, joined into 30 s files at
44.1 kHz), beside basic-pitch's whole process on the same files; each timing is the faster of two runs. With
`SVU_BENCH_BEFORE=<another checkout>` (e.g. the main branch) the same processes also run that checkout's code, in the
same run, for a before / after table. Goals: the 1-second file at or under basic-pitch's time; over minutes, the
smallest student with ONNX int8 <= 0.5x basic-pitch, the fp32 students <= 1.0x.
"""

import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

from svu.modeling_svu import SVUForNoteTranscription

from . import basic_pitch_peer
from .common import NUM_THREADS, SR, Row, backbone_config, check
from .transcription_rtf import melody

NAME = "whole_process"
REPO_ROOT = Path(__file__).resolve().parents[1]
REAL_SINGING = REPO_ROOT / "tests" / "data" / "singing_examples"
STUDENT_ENGINES = {"onnx int8": ["--engine", "onnx", "--int8"], "onnx fp32": ["--engine", "onnx"], "torch fp32": []}
FILE_RATE = 44100
LONG_WINDOWS = ["--chunk-seconds", "10", "--overlap-seconds", "0.5"]
VARIANTS = {
    "fp32": ("full", []),
    "torch bf16": ("full", ["--bf16"]),
    "torch int8": ("full", ["--int8"]),
    "onnx fp32": ("full", ["--engine", "onnx"]),
    "onnx int8": ("full", ["--engine", "onnx", "--int8"]),
    "pruned 6 layers, fp32": ("pruned", []),
    "pruned 6 layers + torch int8": ("pruned", ["--int8"]),
    "pruned 6 layers + onnx int8": ("pruned", ["--engine", "onnx", "--int8"]),
    # issue 16's long windows: 5 % of the audio computed twice instead of 25 % (5 s windows, 1 s overlap)
    "pruned 6 layers + onnx int8, 10 s windows": ("pruned", ["--engine", "onnx", "--int8", *LONG_WINDOWS]),
}

SMOKE_VARIANTS = ("fp32", "pruned 6 layers + onnx int8")

# basic-pitch as a user runs it from Python: import, load the ONNX model, predict and save MIDI per file.
_PEER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from basic_pitch import ICASSP_2022_MODEL_PATH
    from basic_pitch.inference import Model, predict
    path = str(ICASSP_2022_MODEL_PATH)
    model = Model(path if path.endswith(".onnx") else path + ".onnx")
    out = Path(sys.argv[1])
    for wav in sys.argv[2:]:
        _, midi, _ = predict(wav, model)
        midi.write(str(out / (Path(wav).stem + ".mid")))
    """
)


def env() -> dict:
    threads = str(NUM_THREADS)
    return dict(os.environ, PYTHONPATH=str(REPO_ROOT), HF_HUB_OFFLINE="1", OMP_NUM_THREADS=threads,
                MKL_NUM_THREADS=threads, ORT_NUM_THREADS=threads)


def timed_process(command, cwd=REPO_ROOT, extra_env=None) -> float:
    """Wall seconds of `command` (a whole process); `cwd` and PYTHONPATH are the checkout whose `svu` runs."""
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=cwd, env={**env(), "PYTHONPATH": str(cwd), **(extra_env or {})},
                          capture_output=True, text=True, timeout=3600)  # fmt: skip
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode
        raise RuntimeError(f"{' '.join(map(str, command[:4]))}...: {tail}")
    return seconds


def write_songs(folder: Path, count: int, seconds: float) -> list:
    paths = []
    for i in range(count):
        audio, _ = melody(seconds, seed=100 + i)
        path = folder / f"song{i:02d}.wav"
        sf.write(path, soxr.resample(audio, SR, FILE_RATE).astype(np.float32), FILE_RATE, subtype="PCM_16")
        paths.append(path)
    return paths


def peer_unavailable(smoke: bool):
    """Why basic-pitch is not timed in this run; None when it is (the full run installs its venv first)."""
    if smoke:
        return "smoke mode (tiny model, seconds of audio)"
    problem = basic_pitch_peer.install()  # "" when it is installed already
    if problem:
        return problem
    return None if basic_pitch_peer.is_installed() else "basic-pitch not installed (the full run installs it into its own venv)"


def peer_seconds(files, out_dir: Path) -> float:
    """basic-pitch's whole process over `files` (MIDI files into `out_dir`); RuntimeError when it fails."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return timed_process([str(basic_pitch_peer.venv_python()), "-c", _PEER, str(out_dir), *map(str, files)], cwd=out_dir)


def run(smoke: bool) -> list:
    return base_size_rows(smoke) + student_rows(smoke)


def base_size_rows(smoke: bool) -> list:
    count, seconds = (2, 6.0) if smoke else (20, 30.0)
    keep = 2 if smoke else 6
    audio_seconds = count * seconds
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        songs = write_songs(tmp, count, seconds)
        torch.manual_seed(0)
        SVUForNoteTranscription.from_backbone(backbone_config(smoke)).save_pretrained(tmp / "full")
        svu = [sys.executable, "-m", "svu"]
        timed_process(svu + ["export", str(tmp / "full"), str(tmp / "pruned"), "--max-layers", str(keep)])
        cache = {"XDG_CACHE_HOME": str(tmp / "cache")}
        variants = {k: v for k, v in VARIANTS.items() if not smoke or k in SMOKE_VARIANTS}
        for model in ("pruned",) if smoke else ("full", "pruned"):  # one-off ONNX exports, outside the timed runs
            first = timed_process(svu + ["transcribe", str(songs[0]), "--model", str(tmp / model), "-o",
                                         str(tmp / "warm"), "-q", "--engine", "onnx", "--int8"], extra_env=cache)
            if model == "full":
                rows.append(Row(NAME, "one-off ONNX export + int8 quantisation (first --engine onnx --int8 run)",
                                first, unit="s", note=f"{'tiny' if smoke else 'base'}; cached afterwards"))
        peer, peer_times = peer_unavailable(smoke), []

        def time_peer(run: int):
            nonlocal peer
            if peer is not None:
                return
            try:
                peer_times.append(peer_seconds(songs, tmp / f"peer{run}") / audio_seconds)
            except RuntimeError as err:
                peer = str(err)

        time_peer(0)
        rtf = {}
        for name, (model, flags) in variants.items():
            name = name.replace("pruned 6 layers", f"pruned {keep} layers")
            command = svu + ["transcribe", *map(str, songs), "--model", str(tmp / model), "-o", str(tmp / name), "-q"]
            rtf[name] = timed_process(command + flags, extra_env=cache) / audio_seconds
        time_peer(1)
        if peer is None:
            peer = min(peer_times)

    size = "tiny" if smoke else "base"
    what = f"{size}, random weights, {count} x {seconds:g} s wav at 44.1 kHz, whole process"
    if isinstance(peer, float):
        runs = " and ".join(f"{value:.4f}" for value in peer_times)
        rows.append(Row(NAME, "RTF basic-pitch 0.4.0 (onnxruntime, own venv)", peer, unit="",
                        note=f"{what}; faster of 2 runs ({runs}), before and after the SVU runs"))
    else:
        rows.append(Row(NAME, "basic-pitch peer", float("nan"), unit="", note=f"skipped: {peer}"))
    for name, value in rtf.items():
        rows.append(Row(NAME, f"RTF svu transcribe, {name}", value, unit="", note=f"{rtf['fp32'] / value:.2f}x faster than fp32; {what}"))
        if isinstance(peer, float):
            goal = "<= 1.0" if name == f"pruned {keep} layers + onnx int8" else ""
            rows.append(Row(NAME, f"RTF ratio {name} / basic-pitch", value / peer, goal=goal,
                            met=check(value / peer, goal, smoke)))
    return rows


def real_singing(folder: Path, count: int, seconds: float) -> list:
    """`count` wav files of `seconds` of real singing at 44.1 kHz: the repository's test clips (`REAL_SINGING`),
    joined end to end, each file starting at the next clip."""
    from svu.modeling_svu.audio_io import decode_audio

    clips = [decode_audio(path, FILE_RATE) for path in sorted(REAL_SINGING.rglob("*.wav"))]
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        turn = clips[i % len(clips):] + clips[: i % len(clips)]
        repeats = int(np.ceil(seconds * FILE_RATE / sum(len(clip) for clip in clips)))
        path = folder / f"singing{i:02d}.wav"
        sf.write(path, np.concatenate(turn * repeats)[: int(seconds * FILE_RATE)], FILE_RATE, subtype="PCM_16")
        paths.append(path)
    return paths


def checkouts() -> dict:
    """{label: checkout whose `svu` runs}: this one, and `SVU_BENCH_BEFORE`'s when set (a before / after table)."""
    found = {"after": REPO_ROOT}
    before = os.environ.get("SVU_BENCH_BEFORE")
    if before and Path(before, "svu", "transcribe.py").is_file():
        found = {"before": Path(before).resolve(), **found}
    return found


def student_rows(smoke: bool) -> list:
    """Distilled students' whole `svu transcribe` process beside basic-pitch's (module docstring)."""
    from svu.modeling_svu import SVUConfig
    from svu.train.distill import student_backbone

    sizes = ("nano",) if smoke else ("nano", "tiny")
    engines = {k: v for k, v in STUDENT_ENGINES.items() if not smoke or k == "onnx int8"}
    count, seconds = (0, 0.0) if smoke else (10, 30.0)
    one_second = REAL_SINGING / "dagstuhl_choirset" / "audio_wav_22050_mono" / "DCS_LI_QuartetB_Take04_A2_DYN.wav"
    svu = [sys.executable, "-m", "svu", "transcribe"]
    code = checkouts()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for size in sizes:
            torch.manual_seed(0)
            backbone = student_backbone(SVUConfig(task="transcription"), size)
            SVUForNoteTranscription.from_backbone(backbone).save_pretrained(tmp / size)
        songs = real_singing(tmp / "singing", count, seconds)
        peer = peer_unavailable(smoke)
        variants = [(label, size, engine) for label in code for size in sizes for engine in engines]

        def transcribe(files, variant, out: str) -> float:
            label, size, engine = variant
            command = svu + [*map(str, files), "--model", str(tmp / size), "-o", str(tmp / out), "-q", *engines[engine]]
            return timed_process(command, cwd=code[label], extra_env={"XDG_CACHE_HOME": str(tmp / f"cache-{label}")})

        for variant in variants:  # the exports (each checkout caches its own), outside the timed runs
            transcribe([one_second], variant, "warm")
        times = {}
        for repeat in range(1 if smoke else 2):
            for what, files in (("1 s", [one_second]), ("singing", songs)):
                if not files:
                    continue
                if peer is None:
                    try:
                        times.setdefault(("basic-pitch", what), []).append(peer_seconds(files, tmp / f"peer-{repeat}"))
                    except RuntimeError as err:
                        peer = str(err)
                for variant in variants:
                    times.setdefault((variant, what), []).append(transcribe(files, variant, f"out-{repeat}"))
    best = {key: min(values) for key, values in times.items()}
    runs = "faster of 2 runs" if not smoke else "1 run"
    rows = []
    if peer is None:
        rows.append(Row(NAME, "1 s file: basic-pitch 0.4.0 whole process", best["basic-pitch", "1 s"], unit="s",
                        note=f"{one_second.name}; {runs}"))
        rows.append(Row(NAME, "real singing: RTF basic-pitch 0.4.0", best["basic-pitch", "singing"] / (count * seconds),
                        unit="", note=f"{count} x {seconds:g} s of the test clips at 44.1 kHz; {runs}"))
    else:
        rows.append(Row(NAME, "students: basic-pitch peer", float("nan"), unit="", note=f"skipped: {peer}"))
    for variant in variants:
        label, size, engine = variant
        name = f"{size} {engine}, {label}"
        value = best[variant, "1 s"]
        rows.append(Row(NAME, f"1 s file: {name}", value, unit="s", note=f"whole process; {runs}"))
        if peer is None:
            goal = "<= 1.0" if label == "after" and engine.startswith("onnx") else ""
            rows.append(Row(NAME, f"1 s file: {name} / basic-pitch", value / best["basic-pitch", "1 s"], goal=goal,
                            met=check(value / best["basic-pitch", "1 s"], goal, smoke)))
            ratio = best[variant, "singing"] / best["basic-pitch", "singing"]
            goal = "" if label != "after" else "<= 0.5" if (size, engine) == (sizes[0], "onnx int8") else "<= 1.0" if "fp32" in engine else ""
            rows.append(Row(NAME, f"real singing: {name} / basic-pitch", ratio, goal=goal, met=check(ratio, goal, smoke),
                            note=f"RTF {best[variant, 'singing'] / (count * seconds):.4f}"))
    return rows
