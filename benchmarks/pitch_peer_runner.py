"""Runs INSIDE the pitch-peers venv (see `pitch_peers_env.py`), never in the SVU environment: torchcrepe and
PESTO estimate the F0 of each clip, timed; the result goes to stdout as one JSON object.

    python pitch_peer_runner.py REQUEST.json   # {"clips": [{"name", "path"}], "peers": [...], "repeats": N, "threads": T}

It imports only the standard library, numpy, soundfile, torch and the peers (plus the local `torchaudio` shim on
PYTHONPATH), so it does not depend on the SVU package. Each peer gets the file's own samples and rate (mono mean)
and does its own resampling, as a user's call would; its model is loaded once, outside the timing, and warmed up
on the first clip. Time = the best of `repeats` calls per clip. Per frame it returns the pitch estimate (Hz, every
frame, for mir_eval's voicing-independent raw pitch/chroma accuracy) and the peer's own confidence.
"""

import json
import sys
import time

import numpy as np
import soundfile
import torch

CREPE_HOP_SECONDS = 0.01  # CREPE's and PESTO's standard 10 ms


def crepe(capacity):
    import torchcrepe

    def estimate(audio, rate):
        # CREPE's own decoding (local weighted average around the peak, as in its paper and as SVU's
        # decode_pitch); torchcrepe's default Viterbi smoothing would add a temporal model the others lack.
        f0, periodicity = torchcrepe.predict(
            torch.from_numpy(audio)[None], rate, hop_length=int(round(rate * CREPE_HOP_SECONDS)), model=capacity,
            decoder=torchcrepe.decode.weighted_argmax, return_periodicity=True, batch_size=512, device="cpu", pad=True,
        )
        times = np.arange(f0.shape[-1]) * CREPE_HOP_SECONDS  # pad=True: frame i is centred on i * hop
        return times, f0[0].numpy(), periodicity[0].numpy()

    return estimate


def pesto_model():
    import pesto

    models = {}

    def estimate(audio, rate):
        if rate not in models:  # PESTO builds its CQT for one sampling rate; loaded once per rate
            models[rate] = pesto.load_model("mir-1k_g7", step_size=CREPE_HOP_SECONDS * 1000, sampling_rate=rate)
        with torch.inference_mode():
            f0, confidence, _, _ = models[rate](torch.from_numpy(audio), sr=rate, convert_to_freq=True, return_activations=True)
        times = np.arange(f0.shape[-1]) * models[rate].hop_size / 1000.0
        return times, f0.numpy().astype(np.float64), confidence.numpy().astype(np.float64)

    return estimate


PEERS = {"torchcrepe full": lambda: crepe("full"), "torchcrepe tiny": lambda: crepe("tiny"), "PESTO mir-1k_g7": pesto_model}


def main(request_path):
    request = json.loads(open(request_path).read())
    torch.set_num_threads(int(request.get("threads", 2)))
    clips = []
    for clip in request["clips"]:
        audio, rate = soundfile.read(clip["path"], dtype="float32", always_2d=True)
        clips.append((clip["name"], np.ascontiguousarray(audio.mean(axis=1)), rate))
    result = {}
    for name in request["peers"]:
        estimate = PEERS[name]()
        estimate(clips[0][1], clips[0][2])  # warm-up: lazy weight loading, first-call allocations
        tracks, seconds = {}, {}
        for clip_name, audio, rate in clips:
            best = float("inf")
            for _ in range(int(request.get("repeats", 1))):
                start = time.perf_counter()
                times, f0, confidence = estimate(audio, rate)
                best = min(best, time.perf_counter() - start)
            tracks[clip_name] = {"times": np.asarray(times, float).tolist(), "pitch_hz": np.asarray(f0, float).tolist(),
                                 "confidence": np.asarray(confidence, float).tolist()}
            seconds[clip_name] = best
        result[name] = {"tracks": tracks, "seconds": seconds}
    from importlib.metadata import version

    result["versions"] = {name: version(name) for name in ("torch", "torchcrepe", "pesto-pitch")}
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
