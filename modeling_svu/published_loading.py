"""Pre-trained backbones as the Hub publishes them, loaded without running any code from the checkpoint.

    loaded = load_backbone("mert-v1-95m")     # an alias, a Hub id or a local folder
    loaded.config, loaded.sampling_rate       # a transformers config of an SVU family; the checkpoint's rate
    loaded.load_into(model.backbone)          # strict: every parameter loaded, every tensor used or dropped

Nothing here imports, executes or asks about code shipped with a checkpoint: `config.json` and
`preprocessor_config.json` are read as JSON (a local folder, or the Hub / HF cache through `cached_file`, so
`HF_HUB_OFFLINE=1` works on a cached repo), and weights come from `model.safetensors` or from `pytorch_model.bin`
read with `torch.load(weights_only=True)` (sharded checkpoints too).

Quirks of the published checkpoints, handled here:
- MERT (`model_type: mert_model`, `auto_map` to `configuration_MERT` / `modeling_MERT`). MERTConfig is HuBERT's
  config plus `feature_extractor_cqt(_bins)`, `deepnorm`, `attention_relax` and `sample_rate`; MERTModel is
  HubertModel with the same module names. Checked against MERT's modeling code (read in the public repo
  cannam/mert-vamp-plugin, `modeling_MERT.py` / `configuration_MERT.py`):
    * `feature_extractor_cqt: true` concatenates CQT bins to the CNN features and `deepnorm: true` scales every
      residual: different computations, refused with one line naming the key.
    * `attention_relax > 0` (MERT-v1-330M) is used only by MERT's deepnorm encoder, and there it computes
      softmax((s / r - max(s / r)) * r) = softmax(s - max(s)) = softmax(s): the same softmax, rewritten to
      avoid overflow (softmax ignores a constant shift per row). HuBERT's attention computes it exactly.
  So the config becomes a `HubertConfig` and the weights load as HuBERT's (MERTConfig's defaults equal
  HubertConfig's, so a key a MERT config.json leaves out means the same in both).
- music2vec-v1 (`data2vec-audio`): `vocab_size` is a filesystem path string, which transformers 5 refuses; only a
  CTC head uses it, so it is dropped in memory (the user's cache is never edited). The repo has no
  preprocessor config: its users take facebook/data2vec-audio-base-960h's (`DATA2VEC_AUDIO_PREPROCESSOR`).
- wav2vec2-base-960h is a `Wav2Vec2ForCTC` checkpoint (`wav2vec2.` prefix + `lm_head`) with legacy config keys:
  the encoder loads; the head's tensors are kept aside with the checkpoint's `vocab.json` (`ctc_head`, `vocab`):
  a lyrics model whose vocabulary is the checkpoint's starts its CTC head from them, other models drop them
  (reported once).
- Checkpoints saved before torch's weight-norm parametrizations store the positional convolution as
  `...conv.weight_g` / `...conv.weight_v`; they load as `...conv.parametrizations.weight.original0` / `original1`.
"""

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch

from .backbones import FAMILIES
from .checkpoints import checkpoint_aliases, published_checkpoint

logger = logging.getLogger(__name__)

MERT_MODEL_TYPE = "mert_model"
# MERT's config keys that change the computation away from HuBERT's, when true.
MERT_UNSUPPORTED_KEYS = ("feature_extractor_cqt", "deepnorm")
# MERT's extra config keys, consumed here (checked above, or the rate).
MERT_EXTRA_KEYS = ("feature_extractor_cqt", "feature_extractor_cqt_bins", "deepnorm", "attention_relax", "sample_rate")
# Keys that describe the checkpoint's own classes, not the backbone; an SVU config must not carry them.
CLASS_KEYS = ("architectures", "auto_map", "_name_or_path")
# facebook/data2vec-audio-base-960h's feature-extractor settings, used by music2vec-v1 (which ships none).
DATA2VEC_AUDIO_PREPROCESSOR = {"do_normalize": True, "return_attention_mask": True, "sampling_rate": 16000}
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
# Legacy torch weight-norm tensor names -> the parametrization names transformers 5 modules use.
LEGACY_WEIGHT_NORM = {"weight_g": "parametrizations.weight.original0", "weight_v": "parametrizations.weight.original1"}


@dataclass
class LoadedBackbone:
    """A published checkpoint read into memory: the config of its SVU family and its backbone tensors."""

    name: str  # as given (alias, Hub id or folder)
    location: str  # the Hub id or folder read
    family: str  # `backbones.FAMILIES` key
    config: object  # transformers config of the family, layerdrop 0
    sampling_rate: int  # the checkpoint's rate (its preprocessor config, else its config, else the table)
    do_normalize: bool  # its feature extractor's `do_normalize`
    weights_file: str
    tensors: dict = field(repr=False, default_factory=dict)  # checkpoint name -> tensor, backbone prefix removed
    dropped: list = field(default_factory=list)  # checkpoint tensors deliberately not used (task/pre-training heads)
    ctc_head: dict = field(repr=False, default_factory=dict)  # a *ForCTC checkpoint's `lm_head` ("weight", "bias")
    vocab: Optional[dict] = None  # its vocab.json (token -> id), when it has one

    def load_into(self, backbone: torch.nn.Module):
        """Load the tensors into `backbone` strictly: every parameter and buffer of the module is loaded, and every
        checkpoint tensor is either loaded or in `dropped` (reported once, one line). ValueError otherwise."""
        expected = backbone.state_dict()
        loaded, unused, wrong_shape = {}, [], []
        for key, tensor in self.tensors.items():
            target = _module_name(key, expected)
            if target is None:
                unused.append(key)
            elif tuple(tensor.shape) != tuple(expected[target].shape):
                wrong_shape.append(f"{key} {list(tensor.shape)} (module needs {list(expected[target].shape)})")
            else:
                loaded[target] = tensor
        missing = [name for name in expected if name not in loaded]
        problems = [
            (wrong_shape, "tensors whose shape disagrees with config.json"),
            (missing, "backbone parameters missing from the checkpoint"),
            (unused, "checkpoint tensors the backbone has no place for"),
        ]
        for names, what in problems:
            if names:
                raise ValueError(
                    f"{self.location}: {self.weights_file} does not fit the {self.family} backbone its config.json "
                    f"describes: {len(names)} {what} ({_first(names)}); the checkpoint and its config.json must "
                    "come from the same model."
                )
        backbone.load_state_dict(loaded, strict=True)
        if self.dropped:
            logger.warning(
                "%s: %d checkpoint tensors are not part of the backbone and were dropped: %s",
                self.location, len(self.dropped), ", ".join(self.dropped),
            )
        self.tensors = {}


def resolve_backbone_name(name: str) -> str:
    """A local folder as is; a short alias (`mert-v1-95m`) -> its Hub id; anything with a '/' as a Hub id."""
    if Path(name).is_dir():
        return name
    checkpoint = published_checkpoint(name)
    if checkpoint is not None:
        return checkpoint.hub_id
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ValueError(f"Backbone folder {name!r} does not exist; pass an existing folder, an alias or a Hub id.")
    if "/" not in name:
        raise ValueError(
            f"Unknown backbone {name!r}: not a local folder, a known alias ({', '.join(checkpoint_aliases())}) "
            "or a Hub id (org/name); pass one of those."
        )
    return name


def load_backbone(name: str) -> LoadedBackbone:
    """Read a published backbone checkpoint (alias, Hub id or local folder) without running its code."""
    location = resolve_backbone_name(str(name))
    values = _read_json(location, "config.json", required=True)
    family, config, config_rate = backbone_config_from_json(values, location)
    preprocessor = _read_json(location, "preprocessor_config.json", required=False)
    if preprocessor is None and family == "data2vec-audio":
        preprocessor = DATA2VEC_AUDIO_PREPROCESSOR
    preprocessor = preprocessor or {}
    known = published_checkpoint(location)
    sampling_rate = preprocessor.get("sampling_rate") or config_rate or (known.sampling_rate if known else 16000)
    do_normalize = preprocessor.get("do_normalize", FAMILIES[family].do_normalize)
    weights_file, tensors = _read_weights(location)
    ctc_head = {key: tensors[f"lm_head.{key}"] for key in ("weight", "bias") if f"lm_head.{key}" in tensors}
    tensors, dropped = _backbone_tensors(tensors, (_base_model_prefix(config), MERT_MODEL_TYPE))
    return LoadedBackbone(
        name=str(name), location=location, family=family, config=config, sampling_rate=int(sampling_rate),
        do_normalize=bool(do_normalize), weights_file=weights_file, tensors=tensors, dropped=dropped,
        ctc_head=ctc_head if len(ctc_head) == 2 else {}, vocab=_read_json(location, "vocab.json", required=False),
    )


def backbone_config_from_json(values: dict, location: str):
    """`(family, config, sampling rate or None)` of a checkpoint's config.json dict, read as data only."""
    values = dict(values)
    model_type = values.pop("model_type", None)
    rate = None
    if model_type == MERT_MODEL_TYPE:
        for key in MERT_UNSUPPORTED_KEYS:
            if values.get(key):
                raise ValueError(
                    f"{location}: config.json sets {key}: {json.dumps(values[key])}, a MERT variant that computes "
                    f"differently from HuBERT; SVU loads MERT checkpoints with {key}: false (MERT-v0, MERT-v0-public, "
                    "MERT-v1-95M, MERT-v1-330M)."
                )
        rate = values.get("sample_rate")
        for key in MERT_EXTRA_KEYS:
            values.pop(key, None)
        family = "hubert"
    elif model_type in FAMILIES:
        if values.get("auto_map"):
            raise ValueError(
                f"{location}: config.json maps to custom code (auto_map {values['auto_map']}); SVU never runs "
                "checkpoint code, so it cannot load a backbone whose computation may differ from transformers'. "
                "Use a checkpoint without auto_map."
            )
        family = model_type
    else:
        raise ValueError(
            f"{location}: config.json has model_type {model_type!r}, not a backbone SVU supports; supported: "
            f"{', '.join(FAMILIES)} and MERT ({MERT_MODEL_TYPE}); aliases: {', '.join(checkpoint_aliases())}."
        )
    for key in CLASS_KEYS:
        values.pop(key, None)
    if "vocab_size" in values and (isinstance(values["vocab_size"], bool) or not isinstance(values["vocab_size"], int)):
        values.pop("vocab_size")  # music2vec-v1: a path string; only a CTC head reads it
    values["layerdrop"] = 0.0
    try:
        config = FAMILIES[family].config_class(**values)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"{location}: config.json is not a valid {family} config ({str(error).splitlines()[0]}); fix or "
            "replace the file."
        ) from None
    return family, config, rate


def _read_json(location: str, filename: str, required: bool) -> Optional[dict]:
    path = _checkpoint_file(location, filename)
    if path is None:
        if required:
            raise OSError(_not_found(location, filename))
        return None
    try:
        values = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{location}: {filename} is not valid JSON ({error}); re-download the checkpoint.") from None
    if not isinstance(values, dict):
        raise ValueError(f"{location}: {filename} must hold a JSON object; re-download the checkpoint.")
    return values


def _checkpoint_file(location: str, filename: str) -> Optional[str]:
    """Path of `filename` in a local folder or a Hub repo (HF cache when offline); None when the repo lacks it."""
    folder = Path(location)
    if folder.is_dir():
        path = folder / filename
        return str(path) if path.is_file() else None
    from transformers.utils import cached_file

    try:
        return cached_file(
            location, filename,
            _raise_exceptions_for_missing_entries=False, _raise_exceptions_for_connection_errors=False,
        )
    except OSError as error:
        raise OSError(f"{location}: cannot read {filename} ({str(error).strip().splitlines()[0]})") from None


def _not_found(location: str, filename: str) -> str:
    if Path(location).is_dir():
        return f"{location}: no {filename} in this folder; pass the folder of a saved backbone checkpoint."
    return (
        f"{location}: {filename} is neither on the Hub nor in the Hugging Face cache (offline or no such repo); "
        f"download it once with `hf download {location}` or pass a local folder."
    )


def _read_weights(location: str):
    """`(file name, {tensor name: tensor})` from the first weight file the checkpoint has (safetensors first)."""
    for filename in WEIGHT_FILES:
        path = _checkpoint_file(location, filename)
        if path is None:
            continue
        if not filename.endswith(".index.json"):
            return filename, _read_tensor_file(location, path, filename)
        shards = sorted(set((_read_json(location, filename, required=True).get("weight_map") or {}).values()))
        tensors = {}
        for shard in shards:
            shard_path = _checkpoint_file(location, shard)
            if shard_path is None:
                raise OSError(_not_found(location, shard))
            tensors.update(_read_tensor_file(location, shard_path, shard))
        return filename, tensors
    raise OSError(
        f"{location}: no weights ({' / '.join(WEIGHT_FILES)}); download the complete checkpoint or pass the "
        "folder that holds its weights."
    )


def _read_tensor_file(location: str, path: str, filename: str) -> dict:
    if filename.endswith(".safetensors"):
        try:
            from safetensors.torch import load_file
        except ImportError:  # installed with transformers; without it only pytorch_model.bin checkpoints load
            raise ValueError(f"{location}: reading {filename} needs the safetensors package (pip install safetensors).")
    try:
        if filename.endswith(".safetensors"):
            tensors = load_file(path)
        else:
            tensors = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a damaged file, or a pickle that is more than tensors
        raise ValueError(
            f"{location}: cannot read {filename} as plain tensors ({str(error).strip().splitlines()[0][:200]}); "
            "re-download it, or convert it to model.safetensors."
        ) from None
    if not isinstance(tensors, dict) or not all(isinstance(t, torch.Tensor) for t in tensors.values()):
        raise ValueError(
            f"{location}: {filename} is not a flat state dict of tensors; save the model with save_pretrained."
        )
    return tensors


def _base_model_prefix(config) -> str:
    """`wav2vec2`, `hubert`, `wavlm`, `data2vec_audio`: the attribute under which task models keep the backbone."""
    from transformers import MODEL_MAPPING

    return MODEL_MAPPING[type(config)].base_model_prefix


def _backbone_tensors(tensors: dict, prefixes) -> tuple:
    """Strip a task model's backbone prefix (`wav2vec2.`): `(backbone tensors, dropped head tensor names)`."""
    for prefix in prefixes:
        head = prefix + "."
        if any(name.startswith(head) for name in tensors):
            backbone = {name[len(head):]: t for name, t in tensors.items() if name.startswith(head)}
            return backbone, sorted(name for name in tensors if not name.startswith(head))
    return dict(tensors), []


def _module_name(key: str, expected: dict) -> Optional[str]:
    """The module's name for a checkpoint tensor (legacy weight-norm names mapped both ways), else None."""
    if key in expected:
        return key
    for old, new in LEGACY_WEIGHT_NORM.items():
        for a, b in ((old, new), (new, old)):
            if key.endswith("." + a) and key[: -len(a)] + b in expected:
                return key[: -len(a)] + b
    return None


def _first(names, limit: int = 3) -> str:
    more = f", +{len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more
