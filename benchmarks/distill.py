"""Distilled students against their teacher (and basic-pitch): agreement for every goal of the issue, and speed.

The teachers are base-size models (768 hidden, 12 layers, random backbone) whose layer weights and head are fitted
on synthetic data (`transcription_rtf.fit_frame_head`; pooled features for classification), so their outputs are
decisive: note transcription on melodies (`transcription_rtf.melody`), F0 on sung pitch-corpus songs and technique
classification on 2 s clips (`dataset_scripts.synthetic`). `svu distill`'s training function
(`train.distill.distill`) distils each into students on a folder of other synthetic recordings, a quarter of them
held out. Per student: its agreement with the teacher on the held-out recordings, distilled and undistilled (the
issue's goals: COnPOff F1 of its notes against the teacher's >= 0.90, raw pitch accuracy against the teacher's F0
>= 0.95, label agreement >= 0.95), and for transcription its parameters and the real-time factor of transcribing
one longer melody (`long_audio.transcribe_array`, 5 s windows, batch 8) with the torch engine and with ONNX Runtime
int8, each as a ratio to the teacher's fp32 and, when the basic-pitch venv is installed (`transcription_rtf`'s full
run installs it), to basic-pitch on the same wav.
"""

import tempfile
import warnings
from pathlib import Path

import datasets
import numpy as np
import soundfile as sf
import torch

from svu.dataset_scripts.synthetic import TECHNIQUES, make_singers, pitch_melody, sing, technique_clip
from svu.modeling_svu import SVUForNoteTranscription, SVUForPitchEstimation, SVUForTechniqueClassification
from svu.modeling_svu.long_audio import transcribe_array
from svu.modeling_svu.pitch import frame_times, pitch_targets
from svu.train.feature_cache import POOLED_COLUMN, build_pooled_cache

from . import basic_pitch_peer
from .common import SR, Row, backbone_config, check, timed
from .transcription_rtf import fit_frame_head, fit_head, melody

NAME = "distill"
# 5 s chunks and steps of the full run's head fits: more than transcription_rtf's 16 x 150, for a teacher that is
# right about its notes (COnP F1 against the true notes 0.77 -> 0.90), as a fine-tuned one is; the student learns its
# decisions far faster than the arbitrary mistakes of an underfitted head.
TEACHER_FIT = (48, 300)
# The pitch teacher's fit, so that it is right about its F0 as a fine-tuned one is: raw pitch accuracy against the
# true F0 0.83 at TEACHER_FIT, 0.94 at this.
PITCH_TEACHER_FIT = (96, 1000)
# 192 recordings of 10 s per task, a quarter held out: 8 -> 32 min lifted notes from 0.87 to 0.92 (1,200 steps;
# agreement on the training audio 0.98, so the smaller set was learnt by heart).
NUM_SONGS = 192
STEPS = 1200  # of the full run: 25 epochs of the transcription and pitch audio


GOALS = {"transcription": ("notes agree with the teacher (COnPOff F1)", ">= 0.90", "frame_note_accuracy_vs_teacher"),
         "pitch": ("raw pitch accuracy vs the teacher's F0", ">= 0.95", "voicing_agreement"),
         "technique": ("label agreement with the teacher", ">= 0.95", None)}


def engine_rtf(model, audio, seconds: float, engine=None) -> float:
    def go():
        return transcribe_array(model, audio, batch_size=8, progress=False, engine=engine)

    timed(go)  # warm-up (and the ONNX export)
    return timed(go)[1] / seconds


def pitch_song(seconds: float, seed: int):
    rng = np.random.default_rng(seed)
    notes, vibrato, vowels = pitch_melody(rng, seconds, median_midi=float(rng.uniform(50, 66)))
    return sing(notes, seconds, seed=seed, vibrato=vibrato, glide_seconds=0.05, vowels=vowels)


def technique_clips(count: int, seconds: float, seed: int):
    """`count` clips of random techniques by random singers: (waves, technique indices)."""
    rng = np.random.default_rng(seed)
    singers = make_singers(6, seed=seed)
    labels = rng.integers(len(TECHNIQUES), size=count)
    waves = [technique_clip(singers[rng.integers(len(singers))], TECHNIQUES[k], seconds, rng).astype(np.float32) for k in labels]
    return waves, labels


def fit_pitch_teacher(model, num_chunks: int, steps: int, cache_dir: str):
    songs = [pitch_song(5.0, seed=1000 + i) for i in range(num_chunks)]

    def targets_of(frames):
        times = frame_times(frames, model.config)
        return [pitch_targets(song.f0_times, song.f0_hz, times, model.config) for song in songs]

    return fit_frame_head(model, [song.wave for song in songs], targets_of, model.pitch_loss, steps, cache_dir)


def fit_technique_teacher(model, num_clips: int, steps: int, cache_dir: str):
    """Stage-1 fit of layer weights + head on pooled features of synthetic technique clips."""
    waves, labels = technique_clips(num_clips, model.config.chunk_seconds, seed=1000)
    dataset = datasets.Dataset.from_dict(
        {"audio": [{"array": a, "sampling_rate": SR} for a in waves], "label": labels.tolist()},
        features=datasets.Features({"audio": datasets.Audio(sampling_rate=SR), "label": datasets.ClassLabel(names=list(TECHNIQUES))}),
    )
    pooled = torch.as_tensor(np.asarray(build_pooled_cache(model, dataset, cache_dir).with_format("numpy")[POOLED_COLUMN]))
    model.set_stage(1)
    model.train()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        rows = torch.randperm(num_clips, generator=generator)[:16]
        model.classify_pooled(pooled[rows], labels=torch.as_tensor(labels)[rows]).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return model.eval()


def write_songs(folder: Path, waves) -> Path:
    folder.mkdir()
    for i, wave in enumerate(waves):
        sf.write(folder / f"song{i:03d}.wav", wave, SR)
    return folder


def teachers(tmp: Path, smoke: bool):
    """(task, teacher repo, songs folder) of each task: a fitted base teacher (tiny in smoke mode) and `NUM_SONGS`
    unlabelled recordings it never saw, 10 s each (smoke: 3 of 4 s)."""
    num_songs, seconds = (3, 4.0) if smoke else (NUM_SONGS, 10.0)
    torch.manual_seed(0)
    transcriber = fit_head(SVUForNoteTranscription.from_backbone(backbone_config(smoke)), *((4, 20) if smoke else TEACHER_FIT),
                           str(tmp / "frames"))
    torch.manual_seed(0)
    pitch = fit_pitch_teacher(SVUForPitchEstimation.from_backbone(backbone_config(smoke)), *((2, 3) if smoke else PITCH_TEACHER_FIT),
                              str(tmp / "frames"))
    torch.manual_seed(0)
    technique = SVUForTechniqueClassification.from_backbone(
        backbone_config(smoke), id2label=dict(enumerate(TECHNIQUES)), chunk_seconds=2.0)
    fit_technique_teacher(technique, *((6, 3) if smoke else (96, 300)), str(tmp / "pooled"))
    found = []
    for name, model, waves in (
        ("transcription", transcriber, [melody(seconds, seed=2000 + i)[0] for i in range(num_songs)]),
        ("pitch", pitch, [pitch_song(seconds, seed=2000 + i).wave for i in range(num_songs)]),
        ("technique", technique, [np.concatenate(technique_clips(int(seconds / 2), 2.0, seed=2000 + i)[0]) for i in range(num_songs)]),
    ):  # fmt: skip
        model.save_pretrained(tmp / name)
        found.append((name, tmp / name, write_songs(tmp / f"{name}-songs", waves)))
    return transcriber, found


def agreement_rows(task: str, size: str, record: dict, steps: int, smoke: bool) -> list:
    metric, goal, second = GOALS[task]
    after, before = record["agreement"], record["agreement_undistilled"]
    value = after[record["headline"]] if after[record["headline"]] is not None else float("nan")
    note = (f"undistilled {agreement_text(before[record['headline']])}; {record['held_out_chunks']} held-out chunks, "
            f"{record['epochs']} epochs ({steps} steps) on {record['training_seconds']:g} s")
    rows = [Row(NAME, f"{task} {size}: {metric}", value, unit="", goal=goal, met=check(value, goal, smoke), note=note)]
    if second is not None:
        rows.append(Row(NAME, f"{task} {size}: {second.replace('_', ' ')}", after[second], unit="",
                        note=f"undistilled {agreement_text(before[second])}"))
    return rows


def run(smoke: bool) -> list:
    from svu.modeling_svu.engines import load_engine
    from svu.train.distill import DistillConfig, distill

    warnings.simplefilter("ignore")
    size = "nano" if smoke else "tiny"  # the smallest student of the speed goal
    steps = 1 if smoke else STEPS
    test_seconds = 5.0 if smoke else 30.0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        transcriber, found = teachers(tmp, smoke)
        audio, _ = melody(test_seconds, seed=0)
        sf.write(tmp / "test.wav", audio, SR)
        teacher_rtf = engine_rtf(transcriber, audio, test_seconds)
        peer = None
        if basic_pitch_peer.is_installed():
            try:
                peer = basic_pitch_peer.transcribe([tmp / "test.wav"])[0]["seconds"] / test_seconds
            except RuntimeError:
                peer = None
        for task, teacher, songs in found:
            record = distill(DistillConfig(
                teacher=str(teacher), audio=str(songs), student=size, output_dir=str(tmp / f"{task}-{size}"),
                epochs=1000, max_steps=steps, lr=3e-3, held_out=0.25, cache_dir=str(tmp / "cache"),
            ))  # fmt: skip
            rows += agreement_rows(task, size, record, steps, smoke)
            if task == "transcription":
                rows += speed_rows(size, record, tmp / f"{task}-{size}", audio, test_seconds, teacher_rtf, peer, smoke, load_engine)
    if peer is None:
        rows.append(Row(NAME, "basic-pitch peer", float("nan"), unit="",
                        note="skipped: basic-pitch venv not installed (the full transcription_rtf run installs it)"))
    return rows


def speed_rows(size, record, repo, audio, test_seconds, teacher_rtf, peer, smoke, load_engine) -> list:
    student = SVUForNoteTranscription.from_pretrained(repo).eval()
    rows = [Row(NAME, f"{size}: parameters / teacher's", record["student_parameters"] / record["teacher_parameters"],
                note=f"{record['student_parameters']:,} vs {record['teacher_parameters']:,}")]
    speeds = {"fp32": engine_rtf(student, audio, test_seconds)}
    try:
        speeds["onnx int8"] = engine_rtf(student, audio, test_seconds, load_engine(student, "onnx", int8=True))
    except ImportError as error:
        rows.append(Row(NAME, f"{size}: onnx int8", float("nan"), unit="", note=f"skipped: {error}"))
    for engine, rtf in speeds.items():
        rows.append(Row(NAME, f"{size} {engine}: RTF / teacher fp32 RTF", rtf / teacher_rtf,
                        note=f"RTF {rtf:.4f} vs {teacher_rtf:.4f}, {test_seconds:g} s melody"))
        if peer is not None:
            goal = "<= 0.5" if engine == "onnx int8" else "<= 1.0"
            rows.append(Row(NAME, f"{size} {engine}: RTF / basic-pitch RTF", rtf / peer, goal=goal,
                            met=check(rtf / peer, goal, smoke), note=f"basic-pitch RTF {peer:.4f}"))
    return rows


def agreement_text(value) -> str:
    return "-" if value is None else f"{value:.3f}"
