"""`svu export MODEL OUT [--max-layers K | --prune auto[=THRESHOLD]] [--onnx]`: a smaller copy of an SVU model repo,
or one that carries its ONNX exports.

`--max-layers K` keeps the first K transformer layers of the backbone; `--prune auto` keeps the layers up to
the highest hidden state whose softmax layer weight is >= THRESHOLD (default 0.01). Either way the kept layer
weights keep their values, the dropped softmax mass is printed, and OUT is a normal SVU repo (weights, config,
code, feature extractor; the other files of a local MODEL folder are copied) that loads anywhere as before; a
native export (transformers' own `*ForSequenceClassification`, `train.native_export`) stays native, with the
`auto_map` to SVU's class when it had one.
Its config.json holds a `pruning` record (native: in its `svu` entry) and its README.md (the model card) gets a
line saying what was pruned.

`--onnx` also writes the copy's ONNX exports into OUT (fp32 and int8, as `--engine onnx [--int8]` runs them:
`modeling_svu.engines.export_onnx`), so that `svu <verb> --engine onnx` runs it without torch or transformers from
its first run (`modeling_svu.saved_onnx`); the exports of MODEL itself are never copied (they hold its weights).
"""

import shutil
import sys
from pathlib import Path

from svu.modeling_svu.saved_onnx import FP32_FILE, INT8_FILE

# Files `save_pretrained` (and `--onnx`) write; everything else in a local model folder (card, samples, metrics) is
# copied.
SAVED_BY_MODEL = {"config.json", "model.safetensors", "preprocessor_config.json", "generation_config.json",
                  FP32_FILE, INT8_FILE}


def parse_prune(text: str):
    """`auto` -> default threshold, `auto=0.05` -> 0.05; ValueError otherwise."""
    from svu.modeling_svu.pruning import DEFAULT_PRUNE_THRESHOLD

    name, _, value = text.partition("=")
    if name != "auto":
        raise ValueError(f"--prune {text!r}: expected auto or auto=THRESHOLD (e.g. auto=0.01).")
    try:
        return float(value) if value else DEFAULT_PRUNE_THRESHOLD
    except ValueError:
        raise ValueError(f"--prune {text!r}: THRESHOLD must be a number, e.g. auto=0.01.") from None


def _load(name: str, what):
    try:
        return what()
    except (OSError, ValueError, RuntimeError) as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"cannot load SVU model {name!r}: {message}") from None


def native_form_of(name: str):
    """The export form of a native export at `name` (`train.native_export`: transformers' own classifier class):
    "native" (with the auto_map to SVU's class) or "native_widget"; None for an SVU repo."""
    from transformers import PretrainedConfig

    from svu.train.native_export import is_native_export

    saved, _ = _load(name, lambda: PretrainedConfig.get_config_dict(name))
    if not is_native_export(saved):
        return None
    return "native" if saved.get("auto_map") else "native_widget"


def load_svu_config(name: str, native: bool):
    """The SVU config of the model at `name`; for a native export (`native_form_of`), that of the SVU model it equals."""
    from svu.modeling_svu import SVUConfig
    from svu.train.native_export import svu_config_of_native

    return _load(name, lambda: svu_config_of_native(name) if native else SVUConfig.from_pretrained(name))


def load_svu_model(name: str, config, native: bool):
    """The task model saved at `name` (local folder or Hub id; a native export as its SVU model, same logits), in
    eval mode; ValueError naming the problem."""
    from svu.modeling_svu import TASK_MODELS
    from svu.train.native_export import svu_from_native

    if native:
        return _load(name, lambda: svu_from_native(name).eval())
    return _load(name, lambda: TASK_MODELS[config.task].from_pretrained(name, config=config).eval())


def copy_repo_extras(source: Path, out_dir: Path) -> None:
    for path in source.iterdir():
        if path.name in SAVED_BY_MODEL or path.suffix == ".py" or path.name.startswith("."):
            continue
        target = out_dir / path.name
        if path.is_dir():
            shutil.copytree(path, target, dirs_exist_ok=True)
        else:
            shutil.copy2(path, target)


def add_card_line(out_dir: Path, line: str) -> None:
    card = out_dir / "README.md"
    text = card.read_text() if card.is_file() else ""
    card.write_text(text.rstrip("\n") + f"\n\n{line}\n")


def export(model_name: str, out_dir, max_layers=None, prune_threshold=None, onnx: bool = False):
    """Save a copy of `model_name` to `out_dir`, pruned (`max_layers` / `prune_threshold`) and with its ONNX exports
    (`onnx`); returns the `PruningReport`, or None when nothing was pruned."""
    import torch

    from svu.modeling_svu.pruning import layers_to_keep, prune_layers

    out_dir = Path(out_dir)
    if out_dir.resolve() == Path(model_name).resolve():
        raise ValueError(f"output folder {out_dir} is the model folder itself; choose another one.")
    form = native_form_of(model_name)  # read once: it decides how the model loads and how the copy is saved
    native = form is not None
    config = load_svu_config(model_name, native)
    total = config.backbone_config.num_hidden_layers
    if max_layers is not None and not 1 <= max_layers <= total:  # before the weights load
        raise ValueError(f"max_layers={max_layers} must be between 1 and the backbone's {total} layers.")
    if prune_threshold is not None:
        layers_to_keep(torch.ones(1), prune_threshold)  # checks the threshold before the weights load
    model = load_svu_model(model_name, config, native)
    if prune_threshold is not None:
        max_layers = layers_to_keep(model.layer_weights(), prune_threshold)
    report = None if max_layers is None else prune_layers(model, max_layers, threshold=prune_threshold)
    out_dir.mkdir(parents=True, exist_ok=True)
    if Path(model_name).is_dir():
        copy_repo_extras(Path(model_name), out_dir)
    if native:  # the same form out: transformers' own class, no remote code
        from svu.train.native_export import save_native

        save_native(model, out_dir, remote_code=form == "native")
    else:
        model.save_pretrained(out_dir)
    if report is not None:
        add_card_line(out_dir, f"**Pruned:** {report.describe()} (`svu export`).")
    if onnx:
        from svu.modeling_svu.engines import export_onnx

        export_onnx(model, out_dir / INT8_FILE, int8=True)  # writes the fp32 export first, then quantises it
        add_card_line(out_dir, f"**ONNX:** `{FP32_FILE}` and `{INT8_FILE}` (int8) hold this model for ONNX Runtime "
                               "(`svu export --onnx`; `svu <verb> --engine onnx [--int8]` runs them without torch).")
    return report


def run_export(args) -> int:
    if args.max_layers is None and args.prune is None and not args.onnx:
        print("svu export: error: nothing to do: give --max-layers K, --prune auto[=THRESHOLD] and/or --onnx.", file=sys.stderr)
        return 2
    try:
        threshold = parse_prune(args.prune) if args.prune else None
        report = export(args.model, args.output_dir, max_layers=args.max_layers, prune_threshold=threshold, onnx=args.onnx)
    except (ValueError, ImportError) as error:
        print(f"svu export: error: {error}", file=sys.stderr)
        return 2
    done = [report.describe()] if report is not None else []
    done += [f"ONNX exports {FP32_FILE}, {INT8_FILE}"] if args.onnx else []
    print(f"{'; '.join(done)} -> {args.output_dir}")
    return 0


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("export")
    parser.add_argument("model", help="SVU model (or its native export): local folder or Hub repo id")
    parser.add_argument("output_dir", help="folder to write the pruned repo to")
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--max-layers", type=int, metavar="K", help="keep the first K backbone layers")
    how.add_argument("--prune", metavar="auto[=THRESHOLD]",
                     help="keep the layers up to the highest one whose layer weight is >= THRESHOLD (default 0.01)")
    parser.add_argument("--onnx", action="store_true",
                        help="also write the copy's ONNX exports (fp32, int8) into it: --engine onnx runs it without torch")
    parser.set_defaults(func=run_export)
