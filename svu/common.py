"""What several `svu` commands share: the `--device` / `--quiet` options and loading a saved model by name."""

import sys

from dataset_scripts.audio import decoder_message

DEVICES = ("cpu", "cuda", "mps")


def add_device_option(parser) -> None:
    parser.add_argument("--device", choices=DEVICES, default=None,
                        help="where the model runs (default: cuda if available, else cpu)")


def add_quiet_option(parser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def resolve_device(name, command: str) -> str:
    """`name` if this machine has it (None: cuda when available, else cpu); else SystemExit with one line."""
    import torch

    if name is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not available[name]:
        raise SystemExit(f"svu {command}: --device {name} is not available on this machine; use --device cpu.")
    return name


def load_model(name: str, command: str, tasks, device: str = "cpu"):
    """The model saved at `name` (folder or Hub repo id), in eval mode on `device`.

    An SVU repo (config `model_type: svu`) loads through `AutoModel` with its own remote code, which maps to the
    repo's task model; any other audio classifier (e.g. a native `*ForSequenceClassification` export) through
    `AutoModelForAudioClassification`. A model whose task is not in `tasks`, or that cannot be loaded, is one
    line (SystemExit)."""
    from transformers import AutoConfig, AutoModel, AutoModelForAudioClassification

    try:
        config = AutoConfig.from_pretrained(name, trust_remote_code=True)
        task = model_task(config)
        if task not in tasks:
            raise SystemExit(f"svu {command}: {name!r} is a {task!r} model, not a {' or '.join(tasks)} model.")
        auto_class = AutoModel if config.model_type == "svu" else AutoModelForAudioClassification
        model = auto_class.from_pretrained(name, trust_remote_code=True)
    except (OSError, ValueError, RuntimeError, KeyError) as error:
        raise SystemExit(f"svu {command}: cannot load model {name!r}: {decoder_message(error)}") from None
    return model.to(device).eval()


def model_task(config) -> str:
    """`config.task` of an SVU model; "classification" for another audio classifier that does not name one."""
    task = getattr(config, "task", None)
    if task:
        return task
    return "classification" if getattr(config, "id2label", None) else "unknown"


def report_failure(command: str, path, error: Exception) -> None:
    print(f"svu {command}: error: {path}: {decoder_message(error)}", file=sys.stderr)
