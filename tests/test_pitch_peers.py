"""The pitch peers benchmark (benchmarks/pitch_peers.py): its clips, its scoring, and its table end to end.

The torchcrepe/PESTO part needs their venv (`benchmarks/pitch_peers_env.py`, created by a full benchmark run in
`$SVU_BENCH_CACHE` or ~/.cache/svu-benchmarks); where it is absent the end-to-end test checks that the table says
so, and still checks SVU's rows.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from benchmarks import pitch_peers_env
from benchmarks.pitch_peers import find_clips, score

from data_fixtures import constant_pitch_model

REPO = Path(__file__).resolve().parents[1]


def shifted(clips, cents):
    return {c.name: {"times": c.ref_times, "pitch_hz": c.ref_hz * 2 ** (cents / 1200)} for c in clips}


def test_real_clips_found_and_the_truncated_medleydb_f0_reported():
    clips, skipped = find_clips()
    names = {c.name: c for c in clips}
    assert {"DCS DCS_LI_QuartetB_Take04_A2_LRX", "DCS DCS_LI_QuartetB_Take04_B2_LRX"} <= set(names)
    # B2's larynx-mic recording is not in the fixture: its manual F0 is scored on the dynamic-mic track, and said so
    assert names["DCS DCS_LI_QuartetB_Take04_B2_LRX"].audio.name == "DCS_LI_QuartetB_Take04_B2_DYN.wav"
    assert "LRX" in names["DCS DCS_LI_QuartetB_Take04_B2_LRX"].note
    assert all(c.voiced_frames >= 3 for c in clips)
    reasons = dict(skipped)
    assert "2 rows, 1 voiced" in reasons["MedleyDB-Pitch AClassicEducation_NightOwl_STEM_08"]


def test_vocadito_excerpts_in_mirdata_layout_are_found_and_a_missing_audio_reported(tmp_path):
    root = tmp_path / "vocadito"
    (root / "Audio").mkdir(parents=True)
    (root / "Annotations" / "F0").mkdir(parents=True)
    sf.write(root / "Audio" / "vocadito_7.wav", np.zeros(44100, np.float32), 44100)
    rows = "".join(f"{i * 256 / 44100:.6f},{0.0 if i < 10 else 220.0}\r\n" for i in range(100))  # CRLF, as vocadito
    (root / "Annotations" / "F0" / "vocadito_7_f0.csv").write_text(rows)
    (root / "Annotations" / "F0" / "vocadito_9_f0.csv").write_text(rows)  # its audio is missing
    clips, skipped = find_clips(tmp_path)
    assert [c.name for c in clips] == ["vocadito vocadito_7"]
    assert clips[0].voiced_frames == 90 and clips[0].ref_hz[10] == 220.0
    assert [name for name, _ in skipped] == ["vocadito vocadito_9"] and "no audio" in skipped[0][1]


def test_scoring_is_mir_eval_raw_pitch_and_chroma_at_50_cents():
    clips, _ = find_clips()
    exact = score(clips, shifted(clips, 0))
    assert exact["raw_pitch_accuracy"] == 1.0 and exact["raw_chroma_accuracy"] == 1.0
    assert exact["voiced_frames"] == sum(c.voiced_frames for c in clips)  # no frame added by resampling
    for cents in (30, -45):
        assert score(clips, shifted(clips, cents))["raw_pitch_accuracy"] == 1.0
    off = score(clips, shifted(clips, 70))
    assert off["raw_pitch_accuracy"] == 0.0 and off["raw_chroma_accuracy"] == 0.0
    octave = score(clips, shifted(clips, -1200))
    assert octave["raw_pitch_accuracy"] == 0.0 and octave["raw_chroma_accuracy"] == 1.0
    # one clip right, the others an octave off: pooled over frames
    first = clips[0].name
    mixed = {**shifted(clips, 1200), first: shifted(clips, 0)[first]}
    pooled = score(clips, mixed)
    share = score(clips[:1], shifted(clips, 0))["voiced_frames"] / exact["voiced_frames"]
    assert pooled["raw_pitch_accuracy"] == pytest.approx(share) and pooled["raw_chroma_accuracy"] == 1.0


@pytest.mark.timeout(600)
def test_pitch_peers_table_end_to_end_on_a_model_with_known_answers(tmp_path):
    """`python -m benchmarks.pitch_peers --smoke --model M` on a model that sings the alto's E4 (321 Hz) on every
    frame: all right on the alto clip, all wrong on the bass clip, so its rows must equal that constant scored on
    the references directly (model loading, frame times, decoding and scoring all checked). Peers run if their
    venv exists."""
    clips, _ = find_clips()
    by_name = {c.name: c for c in clips}
    alto = by_name["DCS DCS_LI_QuartetB_Take04_A2_LRX"]
    model = tmp_path / "constant"
    hz = constant_pitch_model(model, 321.0)
    assert abs(1200 * np.log2(hz / 321.0)) <= 10  # the centre of a 20-cent bin
    expected = score(clips, {c.name: {"times": c.ref_times, "pitch_hz": np.full(len(c.ref_hz), hz)} for c in clips})
    assert 0 < expected["raw_pitch_accuracy"] < 1 and expected["raw_chroma_accuracy"] < 1
    assert score([alto], {alto.name: {"times": alto.ref_times, "pitch_hz": np.full(len(alto.ref_hz), hz)}})["raw_pitch_accuracy"] == 1

    out = tmp_path / "rows.json"
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="2", HF_HUB_OFFLINE="1", TQDM_DISABLE="1")
    proc = subprocess.run([sys.executable, "-m", "benchmarks.pitch_peers", "--smoke", "--model", str(model),
                           "--json", str(out)], cwd=REPO, env=env, capture_output=True, text=True, timeout=590)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {r["metric"]: r for r in json.loads(out.read_text())["rows"]}
    ours = "SVU pitch (constant)"
    assert rows[f"raw pitch accuracy, {ours}"]["value"] == pytest.approx(expected["raw_pitch_accuracy"])
    assert rows[f"raw chroma accuracy, {ours}"]["value"] == pytest.approx(expected["raw_chroma_accuracy"])
    assert rows[f"RTF, {ours}"]["value"] > 0
    assert f"| pitch_peers | raw pitch accuracy, {ours} |" in proc.stdout  # printed in the table
    assert "clip skipped: MedleyDB-Pitch AClassicEducation_NightOwl_STEM_08" in rows
    if pitch_peers_env.is_installed():
        for peer in ("torchcrepe tiny", "PESTO mir-1k_g7"):
            # both are real F0 estimators: on these clean solo voices they get most frames within 50 cents
            assert rows[f"raw pitch accuracy, {peer}"]["value"] >= 0.5, rows
            assert rows[f"RTF ratio {peer} / ours"]["value"] > 0
    else:
        assert rows["torchcrepe / PESTO peers"]["note"].startswith("skipped: pitch-peers venv not installed")
