"""What several `svu` commands share: the `--device` / `--quiet` / engine options, loading a saved model by name and
the one-line report of a file that failed (the loop over the inputs: `catalogue.py`)."""

import sys

from svu.modeling_svu.audio_io import decoder_message

DEVICES = ("cpu", "cuda", "mps")


def add_device_option(parser) -> None:
    parser.add_argument("--device", choices=DEVICES, default=None,
                        help="where the model runs (default: cuda if available, else cpu)")


def add_quiet_option(parser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def add_window_options(parser) -> None:
    """`--chunk-seconds`, `--overlap-seconds`, `--batch-size`: the long-audio windows (`modeling_svu.long_audio`)."""
    parser.add_argument("--chunk-seconds", type=float, help="window length (default: the model's chunk_seconds)")
    # Defaults live in modeling_svu.long_audio (not imported here: `svu --help` stays fast).
    parser.add_argument("--overlap-seconds", type=float, help="overlap of consecutive windows (default: 1.0)")
    parser.add_argument("--batch-size", type=int, help="windows per forward pass (default: 8)")


def window_options(args) -> dict:
    """The window options given on the command line (`add_window_options`), as `long_audio` keyword arguments."""
    options = {"chunk_seconds": args.chunk_seconds, "overlap_seconds": args.overlap_seconds, "batch_size": args.batch_size}
    return {key: value for key, value in options.items() if value is not None}


def add_engine_options(parser) -> None:
    """`--engine torch|onnx`, `--int8`, `--bf16` (see `modeling_svu.engines`); for every inference command."""
    parser.add_argument("--engine", choices=("torch", "onnx"), default="torch",
                        help="torch (default) or onnx (ONNX Runtime; needs pip install onnxruntime onnx)")
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument("--int8", action="store_true", help="dynamic int8 quantisation of the linear layers (CPU)")
    precision.add_argument("--bf16", action="store_true", help="bfloat16 autocast (torch engine; fast on CPUs with AVX512-BF16/AMX)")


def load_engine_or_exit(model, args, command: str, device: str, key=None):
    """The engine of the --engine/--int8/--bf16 options (`modeling_svu.engines.load_engine`, `key` its ONNX
    export's cache key), or None for the default (the model itself, fp32, on `device`); SystemExit with one line
    when it cannot run here."""
    if args.engine == "torch" and not args.int8 and not args.bf16:
        return None
    chosen = f"--engine {args.engine}" + (" --int8" if args.int8 else " --bf16" if args.bf16 else "")
    if (device != "cpu" and (args.engine == "onnx" or args.int8)) or (device == "mps" and args.bf16):
        raise SystemExit(f"svu {command}: {chosen} runs on the CPU here, not on --device {device}; use --device cpu.")
    if getattr(model.config, "model_type", None) != "svu":
        raise SystemExit(f"svu {command}: {chosen} runs SVU models only; {model.config.model_type!r} runs with the default engine.")
    from svu.modeling_svu.engines import load_engine

    try:
        return load_engine(model, args.engine, int8=args.int8, bf16=args.bf16, key=key)
    except (ImportError, ValueError) as error:
        raise SystemExit(f"svu {command}: error: {error}") from None


def command_device(args, command: str) -> str:
    """This process's device for the model (`resolve_device`, `catalogue.process_device`); with --engine onnx the
    CPU unless --device says otherwise (ONNX Runtime runs on the CPU here)."""
    from .catalogue import process_device

    if args.engine == "onnx" and args.device is None:
        return "cpu"
    return process_device(resolve_device(args.device, command))


def load_model_and_engine(name: str, args, command: str, tasks=None, other_classifiers: bool = False):
    """``(model, engine)`` of the saved model at `name` as the command's options ask (`load_model`,
    `load_engine_or_exit`). With --engine onnx on the CPU, a repo of a task marked `onnx_without_torch` whose export
    is already cached runs from its config.json and the export alone, without torch or transformers
    (`modeling_svu.saved_onnx`); else the model loads and its export is cached under its saved files' key, for the
    next run. `other_classifiers`: as `load_model`'s."""
    from svu.modeling_svu.tasks import TASKS, tasks_of_verb

    if tasks is None:
        tasks = tuple(task.name for task in tasks_of_verb(command))
    device = command_device(args, command)
    key = None
    if args.engine == "onnx" and device == "cpu":
        from svu.modeling_svu.saved_onnx import load_saved_onnx, saved_files_key

        key = saved_files_key(name)  # read once: a base model's weights are hundreds of MB
        lean_tasks = [task for task in tasks if TASKS[task].onnx_without_torch]
        found = load_saved_onnx(name, key, int8=args.int8, tasks=lean_tasks)
        if found is not None:
            return found
    model = load_model(name, command, tasks=tasks, device=device, other_classifiers=other_classifiers)
    return model, load_engine_or_exit(model, args, command, device, key=key)


def open_model_audio(model, path):
    """`audio_io.open_audio` of `path` at the model's rate; without torch when the model runs without it
    (`saved_onnx.SavedOnnxModel`)."""
    from svu.modeling_svu.audio_io import open_audio

    return open_audio(path, model.config.sampling_rate, without_torch=not getattr(model, "needs_torch", True))


def resolve_device(name, command: str) -> str:
    """`name` if this machine has it (None: cuda when available, else cpu); else SystemExit with one line."""
    import torch

    if name is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not available[name]:
        raise SystemExit(f"svu {command}: --device {name} is not available on this machine; use --device cpu.")
    return name


def load_model(name: str, command: str, tasks=None, device: str = "cpu", other_classifiers: bool = False):
    """The model saved at `name` (folder or Hub repo id), in eval mode on `device`.

    `tasks`: the task names `svu <command>` accepts; default: the tasks declaring it as their `cli_verb`
    (`modeling_svu.tasks`).

    An SVU repo (config `model_type: svu`) loads its task model with this package's own classes: no code from
    the repo runs; a native export (`train.native_export`) is turned back into its SVU model (same logits). With
    `other_classifiers`, any other audio classifier (e.g. a native `*ForSequenceClassification`
    export) loads through `AutoModelForAudioClassification`, without remote code. A model of another task, or one
    that cannot be loaded, is one line (SystemExit)."""
    from transformers import AutoConfig, AutoModelForAudioClassification, PretrainedConfig

    from svu.modeling_svu import TASK_MODELS, SVUConfig
    from svu.modeling_svu.tasks import tasks_of_verb
    from svu.train.native_export import is_native_export, svu_from_native

    if tasks is None:
        tasks = tuple(task.name for task in tasks_of_verb(command))

    try:
        saved, _ = PretrainedConfig.get_config_dict(name)  # config.json as JSON: nothing imported or run
        is_svu, native = saved.get("model_type") == "svu", is_native_export(saved)
        config = SVUConfig.from_pretrained(name) if is_svu else AutoConfig.from_pretrained(name)
        task = saved["svu"].get("task") if native else model_task(config)
        if task not in tasks and not (task is None and other_classifiers and getattr(config, "id2label", None)):
            raise SystemExit(f"svu {command}: {name!r} is a {task or config.model_type!r} model, not a {' or '.join(tasks)} model.")
        if is_svu:
            model = TASK_MODELS[task].from_pretrained(name, config=config)
        elif native:
            model = svu_from_native(name)
        else:
            model = AutoModelForAudioClassification.from_pretrained(name)
    except (OSError, ValueError, RuntimeError, KeyError) as error:
        raise SystemExit(f"svu {command}: cannot load model {name!r}: {decoder_message(error)}") from None
    return model.to(device).eval()


def model_task(config):
    """`config.task` of an SVU model (or of an export that keeps it); None for a model that names no task."""
    return getattr(config, "task", None) or None


def report_failure(command: str, path, error: Exception) -> None:
    """One line naming the file (audio_io's messages already start with it)."""
    message = decoder_message(error)
    if not message.startswith(str(path)):
        message = f"{path}: {message}"
    print(f"svu {command}: error: {message}", file=sys.stderr)
