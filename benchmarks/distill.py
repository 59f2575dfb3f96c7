"""Distilled students against their teacher (and basic-pitch): speed and agreement, measured in one run.

The teacher is a base-size transcription model (768 hidden, 12 layers, random backbone) whose layer weights and head
are fitted on synthetic melodies as in `transcription_rtf` (so its outputs are decisive); `svu distill`'s training
function (`train.distill.distill`) distils it into students of several sizes on a folder of other synthetic
melodies, a quarter of them held out. Per student: its agreement with the teacher on the held-out melodies
(COnPOff F1 of its notes against the teacher's, the issue's goal >= 0.90; frame note agreement), its parameters, and
the real-time factor of transcribing one longer melody (`long_audio.transcribe_array`, 5 s windows, batch 8) with
the torch engine and with ONNX Runtime int8, each as a ratio to the teacher's fp32 and, when the basic-pitch venv is
installed (`transcription_rtf`'s full run installs it), to basic-pitch on the same wav.
"""

import tempfile
import warnings
from pathlib import Path

import soundfile as sf
import torch

from svu.modeling_svu import SVUForNoteTranscription
from svu.modeling_svu.long_audio import transcribe_array

from . import basic_pitch_peer
from .common import SR, Row, backbone_config, check, timed
from .transcription_rtf import fit_head, melody

NAME = "distill"


def engine_rtf(model, audio, seconds: float, engine=None) -> float:
    def go():
        return transcribe_array(model, audio, batch_size=8, progress=False, engine=engine)

    timed(go)  # warm-up (and the ONNX export)
    return timed(go)[1] / seconds


def run(smoke: bool) -> list:
    from svu.modeling_svu.engines import load_engine
    from svu.train.distill import DistillConfig, distill

    warnings.simplefilter("ignore")
    sizes = ("nano",) if smoke else ("tiny", "small")
    num_songs, song_seconds, test_seconds, epochs = (4, 5.0, 8.0, 2) if smoke else (24, 10.0, 30.0, 30)
    torch.manual_seed(0)
    teacher = SVUForNoteTranscription.from_backbone(backbone_config(smoke))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        fit_head(teacher, *((4, 20) if smoke else (16, 150)), str(tmp / "frames"))
        teacher.save_pretrained(tmp / "teacher")
        (tmp / "songs").mkdir()
        for i in range(num_songs):
            sf.write(tmp / "songs" / f"melody{i:02d}.wav", melody(song_seconds, seed=2000 + i)[0], SR)
        audio, _ = melody(test_seconds, seed=0)
        sf.write(tmp / "test.wav", audio, SR)
        teacher_rtf = engine_rtf(teacher, audio, test_seconds)
        peer = None
        if basic_pitch_peer.is_installed():
            try:
                peer = basic_pitch_peer.transcribe([tmp / "test.wav"])[0]["seconds"] / test_seconds
            except RuntimeError:
                peer = None
        for size in sizes:
            record = distill(DistillConfig(
                teacher=str(tmp / "teacher"), audio=str(tmp / "songs"), student=size, output_dir=str(tmp / size),
                epochs=epochs, lr=3e-3, held_out=0.25, cache_dir=str(tmp / "cache"),
            ))  # fmt: skip
            student = SVUForNoteTranscription.from_pretrained(tmp / size).eval()
            agreement = record["agreement"]
            note = f"{record['held_out_chunks']} held-out chunks, {record['epochs']} epochs on {record['training_seconds']:g} s"
            f1 = agreement["COnPOff_f1"] if agreement["COnPOff_f1"] is not None else float("nan")
            rows.append(Row(NAME, f"{size}: notes agree with the teacher (COnPOff F1)", f1, unit="", goal=">= 0.90",
                            met=check(f1, ">= 0.90", smoke),
                            note=f"{note}; undistilled {agreement_text(record['agreement_undistilled']['COnPOff_f1'])}"))
            rows.append(Row(NAME, f"{size}: frame note agreement", agreement["frame_note_accuracy_vs_teacher"], unit="",
                            note=f"undistilled {record['agreement_undistilled']['frame_note_accuracy_vs_teacher']:.3f}"))
            rows.append(Row(NAME, f"{size}: parameters / teacher's", record["student_parameters"] / record["teacher_parameters"],
                            note=f"{record['student_parameters']:,} vs {record['teacher_parameters']:,}"))
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
    if peer is None:
        rows.append(Row(NAME, "basic-pitch peer", float("nan"), unit="",
                        note="skipped: basic-pitch venv not installed (the full transcription_rtf run installs it)"))
    return rows


def agreement_text(value) -> str:
    return "-" if value is None else f"{value:.3f}"
