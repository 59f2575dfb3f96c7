"""Transcription real-time factor on 2 CPU cores: batching, grad mode, bf16 and int8 — and basic-pitch as the peer.

RTF = processing seconds / audio seconds (lower is faster). The SVU model is base size with random backbone
weights; its layer weights and head are first fitted for a few hundred steps on synthetic melodies through the
fp16 frame cache (`train/feature_cache.build_frame_cache`), so its outputs are decisive like a trained model's
and the agreement of the faster options with fp32 means something. Every option transcribes the same synthetic
melody (`modeling_svu.long_audio.transcribe_array`: 5 s windows, 1 s overlap); its notes are compared with fp32's
(COnPOff F1, mir_eval) and with the melody's true notes (COnP F1). basic-pitch runs on the same wav.
"""

import copy
import tempfile
import warnings
from pathlib import Path

import datasets
import mir_eval
import numpy as np
import soundfile as sf
import torch

from svu.modeling_svu import SVUForNoteTranscription
from svu.modeling_svu.long_audio import transcribe_array
from svu.modeling_svu.note_labels import notes_to_frame_targets
from svu.train.feature_cache import build_frame_cache

from . import basic_pitch_peer
from .common import SR, Row, backbone_config, interleaved_best, random_audio, timed

NAME = "transcription_rtf"


def melody(seconds: float, seed: int):
    """A sung-like melody: (float32 audio, [(onset, offset, midi), ...]) with integer MIDI pitches 48-76."""
    rng = np.random.default_rng(seed)
    audio = np.zeros(int(seconds * SR), dtype=np.float64)
    notes, t = [], 0.1
    while True:
        duration, gap = rng.uniform(0.25, 0.8), rng.uniform(0.0, 0.15)
        if t + duration > seconds - 0.05:
            break
        midi = int(rng.integers(48, 77))
        start, stop = int(t * SR), int((t + duration) * SR)
        n = np.arange(stop - start) / SR
        f0 = 440 * 2 ** ((midi - 69) / 12) * 2 ** (20 / 1200 * np.sin(2 * np.pi * 5.5 * n))
        phase = 2 * np.pi * np.cumsum(f0) / SR
        envelope = np.minimum(1.0, np.minimum(n / 0.02, (n[-1] - n) / 0.03 + 1e-3))
        audio[start:stop] += envelope * sum(np.sin(k * phase) / k for k in range(1, 6))
        notes.append((t, t + duration, midi))
        t += duration + gap
    audio += 0.003 * rng.standard_normal(len(audio))
    return (0.4 * audio / np.abs(audio).max()).astype(np.float32), notes


def fit_head(model, num_chunks: int, steps: int, cache_dir: str):
    """Stage-1 fit of layer weights + head on cached frame features of synthetic 5 s melodies."""
    chunks = [melody(5.0, seed=1000 + i) for i in range(num_chunks)]
    return fit_frame_head(model, [a for a, _ in chunks], lambda frames: [notes_to_frame_targets(n, frames) for _, n in chunks],
                          model.transcription_loss, steps, cache_dir)


def fit_frame_head(model, waves, targets_of, loss, steps: int, cache_dir: str):
    """Stage-1 fit of layer weights + head on cached frame features of equal-length `waves`: `targets_of(frames)`
    gives each wave's frame targets, `loss(logits, targets, frame_mask)` is the model's task loss."""
    dataset = datasets.Dataset.from_dict(
        {"audio": [{"array": a, "sampling_rate": SR} for a in waves]},
        features=datasets.Features({"audio": datasets.Audio(sampling_rate=SR)}),
    )
    states = build_frame_cache(model, dataset, cache_dir)
    targets = torch.from_numpy(np.stack(targets_of(states.shape[2])))
    mask = torch.ones(targets.shape[:2], dtype=torch.bool)
    model.set_stage(1)
    model.train()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        rows = torch.randperm(len(waves), generator=generator)[:8].sort().values.numpy()
        hidden = torch.from_numpy(np.asarray(states[rows])).float().unbind(1)
        logits = model.head(model.layer_sum(hidden))
        loss(logits, targets[rows], mask[rows]).backward()
        optimizer.step()
        optimizer.zero_grad()
    return model.eval()


def f1(reference, estimate, offset_ratio):
    if not reference or not estimate:
        return float(len(reference) == len(estimate))
    as_arrays = lambda notes: (np.array([[n[0], n[1]] for n in notes]), np.array([440 * 2 ** ((n[2] - 69) / 12) for n in notes]))
    (ri, rp), (ei, ep) = as_arrays(reference), as_arrays(estimate)
    return mir_eval.transcription.precision_recall_f1_overlap(ri, rp, ei, ep, offset_ratio=offset_ratio)[2]


def run(smoke: bool) -> list:
    warnings.simplefilter("ignore")  # torch.ao.quantization deprecation notices
    seconds, repeats = (8.0, 1) if smoke else (30.0, 1)
    torch.manual_seed(0)
    model = SVUForNoteTranscription.from_backbone(backbone_config(smoke))
    with tempfile.TemporaryDirectory() as tmp:
        fit_head(model, *((4, 20) if smoke else (16, 150)), tmp)
        audio, truth = melody(seconds, seed=0)
        wav = Path(tmp) / "melody.wav"
        sf.write(wav, audio, SR)

        int8 = torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8)
        options = {
            "fp32, batch 1": (model, 1, None),
            "fp32, batch 8": (model, 8, None),
            "bf16 autocast, batch 8": (model, 8, torch.bfloat16),
            "int8 dynamic (Linear), batch 8": (int8, 8, None),
        }

        def transcriber(m, batch, dtype):
            def go():
                with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
                    return transcribe_array(m, audio, batch_size=batch, progress=False)
            return go

        results = {}
        for name, option in options.items():
            go = transcriber(*option)
            notes, _ = timed(go)  # warm-up; also the notes
            results[name] = (notes, min(timed(go)[1] for _ in range(repeats)) / seconds)

        batch = random_audio(5.0, 8)

        def forward_with(context):
            def go():
                with context():
                    model(batch)
            return go

        grad_modes = interleaved_best({"no_grad": forward_with(torch.no_grad), "inference": forward_with(torch.inference_mode)}, repeats + 1)

        peer = None
        if not basic_pitch_peer.is_installed() and not smoke:
            reason = basic_pitch_peer.install()
            if reason:
                peer = reason
        if basic_pitch_peer.is_installed():
            try:
                out = basic_pitch_peer.transcribe([wav])[0]
                peer = ([tuple(n) for n in out["notes"]], out["seconds"] / seconds)
            except RuntimeError as err:
                peer = str(err)
        elif peer is None:
            peer = "basic-pitch not installed (the full run installs it into its own venv)"

    size = "tiny" if smoke else "base"
    fp32_notes, fp32_rtf = results["fp32, batch 8"]
    rows = []
    for name, (notes, rtf) in results.items():
        rows.append(Row(NAME, f"RTF {name}", rtf, unit="",
                        note=f"{size}, {seconds:g} s melody; {fp32_rtf / rtf:.2f}x vs fp32 batch 8; COnP F1 vs truth {f1(truth, notes, None):.3f}"))
        if name.startswith(("bf16", "int8")):
            rows.append(Row(NAME, f"notes agree with fp32 (COnPOff F1): {name}", f1(fp32_notes, notes, 0.2), unit="",
                            note=f"{len(notes)} vs {len(fp32_notes)} notes"))
    rows.append(Row(NAME, "forward time: inference_mode / no_grad", grad_modes["inference"] / grad_modes["no_grad"], note=f"{size}, batch 8 x 5 s"))
    if isinstance(peer, tuple):
        best = min(rtf for _, rtf in results.values())
        rows.append(Row(NAME, "RTF basic-pitch 0.4 (onnxruntime)", peer[1], unit="",
                        note=f"COnP F1 vs truth {f1(truth, peer[0], None):.3f}; {len(peer[0])} notes"))
        rows.append(Row(NAME, "best SVU RTF / basic-pitch RTF", best / peer[1], note=f"SVU: {sum(p.numel() for p in model.parameters()):,} parameters; basic-pitch: < 20k (its paper)"))
    else:
        rows.append(Row(NAME, "basic-pitch peer", float("nan"), unit="", note=f"skipped: {peer}"))
    return rows
