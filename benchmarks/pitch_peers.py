"""Singing pitch (F0) peers: SVU's demo pitch model beside torchcrepe and PESTO on the real F0-annotated clips.

    python -m benchmarks.run --only pitch_peers              # trains the demo pitch model first (a few minutes)
    python -m benchmarks.pitch_peers --model PATH            # a trained SVUForPitchEstimation folder instead
    python -m benchmarks.pitch_peers --smoke                 # untrained tiny model; peers only if their venv exists

Accuracy: `mir_eval.melody` raw pitch accuracy and raw chroma accuracy (50 cents) of each model's per-frame pitch
(every frame, voiced or not: these two metrics score the pitch on the reference's voiced frames whatever the
model's voicing decision), pooled over all reference voiced frames of all clips (frame-weighted, since the clips
differ a lot in length). Speed: RTF = the best of `repeats` timed calls per clip (from the file's samples to Hz
per frame, resampling included; model loading and one warm-up call excluded), summed over clips / audio seconds;
"ratio" = a peer's RTF / ours. All on 2 threads. The peers run in their own venv (`pitch_peers_env.py`) through
`pitch_peer_runner.py`; the tracks come back as JSON and are scored here, with the same code as ours.

Clips (`tests/data/singing_examples`, mirdata's test fixtures; see its PROVENANCE.md): every F0 reference that
has audio and at least `MIN_VOICED` voiced frames. Dagstuhl ChoirSet's manual F0 (A2 and B2, larynx-mic
annotations: the B2 larynx recording is not in the fixture, so B2 is scored on the same singer's dynamic-mic
track of the same take, which the multitrack records in sync); vocadito excerpts under `vocadito/` in mirdata's
layout when present. MedleyDB-Pitch's F0 file is truncated to 2 rows (1 voiced) in the fixture: listed as skipped.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

from . import pitch_peers_env
from .common import NUM_THREADS, Row, setup_torch
from .run import format_table, machine

NAME = "pitch_peers"
REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = REPO_ROOT / "tests" / "data" / "singing_examples"
DEMO_CONFIG = REPO_ROOT / "train" / "configs" / "demo_pitch.yaml"
MIN_VOICED = 3  # fewer voiced reference frames is not a reference (MedleyDB-Pitch's truncated fixture has 1)
CENT_TOLERANCE = 50
PEERS = ("torchcrepe full", "torchcrepe tiny", "PESTO mir-1k_g7")
SMOKE_PEERS = ("torchcrepe tiny", "PESTO mir-1k_g7")


@dataclass
class Clip:
    name: str
    audio: Path
    ref_times: np.ndarray
    ref_hz: np.ndarray  # 0 = unvoiced
    note: str = ""

    @property
    def voiced_frames(self) -> int:
        return int((self.ref_hz > 0).sum())


def read_f0_csv(path: Path):
    """`time_s,f0_hz` rows (no header; extra columns ignored) -> (times, Hz). An annotation that starts after 0 s
    (DCS's start at 0.40 s) stays as it is: the pitch metric scores a reference on its own rows."""
    rows = np.atleast_2d(np.loadtxt(path, delimiter=",", usecols=(0, 1), ndmin=2))
    return rows[:, 0].astype(np.float64), np.maximum(rows[:, 1], 0.0).astype(np.float64)


def find_clips(root: Path = EXAMPLES):
    """(clips, skipped): the scorable F0 references under `root`, and `(name, reason)` for every one left out."""
    candidates, skipped = [], []
    dcs = root / "dagstuhl_choirset"
    for f0_file in sorted((dcs / "annotations_csv_F0_manual").glob("*.csv")):
        audio_dir = dcs / "audio_wav_22050_mono"
        stem = f0_file.stem
        audio, note = audio_dir / f"{stem}.wav", ""
        if not audio.exists():  # the same singer and take through another microphone (synchronised multitrack)
            others = sorted(audio_dir.glob(f"{stem.rsplit('_', 1)[0]}_*.wav"))
            if others:
                mics = stem.rsplit("_", 1)[1], others[0].stem.rsplit("_", 1)[1]
                audio, note = others[0], "manual F0 of the {} mic, audio of the {} mic".format(*mics)
        candidates.append((f"DCS {stem}", audio, f0_file, note))
    medley = root / "medleydb_pitch"
    if (medley / "medleydb_pitch_metadata.json").exists():
        for track, meta in json.loads((medley / "medleydb_pitch_metadata.json").read_text()).items():
            # the fixture's paths start with "medleydb_pitch/" (relative to the corpora's root)
            audio, f0_file = (root / meta["audio_path"], root / meta["pitch_path"])
            candidates.append((f"MedleyDB-Pitch {track}", audio, f0_file, ""))
    vocadito = root / "vocadito"
    for f0_file in sorted(vocadito.glob("**/Annotations/F0/*_f0.csv")):
        excerpt_root = f0_file.parent.parent.parent  # <root>/Annotations/F0/<id>_f0.csv
        audio = excerpt_root / "Audio" / (f0_file.name[: -len("_f0.csv")] + ".wav")
        candidates.append((f"vocadito {audio.stem}", audio, f0_file, ""))

    clips = []
    for name, audio, f0_file, note in candidates:
        if not audio.exists():
            skipped.append((name, f"no audio ({audio.relative_to(root) if audio.is_relative_to(root) else audio})"))
            continue
        times, hz = read_f0_csv(f0_file)
        clip = Clip(name, audio, times, hz, note)
        if clip.voiced_frames < MIN_VOICED:
            rows = sum(1 for line in open(f0_file) if line.strip())
            skipped.append((name, f"F0 file has {rows} rows, {clip.voiced_frames} voiced (truncated fixture): "
                                  f"not a reference (< {MIN_VOICED} voiced frames)"))
            continue
        clips.append(clip)
    return clips, skipped


def score(clips, tracks) -> dict:
    """Raw pitch / chroma accuracy (50 cents) pooled over the reference voiced frames of `clips`, with the project's
    pitch metric (`train/metrics/pitch`, mir_eval.melody), one "song" per clip, pooled frame-weighted here.

    `tracks[clip.name]` = {"times", "pitch_hz"}: the model's pitch on every frame (0 where it has none). Voicing is
    not compared (every frame passed as voiced): these two scores do not depend on it."""
    from svu.train.evaluation import load_metric

    predictions = []
    for clip in clips:
        times = np.asarray(tracks[clip.name]["times"], float)
        pitch = np.abs(np.asarray(tracks[clip.name]["pitch_hz"], float))
        predictions.append(np.stack([times, pitch, np.ones_like(times)], 1).tolist())
    references = [np.stack([clip.ref_times, clip.ref_hz], 1).tolist() for clip in clips]
    result = load_metric("pitch").compute(predictions=predictions, references=references,
                                          song_ids=[clip.name for clip in clips], cent_tolerance=CENT_TOLERANCE)
    per_clip = {row["song_id"]: row for row in result["per_song"]}
    voiced = sum(row["num_reference_voiced_frames"] for row in per_clip.values())
    pooled = {name: sum(row[name] * row["num_reference_voiced_frames"] for row in per_clip.values()) / voiced
              for name in ("raw_pitch_accuracy", "raw_chroma_accuracy")}
    return {**pooled, "voiced_frames": voiced, "per_clip": per_clip}


def read_mono(path: Path):
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    return np.ascontiguousarray(audio.mean(axis=1)), rate


def svu_tracks(model_dir, clips, repeats: int):
    """({name: track}, {name: best seconds}) of the SVU pitch model, timed like the peers (file samples in, Hz out),
    through the project's own inference path (`long_audio.pitch_array`: windows, stitching, decoding)."""
    from svu.modeling_svu import SVUForPitchEstimation
    from svu.modeling_svu.long_audio import pitch_array

    model = SVUForPitchEstimation.from_pretrained(model_dir).eval()
    rate = model.config.sampling_rate

    def estimate(audio, file_rate):
        audio = soxr.resample(audio, file_rate, rate) if file_rate != rate else audio
        decoded = pitch_array(model, audio, progress=False)
        return decoded["times"], decoded["pitch_hz"], decoded["voicing"]

    loaded = [(clip.name, *read_mono(clip.audio)) for clip in clips]
    estimate(*loaded[0][1:])  # warm-up, as for the peers
    tracks, seconds = {}, {}
    for name, audio, file_rate in loaded:
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            times, pitch_hz, voicing = estimate(audio, file_rate)
            best = min(best, time.perf_counter() - start)
        tracks[name] = {"times": np.asarray(times).tolist(), "pitch_hz": np.asarray(pitch_hz).tolist(),
                        "confidence": np.asarray(voicing).tolist()}
        seconds[name] = best
    return tracks, seconds


def tiny_untrained_model(folder: Path) -> Path:
    """Smoke mode: a random tiny SVUForPitchEstimation (exercises loading, decoding, scoring; accuracy is chance)."""
    from svu.modeling_svu import SVUForPitchEstimation, tiny_backbone_config

    torch.manual_seed(0)
    SVUForPitchEstimation.from_backbone(tiny_backbone_config("wav2vec2")).save_pretrained(folder)
    return folder


def base_size_model(folder: Path) -> Path:
    """SVUForPitchEstimation on a random wav2vec2-base-size backbone (768 hidden, 12 layers): for speed only."""
    from svu.modeling_svu import SVUForPitchEstimation

    from .common import backbone_config

    torch.manual_seed(0)
    SVUForPitchEstimation.from_backbone(backbone_config(smoke=False)).save_pretrained(folder)
    return folder


def train_demo_model(out_dir: Path) -> Path:
    """Train the demo pitch model (`train/configs/demo_pitch.yaml`, synthetic corpus) as a user would; its exported
    folder (`out_dir/repo`). `out_dir/metrics.json` holds its scores on the synthetic test split."""
    cmd = ["accelerate", "launch", "--cpu", "--num_processes", "1", "--num_machines", "1", "--mixed_precision", "no",
           "--dynamo_backend", "no", str(REPO_ROOT / "train" / "run.py"), "--config", str(DEMO_CONFIG),
           "--output_dir", str(out_dir)]
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               OMP_NUM_THREADS=str(NUM_THREADS), TQDM_DISABLE="1")
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode
        raise RuntimeError(f"training {DEMO_CONFIG.name} failed: {tail}")
    return out_dir / "repo"


def peer_results(clips, smoke: bool, repeats: int, work: Path):
    """(peer results dict, or the reason they are missing)."""
    if not pitch_peers_env.is_installed():
        if smoke:
            return None, f"pitch-peers venv not installed ({pitch_peers_env.venv_dir()}); the full run installs it"
        reason = pitch_peers_env.install()
        if reason:
            return None, reason
    request = work / "peer_request.json"
    request.write_text(json.dumps({
        "clips": [{"name": c.name, "path": str(c.audio)} for c in clips],
        "peers": list(SMOKE_PEERS if smoke else PEERS), "repeats": repeats, "threads": NUM_THREADS,
    }))
    try:
        return pitch_peers_env.run_peers(request), ""
    except (RuntimeError, subprocess.TimeoutExpired, ValueError) as err:
        return None, str(err)


def run(smoke: bool, model=None) -> list:
    clips, skipped = find_clips()
    if not clips:
        raise RuntimeError(f"no scorable F0 reference under {EXAMPLES}")
    repeats = 1 if smoke else 3
    audio_seconds = sum(sf.info(c.audio).duration for c in clips)
    what = f"{len(clips)} clips, {audio_seconds:.1f} s of audio"
    trained = None
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if model is not None:
            model_dir, ours = Path(model), f"SVU pitch ({Path(model).name})"
        elif smoke:
            model_dir, ours = tiny_untrained_model(tmp / "svu"), "SVU pitch (tiny, untrained: smoke)"
        else:
            start = time.perf_counter()
            model_dir, ours = train_demo_model(tmp / "demo"), "SVU demo pitch"
            metrics = json.loads((tmp / "demo" / "metrics.json").read_text())
            trained = (time.perf_counter() - start, metrics.get("test", {}))
        results = {ours: dict(zip(("tracks", "seconds"), svu_tracks(model_dir, clips, repeats)))}
        if not smoke:  # the demo's backbone is tiny: SVU's speed at the size it is used at, accuracy meaningless
            base_seconds = svu_tracks(base_size_model(tmp / "base"), clips, repeats)[1]
        peers, reason = peer_results(clips, smoke, repeats, tmp)
    versions = {}
    if peers is not None:
        versions = peers.pop("versions", {})
        results.update(peers)

    rows = []
    if trained is not None:
        seconds, test = trained
        rows.append(Row(NAME, "demo pitch model: training time", seconds, unit="s",
                        note=f"{DEMO_CONFIG.name}, synthetic corpus, accelerate launch --cpu, 1 process"))
        for metric in ("raw_pitch_accuracy", "raw_chroma_accuracy"):
            if metric in test:
                rows.append(Row(NAME, f"demo pitch model: {metric.replace('_', ' ')} on the synthetic test split",
                                test[metric], unit="", note="from the training run's metrics.json"))
    ours_rtf = sum(results[ours]["seconds"].values()) / audio_seconds
    if not smoke:
        base_rtf = sum(base_seconds.values()) / audio_seconds
        rows.append(Row(NAME, "RTF, SVU pitch at base size (random weights: speed only)", base_rtf, unit="",
                        note=f"wav2vec2-base geometry (94 M parameters), best of {repeats}; {what}"))
    for name, result in results.items():
        scores = score(clips, result["tracks"])
        rtf = sum(result["seconds"].values()) / audio_seconds
        note = f"{what}; {scores['voiced_frames']} voiced reference frames"
        for metric in ("raw_pitch_accuracy", "raw_chroma_accuracy"):
            per_clip = ", ".join(f"{clip.split(' ', 1)[-1]} {row[metric]:.3f}"
                                 for clip, row in scores["per_clip"].items())
            rows.append(Row(NAME, f"{metric.replace('_', ' ')}, {name}", scores[metric], unit="",
                            note=f"{note}; per clip: {per_clip}"))
        rows.append(Row(NAME, f"RTF, {name}", rtf, unit="", note=f"best of {repeats}, {NUM_THREADS} threads; {what}"))
        if name != ours:
            rows.append(Row(NAME, f"RTF ratio {name} / ours", rtf / ours_rtf, note="> 1: the peer is slower"))
            if not smoke:
                rows.append(Row(NAME, f"RTF ratio {name} / SVU pitch at base size", rtf / base_rtf,
                                note="> 1: the peer is slower"))
    if peers is None:
        rows.append(Row(NAME, "torchcrepe / PESTO peers", float("nan"), unit="", note=f"skipped: {reason}"))
    elif versions:
        listed = ", ".join(f"{k} {v}" for k, v in versions.items())
        rows.append(Row(NAME, "peer versions", float("nan"), unit="", note=listed))
    for name, why in skipped:
        rows.append(Row(NAME, f"clip skipped: {name}", float("nan"), unit="", note=why))
    for clip in clips:
        if clip.note:
            rows.append(Row(NAME, f"clip: {clip.name}", clip.voiced_frames, unit="",
                            note=f"voiced annotation rows; {clip.note}"))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="A trained SVUForPitchEstimation folder (default: train the demo model).")
    parser.add_argument("--smoke", action="store_true", help="Untrained tiny model; peers only if their venv exists.")
    parser.add_argument("--json", help="Also write the rows to this JSON file.")
    args = parser.parse_args(argv)
    setup_torch()
    rows = run(args.smoke, model=args.model)
    print(f"Machine: {machine()}\n")
    print(format_table(rows))
    if args.json:
        results = {"machine": machine(), "smoke": args.smoke, "rows": [asdict(r) for r in rows]}
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    sys.exit(main())
