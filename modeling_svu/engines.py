"""Inference engines: "a batch of equal-length audio windows -> logits", the one call every command makes.

    engine = load_engine(model, "onnx", int8=True)       # or "torch"; bf16=True for torch
    logits = engine(input_values, attention_mask)         # float32 (batch, frames, 20) or (batch, num_labels)

torch  the model itself (fp32); `int8`: dynamic quantisation of every `nn.Linear` of the backbone (int8 weights, activations
       quantised per batch; the head stays fp32); `bf16`: the forward under CPU bfloat16 autocast (fast on CPUs with AVX512-BF16/AMX,
       correct but slow elsewhere).
onnx   backbone + layer sum + head exported once to ONNX (dynamic batch and length) and run by ONNX Runtime;
       `int8`: ONNX Runtime's dynamic quantisation of the transformer's (and feature projection's) MatMul weights,
       per output channel; the CNN feature encoder, the positional conv and the head stay fp32 (see `INT8_OPTIONS`).
       Exports are cached by the model's
       weights and config under `$XDG_CACHE_HOME/svu/onnx` (default `~/.cache/svu/onnx`). Needs the optional
       packages `onnxruntime` and `onnx` (`pip install 'svu[onnx]'`); without them `load_engine` raises a
       one-line ImportError saying so.
"""

import copy
import hashlib
import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .saved_onnx import FP32_FILE, INT8_FILE, ONNX_MISSING, default_cache_dir, export_file, onnx_session
from .tasks import get_task

ENGINES = ("torch", "onnx")
# ONNX Runtime's dynamic int8 as `--engine onnx --int8` applies it. Its defaults also turn every Conv into ConvInteger:
# the CNN feature encoder's activations, quantised per tensor at run time, lost so much that a trained demo classifier
# flipped 4 of 96 labels (logits off by 0.33; MatMuls alone: 0.037), and ConvInteger ran slower than the fp32 Conv.
# Per-channel weights took the MatMuls' last flip away (benchmarks/README.md, "ONNX int8 agreement").
INT8_OPTIONS = {"op_types_to_quantize": ["MatMul"], "per_channel": True}


def load_engine(model, engine: str = "torch", int8: bool = False, bf16: bool = False, cache_dir=None, key=None):
    """The engine running `model` (an SVU task model, eval mode); ValueError / ImportError in one line. `key`: the
    ONNX export's cache key (`saved_onnx.saved_files_key` of the repo the model was loaded from, so that later runs
    find it without loading the model); default: a digest of the model's config and weights."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; expected one of {', '.join(ENGINES)}.")
    if int8 and bf16:
        raise ValueError("choose one of int8 and bf16, not both.")
    if engine == "onnx":
        if bf16:
            raise ValueError("bf16 is for --engine torch; with --engine onnx use fp32 or --int8.")
        return OnnxEngine(model, int8=int8, cache_dir=cache_dir, key=key)
    return TorchEngine(model, int8=int8, bf16=bf16)


class TorchEngine:
    def __init__(self, model, int8: bool = False, bf16: bool = False):
        model = model.eval()
        if int8:
            with warnings.catch_warnings():  # torch.ao.quantization is deprecated in favour of torchao
                warnings.simplefilter("ignore")
                model = copy.deepcopy(model)
                # The backbone only: the head is a few kFLOPs, and quantising it moves near-tie decisions.
                model.backbone = torch.ao.quantization.quantize_dynamic(model.backbone, {nn.Linear}, dtype=torch.qint8)
        self.model, self.bf16 = model, bf16
        self.name = "torch" + (" int8" if int8 else " bf16" if bf16 else " fp32")

    def __call__(self, input_values, attention_mask=None) -> torch.Tensor:
        device = next(self.model.parameters()).device  # int8 runs on the CPU; fp32/bf16 where the model is
        if attention_mask is not None:
            attention_mask = attention_mask.to(device)
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.bf16):
            return self.model(input_values.to(device), attention_mask=attention_mask).logits.float()


class _Logits(nn.Module):
    """What the ONNX graph computes: audio -> logits (the model's forward without the attention mask)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_values):
        return self.model(input_values).logits


def _model_key(model) -> str:
    digest = hashlib.sha256(json.dumps(model.config.to_dict(), sort_keys=True, default=str).encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:20]


def export_onnx(model, path, int8: bool = False) -> Path:
    """Write `model` (backbone + layer sum + head) to `path` as ONNX with dynamic batch and length; with
    `int8`, ONNX Runtime's dynamic int8 quantisation of it. Returns `path`."""
    try:
        import onnx  # noqa: F401  (ONNX Runtime's quantiser and the exporter's checks need it)
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError:
        raise ImportError(ONNX_MISSING) from None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fp32 = path.with_name(FP32_FILE) if int8 else path
    if not fp32.is_file():
        wrapper = _Logits(model).eval()  # eval: the exporter restores the wrapper's mode on every submodule
        frames = {0: "batch"} if get_task(model.config.task).pooled else {0: "batch", 1: "frames"}  # frame logits
        example = torch.zeros(1, model.config.sampling_rate, dtype=torch.float32)
        example[0, ::7] = 0.1
        partial = fp32.with_name(fp32.name + ".partial")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about the input checks (constant for valid input)
            torch.onnx.export(
                wrapper, (example,), str(partial), input_names=["input_values"], output_names=["logits"],
                dynamic_axes={"input_values": {0: "batch", 1: "samples"}, "logits": frames},
                opset_version=17, dynamo=False,
            )
        os.replace(partial, fp32)
    if int8 and not path.is_file():
        partial = path.with_name(path.name + ".partial.onnx")
        root = logging.getLogger()
        level, root.level = root.level, logging.ERROR  # its "consider pre-processing" advice, on every export
        try:
            quantize_dynamic(str(fp32), str(partial), weight_type=QuantType.QInt8, **INT8_OPTIONS,
                             nodes_to_exclude=_head_nodes(onnx.load(str(fp32), load_external_data=False)))
        finally:
            root.setLevel(level)
        os.replace(partial, path)
    return path


def _head_nodes(graph_model) -> list:
    """Names of the nodes computing `logits` back to the head's MatMul (kept fp32, as in the torch engine)."""
    producers = {output: node for node in graph_model.graph.node for output in node.output}
    names, node = [], producers.get("logits")
    while node is not None and node.op_type in ("Add", "MatMul", "Gemm"):  # Gemm: a Linear on pooled (2-D) input
        names.append(node.name)
        if node.op_type != "Add":
            break
        node = next((producers[i] for i in node.input if i in producers), None)
    return names


class OnnxEngine:
    def __init__(self, model, int8: bool = False, cache_dir=None, key=None):
        try:
            import onnxruntime  # noqa: F401  (before the export: its quantiser and the session need it)
        except ImportError:
            raise ImportError(ONNX_MISSING) from None
        model = model.eval()
        self.model = model  # for its input checks
        folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        path = export_onnx(model, folder / (key or _model_key(model)) / export_file(int8), int8)
        self.session = onnx_session(path)
        self.path = path
        self.name = "onnx" + (" int8" if int8 else " fp32")

    def __call__(self, input_values, attention_mask=None) -> torch.Tensor:
        if attention_mask is not None and not bool(attention_mask.all()):
            raise ValueError("the onnx engine runs unpadded batches only; batch equal-length audio or use --engine torch.")
        self.model._check_input(input_values)
        array = input_values.detach().cpu().numpy().astype(np.float32, copy=False)
        return torch.from_numpy(self.session.run(None, {"input_values": array})[0])
