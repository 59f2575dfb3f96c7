"""Data preparation on all cores and the training loader's throughput (issue 16).

prep   `prepare("vocalset", ..., num_proc=N)` for N = 1, 2 on a VocalSet-layout tree of 44.1 kHz wav files written
       here, as hours of audio prepared per minute, beside the raw FFmpeg decode rate of the same files
       (`load_audio`: decode + resample to 16 kHz, one process: the limit of one core; N cores can at best reach
       N times it).
loader `train.data.make_dataloader` + `AudioCollator` (decode of the stored WAV bytes, feature extractor,
       padding) over prepared 5 s chunks (synthetic singer ID), batch 8, for 0, 1 and 2 workers, in 5 s chunks per
       second; beside the rate at which one modern GPU consumes them in a base-size bf16 forward + backward
       (an estimate, derived in `GPU_CHUNKS_PER_SECOND`).
"""

import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from svu.dataset_scripts.audio import load_audio
from svu.dataset_scripts.prepare import load_prepared, prepare
from svu.modeling_svu import SVUForSingerID
from svu.train.data import AudioCollator, make_dataloader

from .common import SR, Row
from .transcription_rtf import melody

NAME = "data_throughput"
FILE_RATE = 44100
# Base wav2vec2 (94.4 M parameters) on one 5 s chunk: 249 frames, so a forward costs about 2 x 94.4 M x 249
# = 47 GFLOP (the CNN encoder, ~4 GFLOP more per 5 s, is frozen: forward only) and forward + backward about 3x
# that, ~145 GFLOP. An NVIDIA A100 gives 312 TFLOP/s dense bf16 (its datasheet); at a typical 40 % model FLOP
# utilisation that is 125 TFLOP/s, i.e. ~860 chunks/s. An H100 SXM (989 TFLOP/s bf16 dense) at 40 %: ~2,700/s.
GPU_CHUNKS_PER_SECOND = 860
GPU_SOURCE = "A100 bf16 fwd+bwd estimate: 312 TFLOP/s x 40 % MFU / (3 x 2 x 94.4 M params x 249 frames)"


def write_vocalset_tree(root: Path, count: int, seconds: float) -> float:
    """`count` 44.1 kHz wav files under FULL/<singer>/long_tones/straight/; returns the audio hours written."""
    singers = ("female1", "female2", "female9")  # train, test, validation
    for i in range(count):
        singer = singers[i % len(singers)]
        audio, _ = melody(seconds, seed=500 + i)
        path = root / "FULL" / singer / "long_tones" / "straight" / f"f{singer[6:]}_straight_{i:03d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, soxr.resample(audio, SR, FILE_RATE).astype(np.float32), FILE_RATE, subtype="PCM_16")
    return count * seconds / 3600


def prep_rows(tmp: Path, smoke: bool) -> list:
    count, seconds = (3, 4.0) if smoke else (48, 30.0)
    data_dir = tmp / "VocalSet"
    hours = write_vocalset_tree(data_dir, count, seconds)
    start = time.perf_counter()
    for path in sorted(data_dir.rglob("*.wav")):
        load_audio(path)
    decode_minutes = (time.perf_counter() - start) / 60
    rows = [Row(NAME, "raw FFmpeg decode + resample, 1 process (hours of audio per minute)", hours / decode_minutes,
                unit="", note=f"{count} x {seconds:g} s wav, 44.1 kHz -> 16 kHz")]
    rates = {}
    for n in (1, 2):
        start = time.perf_counter()
        prepare("vocalset", tmp / f"prepared{n}", data_dir=data_dir, num_proc=n, force=True)
        rates[n] = hours / ((time.perf_counter() - start) / 60)
        rows.append(Row(NAME, f"prepare --num-proc {n} (hours of audio per minute)", rates[n], unit="",
                        note=f"{rates[n] * decode_minutes / hours:.2f}x the 1-process decode rate"))
    same = all(a.data.table.equals(b.data.table) for a, b in zip(load_prepared(tmp / "prepared1")[0].values(),
                                                                  load_prepared(tmp / "prepared2")[0].values()))
    rows.append(Row(NAME, "prepare speed-up --num-proc 2 / 1", rates[2] / rates[1], note=f"identical datasets: {same}"))
    return rows


def loader_rows(tmp: Path, smoke: bool) -> list:
    data = prepare("synthetic", tmp / "chunks", task="singer_id",
                   **({"num_singers": 2, "recordings_per_singer": 3} if smoke else {}), num_proc=2)
    rows_ = data["train"]
    collate = AudioCollator(SVUForSingerID.from_backbone("tiny-wav2vec2", id2label={0: "a"}).feature_extractor(), "singer_id")
    epochs = 1 if smoke else 10  # enough batches that worker start-up does not dominate
    rows = []
    for workers in (0, 1, 2):
        loader = make_dataloader(rows_, ["audio", "label"], collate, batch_size=8, seed=0, num_workers=workers)
        start, chunks = time.perf_counter(), 0
        for epoch in range(epochs):
            loader.sampler.set_epoch(epoch) if hasattr(loader.sampler, "set_epoch") else None
            for batch in loader:
                chunks += len(batch["labels"])
        rate = chunks / (time.perf_counter() - start)
        rows.append(Row(NAME, f"loader, {workers} workers (5 s chunks per second)", rate, unit="",
                        note=f"{rate / GPU_CHUNKS_PER_SECOND:.2f}x one GPU's consumption; {chunks} chunks, worker start-up included"))
    rows.append(Row(NAME, "GPU consumption, base model bf16 forward + backward (5 s chunks per second)",
                    GPU_CHUNKS_PER_SECOND, unit="", note=GPU_SOURCE))
    return rows


def run(smoke: bool) -> list:
    with tempfile.TemporaryDirectory() as tmp:
        return prep_rows(Path(tmp), smoke) + loader_rows(Path(tmp), smoke)
