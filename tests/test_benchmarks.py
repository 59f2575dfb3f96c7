"""The benchmark runner runs end to end in smoke mode (tiny sizes, no timing assertions)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXPECTED_METRICS = {
    "forward_overhead": ["SVU / bare backbone (output_hidden_states)", "SVU / HF Wav2Vec2ForSequenceClassification (weighted layer sum)"],
    "stage1_cache": ["stage-1 epoch: recompute / cached", "max |diff| layer weights + head after stage 1"],
    "lora_memory": ["peak RSS: LoRA / full", "trainable params: LoRA / full stage 2"],
    "long_audio": ["time per audio-second: 20 s / 5 s", "peak RSS: 20 s / 5 s"],
    "transcription_rtf": [
        "RTF fp32, batch 1", "RTF fp32, batch 8", "RTF bf16 autocast, batch 8", "RTF int8 dynamic (Linear), batch 8",
        "forward time: inference_mode / no_grad",
    ],
    "whole_process": ["RTF svu transcribe, fp32", "RTF svu transcribe, pruned 2 layers + onnx int8",
                      "1 s file: nano onnx int8, after"],
    "data_throughput": [
        "raw FFmpeg decode + resample, 1 process (hours of audio per minute)",
        "prepare --num-proc 2 (hours of audio per minute)", "loader, 2 workers (5 s chunks per second)",
    ],
    "pitch_peers": ["RTF, SVU pitch (tiny, untrained: smoke)"],
    "catalogue": ["files/s, one process", "files/s, two processes (accelerate launch)",
                  "files/s, one process, windows of 4 files per batch"],
    "distill": ["nano: parameters / teacher's", "nano fp32: RTF / teacher fp32 RTF", "nano onnx int8: RTF / teacher fp32 RTF"],
}


@pytest.mark.timeout(480)
def test_benchmark_runner_smoke_mode_end_to_end(tmp_path):
    out = tmp_path / "results.json"
    env = dict(os.environ, OMP_NUM_THREADS="2", HF_HUB_OFFLINE="1", SVU_BENCH_CACHE=str(tmp_path / "bench-cache"))
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--smoke", "--json", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=470,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]

    results = json.loads(out.read_text())
    assert results["smoke"] is True
    rows = {(r["benchmark"], r["metric"]): r for r in results["rows"]}
    assert not [key for key in rows if key[1] == "FAILED"], proc.stdout
    for benchmark, metrics in EXPECTED_METRICS.items():
        for metric in metrics:
            row = rows.get((benchmark, metric))
            assert row is not None, f"missing row {benchmark}: {metric}"
            assert row["value"] == row["value"] and row["value"] > 0, row  # a real (not NaN) positive measurement
            assert f"| {benchmark} | {metric} |" in proc.stdout  # and printed in the table
            assert row["met"] is None, "smoke mode must not check goals"
    # basic-pitch is not installed in a fresh cache: the peer row says it was skipped, and why
    peer = rows[("transcription_rtf", "basic-pitch peer")]
    assert peer["note"].startswith("skipped:")
    assert rows[("pitch_peers", "torchcrepe / PESTO peers")]["note"].startswith("skipped: pitch-peers venv not installed")
    # not a timing: the cached stage 1 is exact
    assert rows[("stage1_cache", "max |diff| layer weights + head after stage 1")]["value"] <= 1e-5


def test_gpu_check_on_a_cpu_machine_is_one_line_and_exit_0():
    import torch

    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines() == [f"gpu_check: no CUDA GPU on this machine (torch {torch.__version__}); nothing to check."]


@pytest.mark.timeout(480)
def test_gpu_check_measures_on_the_cpu_when_allowed():
    """The measurement the GPU run makes, run here on the CPU: every place is `cpu`, every rate a positive number."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--allow-cpu", "--only", "technique"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=470)
    assert proc.returncode == 0, proc.stderr[-3000:]
    row = [line for line in proc.stdout.splitlines() if line.startswith("| demo_technique.yaml |")]
    assert len(row) == 1, proc.stdout
    cells = [cell.strip() for cell in row[0].strip("|").split("|")]
    assert cells[1:5] == ["cpu", "cpu", "cpu (cached)", "cpu"]
    stage1, stage2 = (float(rate) for rate in cells[5].split(" / "))
    assert stage1 > stage2 > 0 and float(cells[6]) > 0  # the cached stage 1 skips the backbone
    assert cells[7] == "-"
