"""`svu classify FILES... --model M [--top-k 3] [-o out.csv|out.json] [--device cpu|cuda|mps] [--batch-size N]
[--engine torch|onnx] [--int8|--bf16]` (engines: `modeling_svu.engines`, SVU models only).

Names the singer (singer-ID models) or the technique (technique models) of whole recordings of any length and
format. Each file is decoded to mono at the model's rate and cut into chunks of the model's training chunk length
(`config.chunk_seconds`) exactly as the training data was (`dataset_scripts.audio.chunk_waveform`: consecutive
chunks, a last partial chunk kept zero-padded when it holds at least half a chunk); a file shorter than half a
chunk is one chunk of its own length. The song-level decision is the mean of the chunk logits (the paper's
clip-level "mean logit" vote); its softmax gives the probabilities of the top-k labels.

Inputs are files, folders (recursive, `--glob`) and `--file-list`, over one or many processes (`svu/catalogue.py`);
`--skip-existing` reuses the results in `-o`'s `<output>.manifest.jsonl`. Output: a table on stdout; `-o x.csv` one row per file (rank columns), `-o x.json` the same plus every chunk's
start, end, top-k and logits. A file that cannot be read is one line on stderr; the others are still
classified and written, and the exit status is 1.
"""

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from svu.modeling_svu.audio_io import decode_audio
from svu.modeling_svu.long_audio import float_logits

from .catalogue import Done, add_catalogue_options, collect_inputs, run_catalogue
from .common import add_device_option, add_engine_options, add_quiet_option, load_model_and_engine

DEFAULT_BATCH_SIZE = 8


@dataclass
class FileResult:
    """One classified file: the mean chunk logits (song level) and every chunk's logits."""

    path: str
    duration: float
    chunk_bounds: list  # [(start_s, end_s)] of each chunk, in the file
    chunk_logits: np.ndarray  # (num_chunks, num_labels)
    mean_logits: np.ndarray = field(init=False)

    def __post_init__(self):
        self.mean_logits = self.chunk_logits.mean(axis=0)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def top_k(logits: np.ndarray, id2label: dict, k: int) -> list:
    """``[{"label", "probability"}]`` of the k most probable classes (ties: lower class index first)."""
    probabilities = softmax(logits)
    order = np.argsort(-probabilities, kind="stable")[:k]
    return [{"label": id2label[int(i)], "probability": float(probabilities[i])} for i in order]


def file_chunks(waveform: np.ndarray, chunk_samples: int, sampling_rate: int):
    """``(chunks, [(start_s, end_s)])``: the training chunking; a file under half a chunk is one short chunk."""
    from svu.dataset_scripts.audio import chunk_waveform

    chunks, bounds = [], []
    for start, chunk in chunk_waveform(waveform, chunk_samples):
        chunks.append(chunk)
        bounds.append((start / sampling_rate, min(start + chunk_samples, len(waveform)) / sampling_rate))
    if not chunks:
        chunks, bounds = [waveform], [(0.0, len(waveform) / sampling_rate)]
    return chunks, bounds


def chunk_logits(model, feature_extractor, chunks, batch_size: int, bar=None, engine=None) -> np.ndarray:
    """(num_chunks, num_labels) logits; a batch holds chunks of one length only (no padding). `engine`: what runs
    the batches (`modeling_svu.engines`, or the session of a model run without torch), default the model itself."""
    rate = feature_extractor.sampling_rate
    logits = []
    for first in range(0, len(chunks), batch_size):
        batch = chunks[first : first + batch_size]
        inputs = feature_extractor(batch, sampling_rate=rate, return_tensors="pt")
        mask = inputs.get("attention_mask")
        if engine is not None:
            logits.append(float_logits(engine(inputs["input_values"], mask)))
        else:
            import torch

            device = next(model.parameters()).device
            with torch.inference_mode():
                out = model(inputs["input_values"].to(device), attention_mask=None if mask is None else mask.to(device))
            logits.append(float_logits(out.logits))
        if bar is not None:
            bar.update(len(batch))
    return np.concatenate(logits)


def classify_file(model, feature_extractor, path, chunk_seconds: float, batch_size: int, progress: bool,
                  engine=None) -> FileResult:
    from tqdm.auto import tqdm

    rate = feature_extractor.sampling_rate
    waveform = decode_audio(path, rate, without_torch=not getattr(model, "needs_torch", True))
    min_samples = model.min_input_samples() if hasattr(model, "min_input_samples") else 400
    if len(waveform) < min_samples:
        raise ValueError(
            f"audio has {len(waveform)} samples ({1000 * len(waveform) / rate:.1f} ms); "
            f"at least {min_samples} ({1000 * min_samples / rate:.0f} ms) are needed"
        )
    chunks, bounds = file_chunks(waveform, int(round(chunk_seconds * rate)), rate)
    with tqdm(total=len(chunks), unit="chunk", desc=Path(path).name, leave=False, disable=not progress) as bar:
        logits = chunk_logits(model, feature_extractor, chunks, batch_size, bar, engine)
    return FileResult(str(path), len(waveform) / rate, bounds, logits)


def result_record(result: FileResult, id2label: dict, k: int, with_chunks: bool) -> dict:
    record = {"file": result.path, "duration": round(result.duration, 3), "num_chunks": len(result.chunk_bounds),
              "top_k": top_k(result.mean_logits, id2label, k), "mean_logits": result.mean_logits.tolist()}  # fmt: skip
    if with_chunks:
        record["chunks"] = [
            {"start": round(start, 3), "end": round(end, 3), "top_k": top_k(logits, id2label, k), "logits": logits.tolist()}
            for (start, end), logits in zip(result.chunk_bounds, result.chunk_logits)
        ]
    return record


def write_output(path: Path, records: list, failed: list, model_name: str, k: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps({"model": model_name, "files": records, "failed": failed}, indent=1))
        return
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "duration", "num_chunks", *[f"{c}{r}" for r in range(1, k + 1) for c in ("label", "probability")]])
        for record in records:
            ranks = [value for entry in record["top_k"] for value in (entry["label"], f"{entry['probability']:.6f}")]
            writer.writerow([record["file"], record["duration"], record["num_chunks"], *ranks])


def manifest_path(output) -> Path:
    """`-o out.csv` -> `out.manifest.jsonl` beside it (a classification writes one file for every input)."""
    return Path(output).with_suffix(".manifest.jsonl")


def earlier_results(output) -> dict:
    """{input: manifest entry} of the inputs an earlier run with this `-o` classified (`--skip-existing`)."""
    path = manifest_path(output)
    if not path.is_file():
        return {}
    entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {entry["input"]: entry for entry in entries if entry["status"] != "failed" and "result" in entry}


def run_classify(args) -> int:
    if args.output and Path(args.output).suffix.lower() not in (".csv", ".json"):
        raise SystemExit(f"svu classify: -o {args.output}: the output must end in .csv or .json.")
    if args.skip_existing and not args.output:
        raise SystemExit("svu classify: --skip-existing reads the results of -o out.csv|out.json; give -o.")
    if args.top_k < 1 or args.batch_size < 1:
        raise SystemExit(f"svu classify: --top-k ({args.top_k}) and --batch-size ({args.batch_size}) must be >= 1.")
    items = collect_inputs(args, "classify")
    model, engine = load_model_and_engine(args.model, args, "classify", other_classifiers=True)
    if getattr(model, "needs_torch", True):  # any audio classifier: its own preprocessor_config.json
        from transformers import AutoFeatureExtractor

        feature_extractor = AutoFeatureExtractor.from_pretrained(args.model)
    else:
        feature_extractor = model.feature_extractor()
    chunk_seconds = args.chunk_seconds or getattr(model.config, "chunk_seconds", None)
    if not chunk_seconds:
        raise SystemExit(f"svu classify: {args.model!r} does not record its chunk length; pass --chunk-seconds.")
    id2label = {int(i): name for i, name in model.config.id2label.items()}
    k = min(args.top_k, len(id2label))
    earlier = earlier_results(args.output) if args.skip_existing else {}

    def classify_one(item) -> Done:
        result = classify_file(model, feature_extractor, item.path, chunk_seconds, args.batch_size, not args.quiet, engine)
        record = result_record(result, id2label, k, with_chunks=True)
        ranked = ", ".join(f"{e['label']} {e['probability']:.2f}" for e in record["top_k"])
        line = f"{item.path}: {ranked}  ({len(result.chunk_bounds)} chunks of {chunk_seconds:g} s)"
        return Done(line, [], result.duration, record={"result": record})

    def previous(item):
        entry = earlier.get(str(item.path))
        return None if entry is None else {"duration": entry["duration"], "result": entry["result"]}

    def write_results(entries) -> None:
        if args.output:
            records = [entry["result"] for entry in entries if "result" in entry]
            failed = [{"file": entry["input"], "error": entry["error"]} for entry in entries if entry["status"] == "failed"]
            write_output(Path(args.output), records, failed, args.model, k)
            print(f"{len(records)} files -> {args.output}")

    manifest = manifest_path(args.output) if args.output else None
    return run_catalogue("classify", items, classify_one, lambda item: [], manifest, previous=previous if earlier else None,
                         then=write_results)  # fmt: skip


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("classify")
    add_catalogue_options(parser, "results (in -o's manifest)")
    parser.add_argument("--model", required=True, help="singer-ID or technique model: Hub repo id or local folder")
    parser.add_argument("--top-k", type=int, default=3, help="labels reported per file (default: 3)")
    parser.add_argument("-o", "--output", help="also write the results to out.csv (a row per file) or out.json (+ chunks)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help=f"chunks per forward pass (default: {DEFAULT_BATCH_SIZE})")
    parser.add_argument("--chunk-seconds", type=float, help="chunk length (default: the model's chunk_seconds)")
    add_engine_options(parser)
    add_device_option(parser)
    add_quiet_option(parser)
    parser.set_defaults(func=run_classify)
