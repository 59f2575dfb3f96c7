"""The training config: one dataclass, read from YAML, overridden field by field from the command line.

    cfg = load_config("train/configs/technique_wav2vec2.yaml", overrides=["--epochs", "3"])

Every field can be set in the YAML file or as `--field value` (YAML syntax for the value, so
`--dataset.options.task technique`, `--lora_target_modules "[q_proj, v_proj]"` and `--push_to_hub null` work).
Unknown fields are one clear error line, raised before anything is built.
"""

import dataclasses
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import yaml

from svu.modeling_svu.backbones import FAMILIES
from svu.modeling_svu.checkpoints import resolve_family_name
from svu.modeling_svu.configuration_svu import SVUConfig
from svu.modeling_svu.tasks import DEFAULT_TASK, TASK_NAMES, Task, check_task_options, get_task

from svu.train.external_dataset import external_dataset_block, replaced_dataset_source
from svu.train.spec_augment import check_spec_augment, normalized_spec_augment
from svu.train.trackers import tracker_names

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "demo_technique.yaml"
VALIDATION_MODES = ("none", "ours")
FINETUNE_METHODS = ("two_stage", "lora", "adapter", "frozen")
EXPORT_FORMS = ("native", "native_widget", "remote_code")
ADAPTER_METHODS = ("ia3", "loha")
MIXED_PRECISION = ("no", "fp16", "bf16")


@dataclass
class DatasetConfig:
    corpus: str = field(default="synthetic", metadata={"help": "Corpus name for `dataset_scripts.prepare.prepare`."})
    data_dir: Optional[str] = field(default=None, metadata={"help": "Raw corpus folder (None for synthetic)."})
    prepared_dir: Optional[str] = field(
        default=None,
        metadata={"help": "Where the prepared DatasetDict lives / is written; default `<output_dir>/data`."},
    )
    options: dict = field(default_factory=dict, metadata={"help": "Extra keyword options for `prepare`."})


@dataclass
class TrainConfig:
    task: str = field(
        default=DEFAULT_TASK,
        metadata={"help": f"Which head, data columns and metrics (`modeling_svu.tasks`): {' | '.join(TASK_NAMES)}."},
    )
    backbone: str = field(
        default="tiny-wav2vec2",
        metadata={"help": "Checkpoint alias (wav2vec2, wavlm, mert, music2vec, mert-v1-95m, mert-v1-330m; "
                          "modeling_svu/checkpoints.py), Hub id, local folder, or tiny-<family>."},
    )
    model_options: dict = field(
        default_factory=dict,
        metadata={"help": "Extra SVUConfig fields for the new model, e.g. {sampling_rate: 24000} for a tiny 24 kHz "
                          "MERT-v1-like backbone, {lowest_midi: 36, num_octaves: 4}; pre-trained checkpoints bring their own rate."},
    )
    backbone_options: dict = field(
        default_factory=dict,
        metadata={"help": "Config fields of a tiny-<family> backbone (random init), e.g. a CNN front end that can "
                          "resolve pitch for the pitch demo; a pre-trained checkpoint's shapes are its own."},
    )
    freeze_feature_encoder: bool = field(
        default=True,
        metadata={"help": "Keep the CNN feature encoder frozen in stage 2, as the paper does with a pre-trained CNN; "
                          "false trains it too (a random tiny backbone's CNN has learnt nothing)."},
    )
    spec_augment: str | dict = field(
        default="checkpoint",
        metadata={"help": "SpecAugment while the backbone trains (stage 2): checkpoint = the backbone config's own "
                          "(wav2vec2-base-960h: time masks p 0.05 x 10 frames; a tiny backbone: none), off, or "
                          "{mask_time_prob, mask_time_length, mask_feature_prob, mask_feature_length} (the keys given "
                          "replace the checkpoint's). Recorded in metrics.json (protocol) and the model card."},
    )
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    dataset_name: Optional[str] = field(
        default=None,
        metadata={"help": "Train on any `datasets` dataset instead of dataset.corpus: a Hub id, or a save_to_disk / "
                          "Parquet / audiofolder folder, chunked as the folder corpus is (train/external_dataset.py); "
                          "dataset.options: chunk_seconds, split_ratios, group_by, force."},
    )
    dataset_config_name: Optional[str] = field(default=None, metadata={"help": "The Hub dataset's configuration."})
    audio_column_name: str = field(default="audio", metadata={"help": "dataset_name's audio column."})
    label_column_name: str = field(default="label", metadata={"help": "dataset_name's label column (chunk-label tasks)."})
    notes_column_name: str = field(
        default="notes",
        metadata={"help": "dataset_name's notes column (note-event tasks): per recording, a list of {onset, offset, "
                          "pitch} (or [onset, offset, pitch]) in seconds and MIDI numbers."},
    )
    f0_column_name: str = field(
        default="f0_hz", metadata={"help": "dataset_name's F0 column (contour tasks): per recording, Hz, 0 = unvoiced."}
    )
    f0_times_column_name: str = field(
        default="f0_times", metadata={"help": "dataset_name's column of the F0 values' times, in seconds."}
    )
    text_column_name: str = field(
        default="text", metadata={"help": "dataset_name's lyrics column (token-sequence tasks): per recording, its text."}
    )
    streaming: bool = field(
        default=False,
        metadata={"help": "Train from `streaming_path` as a stream (corpora past one disk; train/streaming.py): "
                          "each process reads its own Parquet shards, shuffled by a (seed, epoch) buffer; validation "
                          "and test are loaded whole. Resumes at epoch boundaries; stage 1 runs without feature cache."},
    )
    streaming_path: Optional[str] = field(
        default=None,
        metadata={"help": "With streaming: a Parquet folder (svu data prepare --parquet DIR) or a Hub dataset repo "
                          "(--push-to-hub), holding svu_meta.json; `dataset` is then not read."},
    )
    shuffle_buffer: int = field(
        default=1000, metadata={"help": "With streaming: examples in the shuffle buffer (the shard order is shuffled too)."}
    )
    epochs: int = field(default=8, metadata={"help": "Total epochs, stage 1 included."})
    stage1_epochs: int = field(default=4, metadata={"help": "Epochs of stage 1 (frozen backbone)."})
    batch_size: int = field(
        default=16, metadata={"help": "Per-process batch size (effective = x num_processes x gradient_accumulation_steps)."}
    )
    gradient_accumulation_steps: int = field(
        default=1,
        metadata={"help": "Batches whose gradients are summed before each optimizer step (accelerate's `accumulate`); "
                  "the paper's batch 32 as batch_size 8 x 4 on a small GPU."},
    )
    validation: Literal["none", "ours"] = field(
        default="ours",
        metadata={"help": "none: train on every non-test singer/song (VocalSet 15 singers, MIR-ST500 songs 1-400) and keep "
                  "the last epoch (the paper's technique and transcription data); ours: hold out our validation "
                  "singers/songs and keep the best validation epoch. Artist20's validation album is the paper's own."},
    )
    eval_batch_size: Optional[int] = field(default=None, metadata={"help": "Defaults to batch_size."})
    lr_stage1: float = field(default=3e-3, metadata={"help": "Adam lr of stage 1 (layer weights + head)."})
    lr_stage2: float = field(default=5e-5, metadata={"help": "Adam lr of stage 2 (two_stage: transformer + ...)."})
    lr_peft: float = field(default=1e-3, metadata={"help": "Adam lr of stage 2 for lora / adapter."})
    lr_head: Optional[float] = field(
        default=None,
        metadata={"help": "Adam lr of the task head in both stages; null: the stage's lr. A random backbone learning "
                          "under CTC leaves its all-blank start sooner with a head 10x faster (the lyrics demo)."},
    )
    finetune: Literal["two_stage", "lora", "adapter", "frozen"] = field(
        default="two_stage",
        metadata={"help": "What stage 2 trains: the transformer (paper), LoRA, an adapter (IA3/LoHa), or nothing."},
    )
    lora_r: int = field(default=8, metadata={"help": "LoRA / LoHa rank."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA / LoHa scaling alpha."})
    lora_dropout: float = field(default=0.0, metadata={"help": "Dropout on the LoRA input."})
    lora_target_modules: Optional[list] = field(
        default=None, metadata={"help": "Module names to adapt; default: the backbone family's lora_target_modules."}
    )
    adapter_method: Literal["ia3", "loha"] = field(
        default="ia3", metadata={"help": "PEFT method used for `finetune: adapter` (PEFT has no bottleneck adapters)."}
    )
    cache_stage1: Optional[bool] = field(
        default=None,
        metadata={"help": "Singer ID / technique (a pooled head): train stage 1 on cached pooled backbone states "
                          "(exact); default (null) on. A task option: set for another task it is an error."},
    )
    classifier_dropout: float = field(default=0.0, metadata={"help": "Dropout before the linear head."})
    selection_metric: Optional[str] = field(
        default=None,
        metadata={"help": "Validation metric picking the best epoch (higher is better); default: the first of the "
                          "task's `selection_metrics` (`modeling_svu.tasks`)."},
    )
    seed: int = field(default=0, metadata={"help": "Seed of the model init and of the (seed, epoch) shuffle."})
    output_dir: str = field(default="outputs/run", metadata={"help": "Run folder (checkpoints, logs, repo)."})
    checkpoint_every_steps: int = field(default=0, metadata={"help": "Also checkpoint every N optimizer steps (0 = only per epoch)."})
    keep_checkpoints: int = field(default=3, metadata={"help": "Complete checkpoints kept (oldest removed)."})
    mixed_precision: Literal["no", "fp16", "bf16"] = field(default="no", metadata={"help": "Accelerate mixed precision."})
    num_workers: int | str = field(
        default="auto",
        metadata={"help": "DataLoader worker processes per training process; auto = a share of the cores "
                  "(0 for tiny-backbone demos and small datasets, where starting workers costs more)."},
    )
    max_layers: Optional[int] = field(
        default=None,
        metadata={"help": "Train on the backbone's first K transformer layers only (pruned from the start); None = all."},
    )
    log_every_steps: int = field(default=10, metadata={"help": "Tracker loss logging interval in steps."})
    report_to: str | list = field(
        default="tensorboard",
        metadata={"help": "Experiment trackers (Accelerate's): tensorboard (<output_dir>/logs), wandb, trackio, mlflow, "
                          "a list of them, all (every one installed) or none. A tracker that is not installed is an error."},
    )
    export: Literal["native", "native_widget", "remote_code"] = field(
        default="native",
        metadata={"help": "Repo form of singer ID / technique models: native = transformers' own "
                          "*ForSequenceClassification (no trust_remote_code) plus an auto_map to SVU's class "
                          "(AutoModel + trust_remote_code); native_widget = the native class only (the Hub's hosted "
                          "widget runs it: it runs no custom code); remote_code = SVU's classes only (exact batched "
                          "results). Transcription and pitch are always remote code."},
    )
    push_to_hub: Optional[str] = field(default=None, metadata={"help": "Hub repo id to upload the final folder to."})
    hub_private: bool = field(default=False, metadata={"help": "Create the Hub repo as private."})

    def __post_init__(self):
        if self.dataset_name is not None:
            self.dataset = external_dataset_block(self.dataset_name, self.dataset)
        if isinstance(self.dataset, dict):
            self.dataset = _build(DatasetConfig, self.dataset, prefix="dataset.")
        task = get_task(self.task)
        if self.finetune not in FINETUNE_METHODS:
            raise ValueError(f"Unknown finetune {self.finetune!r}; expected one of {FINETUNE_METHODS}.")
        if self.export not in EXPORT_FORMS:
            raise ValueError(f"Unknown export {self.export!r}; expected one of {EXPORT_FORMS}.")
        if self.adapter_method not in ADAPTER_METHODS:
            raise ValueError(f"Unknown adapter_method {self.adapter_method!r}; expected one of {ADAPTER_METHODS}.")
        if self.validation not in VALIDATION_MODES:
            raise ValueError(f"Unknown validation {self.validation!r}; expected one of {VALIDATION_MODES}.")
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(f"Unknown mixed_precision {self.mixed_precision!r}; expected one of {MIXED_PRECISION}.")
        check_backbone_name(self.backbone)
        check_model_options(self.model_options, self.task)
        # a field that is some tasks' option (e.g. cache_stage1) is null unless set
        check_task_options(self.task, [f.name for f in dataclasses.fields(self) if getattr(self, f.name) is not None])
        check_backbone_options(self.backbone, self.backbone_options)
        tracker_names(self.report_to)
        self.spec_augment = normalized_spec_augment(self.spec_augment)
        check_spec_augment(self.spec_augment, self.backbone_options)
        if self.selection_metric is not None and self.selection_metric not in task.selection_metrics:
            raise ValueError(
                f"Unknown selection_metric {self.selection_metric!r} for {self.task}; expected one of "
                f"{task.selection_metrics}."
            )
        if not 0 <= self.stage1_epochs <= self.epochs:
            raise ValueError(f"stage1_epochs={self.stage1_epochs} must be between 0 and epochs={self.epochs}.")
        if self.epochs < 1 or self.batch_size < 1 or self.gradient_accumulation_steps < 1:
            raise ValueError(
                f"epochs={self.epochs}, batch_size={self.batch_size} and gradient_accumulation_steps="
                f"{self.gradient_accumulation_steps} must be >= 1."
            )
        if self.num_workers != "auto" and not (isinstance(self.num_workers, int) and self.num_workers >= 0):
            raise ValueError(f"num_workers={self.num_workers!r} must be an integer >= 0 or auto.")
        if self.max_layers is not None and (not isinstance(self.max_layers, int) or self.max_layers < 1):
            raise ValueError(f"max_layers={self.max_layers!r} must be an integer >= 1 (or null for all layers).")
        check_streaming(self)
        if self.eval_batch_size is None:
            self.eval_batch_size = self.batch_size

    @property
    def task_spec(self) -> Task:
        """The registry entry of `task`: its model class, columns, metrics, ..."""
        return get_task(self.task)

    def stage_of_epoch(self, epoch: int) -> int:
        """1 during the first `stage1_epochs` epochs, then 2 (`frozen` never leaves stage 1)."""
        return 1 if self.finetune == "frozen" or epoch < self.stage1_epochs else 2

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def check_streaming(cfg: TrainConfig) -> None:
    """ValueError (one line) for streaming settings that cannot work together."""
    if cfg.streaming_path and not cfg.streaming:
        raise ValueError("streaming_path is read with streaming: true only.")
    if not cfg.streaming:
        return
    if not cfg.streaming_path:
        raise ValueError("streaming: true needs streaming_path (a Parquet folder written by svu data prepare --parquet, "
                         "or a Hub dataset repo).")
    if cfg.dataset_name:
        raise ValueError("streaming: true reads streaming_path (prepared Parquet shards), not dataset_name: train on "
                         "dataset_name once (it is chunked into a prepared folder), then svu data prepare --parquet.")
    if cfg.checkpoint_every_steps:
        raise ValueError("streaming: true resumes at epoch boundaries only; set checkpoint_every_steps: 0.")
    if cfg.cache_stage1:
        raise ValueError("streaming: true has no stage-1 feature cache (it needs the rows at hand); unset cache_stage1.")
    if not isinstance(cfg.shuffle_buffer, int) or cfg.shuffle_buffer < 1:
        raise ValueError(f"shuffle_buffer={cfg.shuffle_buffer!r} must be an integer >= 1.")


def check_backbone_name(name: str):
    """ValueError for a name that is neither a family, a tiny-<family>, nor something that looks like a path/Hub id."""
    if name.startswith("tiny-"):
        resolve_family_name(name[len("tiny-"):])
    elif "/" not in name and not Path(name).exists():
        resolve_family_name(name)


# SVUConfig fields the training script sets itself (from the task and the prepared dataset).
_SET_BY_TRAINING = {"self", "kwargs", "backbone_config", "task", "chunk_seconds", "class_weights", "classifier_dropout"}


def check_backbone_options(backbone: str, options) -> None:
    """ValueError (one line) for `backbone_options` on a pre-trained backbone or naming no field of its config."""
    if not options:
        return
    if not isinstance(options, dict) or not backbone.startswith("tiny-"):
        raise ValueError(f"backbone_options ({options!r}) apply to a tiny-<family> backbone only, got backbone={backbone!r}.")
    config = FAMILIES[resolve_family_name(backbone[len("tiny-"):])].config_class()
    unknown = [key for key in options if not hasattr(config, key)]
    if unknown:
        raise ValueError(f"Unknown backbone_options key {unknown[0]!r} for {backbone} ({type(config).__name__}).")


def check_model_options(options, task: str) -> None:
    """ValueError for `model_options` that are not a mapping of settable `SVUConfig` fields of `task`'s model."""
    if not isinstance(options, dict):
        raise ValueError(f"model_options must be a mapping of SVUConfig fields, got {options!r}.")
    check_task_options(task, options)
    allowed = sorted(set(inspect.signature(SVUConfig.__init__).parameters) - _SET_BY_TRAINING)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"Unknown model_options key {unknown[0]!r}; settable SVUConfig fields: {', '.join(allowed)}.")


def _build(cls, values: dict, prefix: str = ""):
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(
            f"Unknown config key '{prefix}{unknown[0]}'; known keys: {', '.join(sorted(known))}."
        )
    for f in dataclasses.fields(cls):  # YAML reads "1e-3" (no dot) as a string
        if f.type is float and isinstance(values.get(f.name), str):
            try:
                values[f.name] = float(values[f.name])
            except ValueError:
                raise ValueError(f"Config key '{prefix}{f.name}' must be a number, got {values[f.name]!r}.") from None
    return cls(**values)


def _set_dotted(values: dict, dotted: str, value):
    keys = dotted.split(".")
    node = values
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ValueError(f"Config key {dotted!r}: {key!r} is not a mapping.")
    node[keys[-1]] = value


def parse_overrides(tokens: list) -> dict:
    """['--epochs', '3', '--dataset.options.task=technique'] -> nested dict of YAML-parsed values."""
    values, i = {}, 0
    while i < len(tokens):
        token = tokens[i]
        if not token.startswith("--"):
            raise ValueError(f"Unexpected argument {token!r}; overrides look like --field value.")
        key, eq, value = token[2:].partition("=")
        if not eq:
            if i + 1 >= len(tokens) or tokens[i + 1].startswith("--"):
                raise ValueError(f"Override --{key} needs a value.")
            value = tokens[i + 1]
            i += 1
        _set_dotted(values, key.replace("-", "_"), yaml.safe_load(value))
        i += 1
    return values


def _merge(base: dict, update: dict) -> dict:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_config(path: Optional[str] = None, overrides: Optional[list] = None) -> TrainConfig:
    """The config of `path` (YAML; None = the demo default `configs/demo_technique.yaml`) with `--field value`
    overrides applied."""
    path = Path(path if path is not None else DEFAULT_CONFIG)
    if not path.is_file():
        raise ValueError(f"Config file {str(path)!r} does not exist.")
    values = yaml.safe_load(path.read_text()) or {}
    if not isinstance(values, dict):
        raise ValueError(f"Config file {str(path)!r} must hold a mapping of config keys.")
    overrides = parse_overrides(list(overrides or []))
    values = _merge(replaced_dataset_source(values, overrides), overrides)
    return _build(TrainConfig, values)
