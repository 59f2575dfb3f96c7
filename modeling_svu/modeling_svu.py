"""SVU models: any supported SSL backbone -> softmax-weighted sum of all hidden states -> a small head.

Classes (all share the parameter layout ``backbone.*``, ``layer_sum.weight``, ``head.*``):
    SVUModel                       features only (the weighted sum per frame)
    SVUForSingerID                 masked mean pooling -> linear (Artist20)
    SVUForTechniqueClassification  masked mean pooling -> linear, weighted CE (VocalSet)
    SVUForNoteTranscription        frame-wise linear -> onset/silence/octave/pitch-class (MIR-ST500)
    SVUForPitchEstimation          frame-wise MLP -> pitch bins + voicing (singing F0; beyond the paper)
    SVUForLyricsTranscription      frame-wise linear -> CTC over characters (lyrics; beyond the paper)

Padding. Pass the `attention_mask` the model's `feature_extractor()` returns (it always returns one): pooling
and the transcription loss ignore padded frames, and a batch of clips of different lengths is run clip by clip
at each clip's own length, so every clip's output equals its single-clip output (~1e-6) for every family (a
backbone would otherwise see the padding: group-norm CNNs such as wav2vec2-base, HuBERT/MERT-base and
WavLM-base-plus normalise over it, and data2vec's stacked positional convolutions reach into it). Batches of
equal-length chunks, as in training, run in one pass. Without a mask, zero padding is treated as audio.
"""

import importlib
import logging
import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn
from transformers import AutoModel, PreTrainedModel, Wav2Vec2FeatureExtractor
from transformers.dynamic_module_utils import custom_object_save
from transformers.utils import ModelOutput

from .ctc import PAD, decode as ctc_decode, save_processor, word_timings
from .backbones import FAMILIES, family_of, tiny_backbone_config
from .configuration_svu import SVUConfig
from .layer_sum import WeightedLayerSum
from .native_form import load_native, native_config_at
from .safe_loading import config_summary, safetensors_shapes, shape_mismatches
from .long_audio import transcribe_array
from .note_labels import IGNORE_INDEX, align_frames, decode_logits, decoding_options, logit_slices
from .pitch import decode_pitch
from .tasks import DEFAULT_TASK, TASKS


def package_module(name: str, purpose: str):
    """`svu.modeling_svu.<name>` of the installed svu package: code a saved repo does not carry because it never runs
    there (loading published backbones, ONNX engines). Imported by its name as a string: transformers copies every
    module a repo file imports into the repo, and refuses to load a file naming a package that is not installed."""
    module = f"svu.modeling_svu.{name}"
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name not in ("svu", "svu.modeling_svu", module):
            raise
        raise ImportError(f"{purpose} needs the svu package (pip install svu); a saved model repo holds only the code "
                          "that runs the model and its pipelines.") from None


@dataclass
class SVUModelOutput(ModelOutput):
    """
    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(batch_size, num_frames, hidden_size)`):
            The softmax-weighted sum of all backbone hidden states.
        frame_mask (`torch.BoolTensor` of shape `(batch_size, num_frames)`):
            True for frames computed from real (non-padded) audio.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*):
            The `num_hidden_layers + 1` backbone states, returned when `output_hidden_states=True`.
        layer_weights (`torch.FloatTensor` of shape `(num_hidden_layers + 1,)`):
            The normalised (softmax) layer weights used for the sum.
    """

    last_hidden_state: Optional[torch.FloatTensor] = None
    frame_mask: Optional[torch.BoolTensor] = None
    hidden_states: Optional[tuple] = None
    layer_weights: Optional[torch.FloatTensor] = None


@dataclass
class SVUClassifierOutput(ModelOutput):
    """
    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*): (weighted) cross entropy, when `labels` are given.
        logits (`torch.FloatTensor` of shape `(batch_size, num_labels)`): class scores before softmax.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*): backbone states, with `output_hidden_states=True`.
        layer_weights (`torch.FloatTensor` of shape `(num_hidden_layers + 1,)`): normalised layer weights.
    """

    loss: Optional[torch.FloatTensor] = None
    logits: Optional[torch.FloatTensor] = None
    hidden_states: Optional[tuple] = None
    layer_weights: Optional[torch.FloatTensor] = None


@dataclass
class SVUTranscriptionOutput(ModelOutput):
    """
    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*): the paper's combined loss, when `labels` are given.
        logits (`torch.FloatTensor` of shape `(batch_size, num_frames, 2 + num_octaves + 1 + 13)`):
            per-frame onset, silence, octave and pitch-class logits (layout in `note_labels.logit_slices`).
        frame_mask (`torch.BoolTensor` of shape `(batch_size, num_frames)`): frames of real audio.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*): backbone states, with `output_hidden_states=True`.
        layer_weights (`torch.FloatTensor` of shape `(num_hidden_layers + 1,)`): normalised layer weights.
    """

    loss: Optional[torch.FloatTensor] = None
    logits: Optional[torch.FloatTensor] = None
    frame_mask: Optional[torch.BoolTensor] = None
    hidden_states: Optional[tuple] = None
    layer_weights: Optional[torch.FloatTensor] = None


class SVUPreTrainedModel(PreTrainedModel):
    config_class = SVUConfig
    base_model_prefix = "svu"
    main_input_name = "input_values"
    input_modalities = "audio"
    supports_gradient_checkpointing = True
    # The task this class solves (set from `tasks.TASKS` for the task models); `AutoModel` in a saved repo maps
    # to the class of its task.
    task: Optional[str] = None

    def _init_weights(self, module):
        # Only SVU's own modules; the backbone initialises itself (or is loaded pre-trained).
        if isinstance(module, WeightedLayerSum):
            nn.init.zeros_(module.weight)
        elif isinstance(module, nn.Linear) and any(module is m for m in self._head_modules()):
            module.weight.data.normal_(mean=0.0, std=self.config.backbone_config.initializer_range)
            module.bias.data.zero_()

    def _head_modules(self):
        head = getattr(self, "head", None)
        return list(head.modules()) if head is not None else []

    # ----- construction -------------------------------------------------------------------------

    @classmethod
    def from_backbone(cls, backbone="wav2vec2", id2label=None, **config_overrides):
        """Wrap a backbone in this SVU task model.

        Args:
            backbone: a published checkpoint's alias (`"wav2vec2"`, `"wavlm"`, `"mert"`, `"music2vec"`,
                `"mert-v1-95m"`, `"mert-v1-330m"`; `checkpoints.PUBLISHED`), or a Hub id or local folder of a
                pre-trained backbone of a supported family: weights loaded strictly, no code from the checkpoint
                ever run (`published_loading`), `sampling_rate` and `normalize_audio` taken from the checkpoint;
                `"tiny-<family>"` for a tiny random backbone; or a backbone config or its dict (random init).
            id2label: `{index: name}` of the classes (classification tasks).
            config_overrides: any other `SVUConfig` field, e.g. `class_weights=[...]`, `chunk_seconds=3.0`.
        """
        loaded = None
        if isinstance(backbone, str) and backbone.startswith("tiny-"):
            family = backbone[len("tiny-"):]
            if family.lower() not in FAMILIES:  # a published checkpoint's alias, e.g. tiny-mert
                family = package_module("checkpoints", f"backbone={backbone!r}").resolve_family_name(family)
            backbone = tiny_backbone_config(family)
        elif isinstance(backbone, str):
            loaded = package_module("published_loading", "loading a published backbone").load_backbone(backbone)
            backbone = loaded.config
            config_overrides.setdefault("normalize_audio", loaded.do_normalize)
            config_overrides.setdefault("sampling_rate", loaded.sampling_rate)
        family = family_of(backbone)
        task = config_overrides.pop("task", cls.task or DEFAULT_TASK)
        config_overrides.setdefault("normalize_audio", family.do_normalize)
        if id2label is not None:
            id2label = {int(k): v for k, v in dict(id2label).items()}
            config_overrides["label2id"] = {v: k for k, v in id2label.items()}
        config = SVUConfig(backbone_config=backbone, task=task, id2label=id2label, **config_overrides)
        if cls.task is not None and task != cls.task:
            raise ValueError(f"{cls.__name__} is the {cls.task!r} model, got task={task!r}; use TASK_MODELS[{task!r}].")
        model = cls(config)
        if loaded is not None:
            model.init_from_published(loaded)
            loaded.load_into(model.backbone)
        return model

    def init_from_published(self, loaded) -> None:
        """Take what else than the backbone a published checkpoint gives this task's model (`published_loading`);
        nothing by default."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """`PreTrainedModel.from_pretrained`, but weights load only from safetensors (a pickle file such as
        `pytorch_model.bin` is never opened), and a config.json whose sizes disagree with the saved weights is
        one ValueError naming the tensors, instead of a load report and a RuntimeError. A native export
        (`native_form`: the backbone family's `*ForSequenceClassification` files) loads as this class too."""
        if kwargs.get("use_safetensors") is False:
            raise ValueError("SVU models load only safetensors weights; use_safetensors=False is not supported.")
        native_config = native_config_at(pretrained_model_name_or_path, kwargs)
        if native_config is not None:
            return load_native(cls, pretrained_model_name_or_path, native_config, kwargs)
        kwargs["use_safetensors"] = True
        try:
            return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        except OSError as error:
            if "model.safetensors" not in str(error):
                raise
            raise OSError(
                f"{pretrained_model_name_or_path}: no model.safetensors; SVU loads weights only from safetensors, "
                "never from pickle files (pytorch_model.bin, *.pt, ...)."
            ) from None
        except RuntimeError as error:
            if "ignore_mismatched_sizes" not in str(error):
                raise
            raise ValueError(cls._shape_mismatch_message(pretrained_model_name_or_path, kwargs)) from None

    @classmethod
    def _shape_mismatch_message(cls, name, kwargs) -> str:
        from transformers.utils import cached_file

        config = kwargs.get("config")
        if not isinstance(config, SVUConfig):
            config = SVUConfig.from_pretrained(name)
        with torch.device("meta"):
            expected = {key: tuple(value.shape) for key, value in cls(config).state_dict().items()}
        saved = safetensors_shapes(cached_file(name, "model.safetensors"))
        return (
            f"{name}: config.json ({config_summary(config)}) does not match the saved weights: "
            f"{shape_mismatches(expected, saved)}."
        )

    @classmethod
    def model_auto_map(cls) -> dict:
        """The `auto_map` entries of a saved repo that load this class: `AutoModel` and the task's auto classes."""
        task_classes = TASKS[cls.task].auto_classes if cls.task is not None else ()
        return {auto_class: f"modeling_svu.{cls.__name__}" for auto_class in ("AutoModel", *task_classes)}

    def feature_extractor(self) -> Wav2Vec2FeatureExtractor:
        """The feature extractor matching this model's backbone (normalisation, attention mask)."""
        return Wav2Vec2FeatureExtractor(
            feature_size=1,
            sampling_rate=self.config.sampling_rate,
            padding_value=0.0,
            do_normalize=self.config.normalize_audio,
            # Always: pooling and ragged batches need it; the model decides whether the backbone sees it.
            return_attention_mask=True,
        )

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Save weights (safetensors only), config with a full `auto_map`, the code and the feature extractor, and
        the task's custom pipeline when it has one (`pipeline_svu.CUSTOM_PIPELINES`), so that
        `pipeline(model=save_directory, trust_remote_code=True)` runs it."""
        from .pipeline_svu import CUSTOM_PIPELINES

        kwargs["safe_serialization"] = True
        type(self).register_for_auto_class("AutoModel")
        task = TASKS[self.task] if self.task is not None else None
        self.config.auto_map = {"AutoConfig": "configuration_svu.SVUConfig", **type(self).model_auto_map()}
        pipeline_class = CUSTOM_PIPELINES.get(task.pipeline) if task is not None else None
        if pipeline_class is not None:  # e.g. files read as SVU reads them everywhere (audio_decode)
            self.config.custom_pipelines = {
                task.pipeline: {"impl": f"pipeline_svu.{pipeline_class.__name__}", "pt": task.auto_classes, "type": "audio"}
            }
        super().save_pretrained(save_directory, *args, **kwargs)
        if kwargs.get("is_main_process", True):
            self.feature_extractor().save_pretrained(save_directory)
            if pipeline_class is not None:
                custom_object_save(pipeline_class, save_directory)

    # ----- two-stage fine-tuning --------------------------------------------------------------

    def freeze_backbone(self):
        """Stage 1: only the layer weights and the head train. The frozen backbone runs in eval mode."""
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        self.freeze_feature_encoder()
        self.train(self.training)

    def freeze_feature_encoder(self):
        """Freeze the CNN feature encoder (it stays frozen in stage 2, as in the paper)."""
        for p in self.backbone.feature_extractor.parameters():
            p.requires_grad_(False)
        # Else the encoder marks its input as requiring grad in train mode (for gradient checkpointing) and
        # stage 2 keeps every CNN activation for a backward pass that updates nothing (~1 GB at base size).
        self.backbone.feature_extractor._requires_grad = False

    def unfreeze_feature_encoder(self):
        """Let the CNN feature encoder train as well (a random tiny backbone's CNN has learnt nothing to keep)."""
        for p in self.backbone.feature_extractor.parameters():
            p.requires_grad_(True)
        # `_requires_grad` stays False: it only marks the waveform as requiring grad (for reentrant gradient
        # checkpointing, which SVU does not use), and the waveform's gradient is most of a backward pass through
        # a CNN whose first layer has a long stride (60 % of a step of the pitch demo's).
        self.backbone.feature_extractor._requires_grad = False

    def unfreeze_transformer(self):
        """Stage 2: the backbone trains except its CNN feature encoder."""
        for p in self.backbone.parameters():
            p.requires_grad_(True)
        self.freeze_feature_encoder()
        self.train(self.training)

    def set_stage(self, stage: int):
        """Apply the trainable set of the paper's stage 1 or 2 (idempotent)."""
        if stage == 1:
            self.freeze_backbone()
        elif stage == 2:
            self.unfreeze_transformer()
        else:
            raise ValueError(f"stage must be 1 or 2, got {stage!r}.")

    def backbone_is_frozen(self) -> bool:
        return not any(p.requires_grad for p in self.backbone.parameters())

    def train(self, mode: bool = True):
        super().train(mode)
        if mode and self.backbone_is_frozen():
            # A frozen backbone is a fixed feature extractor: no dropout or SpecAugment, so stage 1
            # sees the same features every epoch (and cached features are exact).
            self.backbone.eval()
        return self

    def layer_weights(self) -> torch.Tensor:
        """The learnt, softmax-normalised weight of each hidden state (index 0 = CNN projection)."""
        return self.layer_sum.normalized_weights().detach()

    # ----- shared forward pieces --------------------------------------------------------------

    def _check_input(self, input_values: torch.Tensor, attention_mask=None):
        shape = tuple(input_values.shape)
        if input_values.dim() != 2:
            raise ValueError(f"input_values must be (batch, samples) mono audio; got shape {shape}.")
        if input_values.numel() == 0:
            raise ValueError(f"input_values is empty (shape {shape}).")
        if not input_values.is_floating_point():
            raise ValueError(f"input_values must be float audio in [-1, 1]; got dtype {input_values.dtype}.")
        finite = torch.isfinite(input_values)
        if not finite.all():
            example, sample = (~finite).nonzero()[0].tolist()
            raise ValueError(
                f"input_values has NaN or infinite samples (example {example}, first at sample {sample})."
            )
        lengths = [shape[1]] * shape[0]
        if attention_mask is not None:
            if tuple(attention_mask.shape) != shape:
                raise ValueError(f"attention_mask has shape {tuple(attention_mask.shape)}; input_values has {shape}.")
            lengths = attention_mask.sum(-1).tolist()
        min_samples = self.min_input_samples()
        for index, length in enumerate(lengths):
            if length < min_samples:
                raise ValueError(
                    f"example {index} has {int(length)} samples; the backbone needs at least "
                    f"{min_samples} ({1000 * min_samples / self.config.sampling_rate:.0f} ms) for one frame."
                )

    def min_input_samples(self) -> int:
        """The receptive field of one output frame (400 samples = 25 ms for the base backbones)."""
        return self.config.receptive_field_samples

    def _hidden_states(self, input_values, attention_mask=None):
        """All backbone hidden states and the frame mask (True = frame of real audio)."""
        self._check_input(input_values, attention_mask)
        if attention_mask is not None and bool((attention_mask.sum(-1) != input_values.shape[1]).any()):
            return self._ragged_hidden_states(input_values, attention_mask)
        family = family_of(self.config.backbone_config)
        backbone_mask = attention_mask if family.supports_attention_mask(self.config.backbone_config) else None
        no_grad = self.backbone_is_frozen() and not input_values.requires_grad
        with torch.set_grad_enabled(torch.is_grad_enabled() and not no_grad):
            states = self.backbone(input_values, attention_mask=backbone_mask, output_hidden_states=True).hidden_states
        if attention_mask is not None:
            frame_mask = self.backbone._get_feature_vector_attention_mask(states[0].shape[1], attention_mask)
        else:
            frame_mask = torch.ones(states[0].shape[:2], dtype=torch.bool, device=states[0].device)
        return states, frame_mask

    def _ragged_hidden_states(self, input_values, attention_mask):
        """A batch of different lengths, run example by example at its own length and zero-padded after the
        backbone: no family's CNN normalisation / positional convolution then sees another example's padding, so
        each example gets exactly its single-clip states (equal-length batches, as in training, skip this)."""
        num_frames = int(self.backbone._get_feat_extract_output_lengths(input_values.shape[1]))
        examples = [self._hidden_states(input_values[i : i + 1, : int(n)])[0] for i, n in enumerate(attention_mask.sum(-1))]
        states = tuple(
            torch.cat([nn.functional.pad(ex[layer], (0, 0, 0, num_frames - ex[layer].shape[1])) for ex in examples])
            for layer in range(len(examples[0]))
        )
        return states, self.backbone._get_feature_vector_attention_mask(num_frames, attention_mask)

    def _features(self, input_values, attention_mask=None, output_hidden_states=False) -> SVUModelOutput:
        hidden_states, frame_mask = self._hidden_states(input_values, attention_mask)
        features = self.layer_sum(hidden_states)
        return SVUModelOutput(
            last_hidden_state=features,
            frame_mask=frame_mask,
            hidden_states=hidden_states if output_hidden_states else None,
            layer_weights=self.layer_sum.normalized_weights(),
        )

    def _frame_head_forward(self, input_values, attention_mask, labels, output_hidden_states, loss_fn, output_class):
        """The forward of a frame-wise head (`self.dropout`, then `self.head` on every frame of the weighted sum):
        `loss_fn(logits, labels, frame_mask)` when `labels` are given, all in an `output_class` instance."""
        features = self._features(input_values, attention_mask, output_hidden_states)
        logits = self.head(self.dropout(features.last_hidden_state))
        loss = None
        if labels is not None:
            loss = loss_fn(logits, labels, features.frame_mask)
        return output_class(
            loss=loss,
            logits=logits,
            frame_mask=features.frame_mask,
            hidden_states=features.hidden_states,
            layer_weights=features.layer_weights,
        )


class SVUModel(SVUPreTrainedModel):
    """Backbone + weighted layer sum: per-frame features for any downstream head."""

    def __init__(self, config: SVUConfig):
        super().__init__(config)
        self.backbone = AutoModel.from_config(config.backbone_config)
        self.layer_sum = WeightedLayerSum(config.num_hidden_states, layer_norm=config.layer_norm_per_layer)
        self.post_init()

    def forward(self, input_values, attention_mask=None, output_hidden_states=False, **kwargs) -> SVUModelOutput:
        return self._features(input_values, attention_mask, output_hidden_states)


def masked_mean(features: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
    """Mean over time of (batch, frames, hidden) features, ignoring frames where the mask is False."""
    mask = frame_mask.unsqueeze(-1).to(features.dtype)
    return (features * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


class _SVUForClassification(SVUModel):
    """Masked mean pooling of the weighted sum, then dropout and a linear layer."""

    def __init__(self, config: SVUConfig):
        super().__init__(config)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.head = nn.Linear(config.backbone_config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self, input_values, attention_mask=None, labels=None, output_hidden_states=False, **kwargs
    ) -> SVUClassifierOutput:
        features = self._features(input_values, attention_mask, output_hidden_states)
        pooled = masked_mean(features.last_hidden_state, features.frame_mask)
        return self._classify(pooled, labels, features.hidden_states)

    def pooled_layer_states(self, input_values, attention_mask=None) -> torch.Tensor:
        """Masked time-mean of every hidden state, (batch, num_hidden_layers + 1, hidden_size).

        Mean pooling commutes with the weighted sum, so `classify_pooled(pooled_layer_states(x))` equals
        `forward(x)` up to float rounding: with a frozen backbone these can be cached once for stage 1.
        """
        states, frame_mask = self._hidden_states(input_values, attention_mask)
        if self.layer_sum.layer_norm:
            states = [nn.functional.layer_norm(h, h.shape[-1:]) for h in states]
        return torch.stack([masked_mean(h, frame_mask) for h in states], dim=1)

    def classify_pooled(self, pooled_layer_states, labels=None) -> SVUClassifierOutput:
        """Classify from `pooled_layer_states` output (e.g. a stage-1 feature cache), skipping the backbone."""
        expected = (self.config.num_hidden_states, self.config.backbone_config.hidden_size)
        if pooled_layer_states.dim() != 3 or tuple(pooled_layer_states.shape[1:]) != expected:
            raise ValueError(
                f"pooled_layer_states must be (batch, {expected[0]}, {expected[1]}); "
                f"got {tuple(pooled_layer_states.shape)}."
            )
        weights = self.layer_sum.normalized_weights().to(pooled_layer_states.dtype)
        pooled = torch.einsum("l,blh->bh", weights, pooled_layer_states)
        return self._classify(pooled, labels, None)

    def _classify(self, pooled, labels, hidden_states) -> SVUClassifierOutput:
        logits = self.head(self.dropout(pooled))
        loss = None
        if labels is not None:
            labels = labels.reshape(-1).long()
            if labels.numel() != logits.shape[0]:
                raise ValueError(f"labels has {labels.numel()} entries for a batch of {logits.shape[0]}.")
            low, high = labels.min().item(), labels.max().item()
            if low < 0 or high >= self.config.num_labels:
                raise ValueError(f"labels must be class indices in [0, {self.config.num_labels}); got [{low}, {high}].")
            weight = None
            if self.config.class_weights is not None:
                weight = torch.tensor(self.config.class_weights, dtype=logits.dtype, device=logits.device)
            loss = nn.functional.cross_entropy(logits, labels, weight=weight)
        return SVUClassifierOutput(
            loss=loss, logits=logits, hidden_states=hidden_states, layer_weights=self.layer_sum.normalized_weights()
        )


class SVUForSingerID(_SVUForClassification):
    """Singer identification (Artist20 in the paper): one singer label per chunk."""


class SVUForTechniqueClassification(_SVUForClassification):
    """Singing technique classification (VocalSet): weighted cross entropy via `config.class_weights`."""


class SVUForNoteTranscription(SVUModel):
    """Frame-wise note transcription: onset, silence, octave and pitch-class logits per backbone frame (20 ms at
    16 kHz, 13.3 ms at 24 kHz)."""

    def __init__(self, config: SVUConfig):
        super().__init__(config)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.head = nn.Linear(config.backbone_config.hidden_size, config.num_transcription_logits)
        self.post_init()

    def forward(
        self, input_values, attention_mask=None, labels=None, output_hidden_states=False, **kwargs
    ) -> SVUTranscriptionOutput:
        """`labels`: float (batch, frames, 4) from `note_labels.notes_to_frame_targets` at `config.frame_seconds`,
        -100 on padding; labels more than one frame longer or shorter than the logits raise ValueError."""
        return self._frame_head_forward(
            input_values, attention_mask, labels, output_hidden_states, self.transcription_loss, SVUTranscriptionOutput
        )

    def transcription_loss(self, logits, labels, frame_mask):
        """BCE(onset, pos_weight) + BCE(silence) + CE(octave) + CE(pitch class) over real, labelled frames."""
        if labels.dim() != 3 or labels.shape[-1] != 4:
            raise ValueError(f"transcription labels must be (batch, frames, 4); got {tuple(labels.shape)}.")
        logits, labels, frame_mask = align_frames(logits, labels, frame_mask)  # > 1 frame apart: ValueError
        valid = frame_mask & (labels[..., 0] != IGNORE_INDEX)
        logits, labels = logits[valid], labels[valid]
        slices = logit_slices(self.config.num_octaves)
        pos_weight = torch.tensor(self.config.onset_pos_weight, dtype=logits.dtype, device=logits.device)
        bce = nn.functional.binary_cross_entropy_with_logits
        onset = bce(logits[:, slices["onset"]].squeeze(-1), labels[:, 0], pos_weight=pos_weight)
        silence = bce(logits[:, slices["silence"]].squeeze(-1), labels[:, 1])
        octave = nn.functional.cross_entropy(logits[:, slices["octave"]], labels[:, 2].long())
        pitch_class = nn.functional.cross_entropy(logits[:, slices["pitch_class"]], labels[:, 3].long())
        return onset + silence + octave + pitch_class

    def decode(self, logits, frame_mask=None) -> list:
        """Notes ``[(onset_s, offset_s, midi), ...]`` of each batch item, decoded as in the paper with the
        config's thresholds. `logits` (batch, frames, 20); frames where `frame_mask` is False are cut off."""
        notes = []
        for i, item_logits in enumerate(logits):
            if frame_mask is not None:
                item_logits = item_logits[: int(frame_mask[i].sum())]
            notes.append(decode_logits(item_logits, **decoding_options(self.config)))
        return notes

    def transcribe(self, audio, sampling_rate: Optional[int] = None, **kwargs) -> list:
        """Notes ``[(onset_s, offset_s, midi), ...]`` of a 1-D waveform (array or tensor) of any length.

        The audio must be at `config.sampling_rate` (the backbone's rate). Keyword arguments go to
        `long_audio.stitched_posteriors`: `chunk_seconds`, `overlap_seconds`, `batch_size`, `progress`, ...
        """
        if sampling_rate is not None and sampling_rate != self.config.sampling_rate:
            raise ValueError(
                f"audio is at {sampling_rate} Hz; resample it to {self.config.sampling_rate} Hz first "
                "(or use the singing-transcription pipeline with a file path)."
            )
        return transcribe_array(self, audio, **kwargs)


@dataclass
class SVUPitchOutput(ModelOutput):
    """
    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*): pitch-bin BCE + voicing BCE, when `labels` are given.
        logits (`torch.FloatTensor` of shape `(batch_size, num_frames, num_pitch_bins + 1)`):
            per-frame pitch-bin logits, then the voicing logit (decode with `pitch.decode_pitch`).
        frame_mask (`torch.BoolTensor` of shape `(batch_size, num_frames)`): frames of real audio.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*): backbone states, with `output_hidden_states=True`.
        layer_weights (`torch.FloatTensor` of shape `(num_hidden_layers + 1,)`): normalised layer weights.
    """

    loss: Optional[torch.FloatTensor] = None
    logits: Optional[torch.FloatTensor] = None
    frame_mask: Optional[torch.BoolTensor] = None
    hidden_states: Optional[tuple] = None
    layer_weights: Optional[torch.FloatTensor] = None


class SVUForPitchEstimation(SVUModel):
    """Frame-level singing F0: per backbone frame, `num_pitch_bins` pitch-bin logits (20-cent bins from C1 by
    default, as CREPE) and a voicing logit, from an MLP (linear to `pitch_head_hidden_size`, GELU, linear) on the
    weighted layer sum.
    `modeling_svu.pitch` holds the bins, the training targets and the decoding to Hz."""

    def __init__(self, config: SVUConfig):
        super().__init__(config)
        hidden, width = config.backbone_config.hidden_size, config.pitch_head_hidden_size
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.head = nn.Sequential(nn.Linear(hidden, width), nn.GELU(), nn.Linear(width, config.num_pitch_bins + 1))
        self.post_init()

    def _init_weights(self, module):
        super()._init_weights(module)
        head = getattr(self, "head", None)
        if head is not None and module is head[-1]:
            # Bin biases at the mean target of a bin (a Gaussian's mass spread over all bins), not at 0.5: the
            # BCE then starts near its floor instead of first pushing 360 logits down (voicing stays at 0).
            cfg = self.config
            prior = cfg.pitch_target_sigma_cents * math.sqrt(2 * math.pi) / (100.0 / cfg.pitch_bins_per_semitone * cfg.num_pitch_bins)
            module.bias.data[:-1] = math.log(prior / (1 - prior))

    def forward(self, input_values, attention_mask=None, labels=None, output_hidden_states=False, **kwargs) -> SVUPitchOutput:
        """`labels`: float (batch, frames, num_pitch_bins + 1) from `pitch.pitch_targets` at the model's frame times
        (`pitch.frame_times`), -100 on padding; labels more than one frame longer or shorter raise ValueError."""
        return self._frame_head_forward(
            input_values, attention_mask, labels, output_hidden_states, self.pitch_loss, SVUPitchOutput
        )

    def pitch_loss(self, logits, labels, frame_mask):
        """BCE of the pitch bins against their Gaussian targets on voiced frames (mean over frames of the sum over
        bins) + BCE of the voicing logit on every real, labelled frame (as CREPE's bins, plus voicing)."""
        expected = self.config.num_pitch_bins + 1
        if labels.dim() != 3 or labels.shape[-1] != expected:
            raise ValueError(f"pitch labels must be (batch, frames, {expected}); got {tuple(labels.shape)}.")
        logits, labels, frame_mask = align_frames(logits, labels, frame_mask)  # > 1 frame apart: ValueError
        valid = frame_mask & (labels[..., -1] != IGNORE_INDEX)
        logits, labels = logits[valid], labels[valid].to(logits.dtype)
        bce = nn.functional.binary_cross_entropy_with_logits
        voicing = bce(logits[:, -1], labels[:, -1])
        voiced = labels[:, -1] > 0.5
        if not voiced.any():
            return voicing + 0.0 * logits[:, :-1].sum()  # keeps every head parameter in the graph (DDP)
        bins = bce(logits[voiced, :-1], labels[voiced, :-1], reduction="sum") / voiced.sum()
        return bins + voicing

    def decode(self, logits, frame_mask=None, voicing_threshold=None) -> list:
        """`pitch.decode_pitch` of each batch item (`f0_hz`, `voicing`, `voiced`, `pitch_hz`), frames where
        `frame_mask` is False cut off; the voicing threshold is the config's unless given."""
        decoded = []
        for i, item_logits in enumerate(logits):
            if frame_mask is not None:
                item_logits = item_logits[: int(frame_mask[i].sum())]
            decoded.append(decode_pitch(item_logits, self.config, voicing_threshold))
        return decoded



@dataclass
class SVULyricsOutput(SVUPitchOutput):
    """
    The fields of every frame-wise head's output (`SVUPitchOutput`'s):

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*): CTC loss, when `labels` are given.
        logits (`torch.FloatTensor` of shape `(batch_size, num_frames, len(config.ctc_vocab))`): per-frame token
            scores before log-softmax (decode with `ctc.greedy_decode` / `ctc.beam_decode`).
        frame_mask (`torch.BoolTensor` of shape `(batch_size, num_frames)`): frames of real audio.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*): backbone states, with `output_hidden_states=True`.
        layer_weights (`torch.FloatTensor` of shape `(num_hidden_layers + 1,)`): normalised layer weights.
    """


# The layer-sum logits of the other states below the last one's when a checkpoint's CTC head initialises the head:
# each gets e^-20 (2e-9) of the weight, so the logits are the checkpoint's to float precision, and still trains.
LAST_LAYER_LOGIT_GAP = -20.0


class SVUForLyricsTranscription(SVUModel):
    """Lyrics transcription: a linear CTC head over `config.ctc_vocab` (characters; `<pad>` is the blank) on every
    frame of the weighted layer sum. Saved with its `Wav2Vec2CTCTokenizer` (`vocab.json`) and `Wav2Vec2Processor`."""

    def __init__(self, config: SVUConfig):
        super().__init__(config)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.head = nn.Linear(config.backbone_config.hidden_size, config.ctc_vocab_size)
        self.post_init()

    def _init_weights(self, module):
        super()._init_weights(module)
        if module is getattr(self, "head", None):  # the blank starts at `ctc_blank_bias` (0: every token alike)
            module.bias.data[self.config.ctc_vocab.index(PAD)] = self.config.ctc_blank_bias

    def forward(self, input_values, attention_mask=None, labels=None, output_hidden_states=False, **kwargs) -> SVULyricsOutput:
        """`labels`: (batch, tokens) token ids (`ctc.encode`), padded with -100."""
        return self._frame_head_forward(
            input_values, attention_mask, labels, output_hidden_states, self.ctc_loss, SVULyricsOutput
        )

    def ctc_loss(self, logits, labels, frame_mask):
        """CTC of the log-softmax over the real frames against the non-negative label ids (as `Wav2Vec2ForCTC`)."""
        if labels.dim() != 2:
            raise ValueError(f"lyrics labels must be (batch, tokens) token ids; got {tuple(labels.shape)}.")
        labels = labels.to(logits.device).long()
        if labels.numel() and int(labels.max()) >= self.config.ctc_vocab_size:
            raise ValueError(f"lyrics labels must be token ids below {self.config.ctc_vocab_size}.")
        target_mask = labels >= 0
        log_probs = nn.functional.log_softmax(logits, dim=-1, dtype=torch.float32).transpose(0, 1)
        with torch.backends.cudnn.flags(enabled=False):
            return nn.functional.ctc_loss(
                log_probs, labels[target_mask], frame_mask.sum(-1), target_mask.sum(-1),
                blank=self.config.ctc_vocab.index(PAD), reduction=self.config.ctc_loss_reduction,
                zero_infinity=self.config.ctc_zero_infinity,
            )  # fmt: skip

    def decode(self, logits, frame_mask=None, decoder="greedy", beam_width=32, lm_path=None) -> list:
        """`ctc.decode` of each batch item (``{"text", "tokens", "words"}``, word times in seconds), frames where
        `frame_mask` is False cut off."""
        decoded = []
        for i, item_logits in enumerate(logits):
            if frame_mask is not None:
                item_logits = item_logits[: int(frame_mask[i].sum())]
            result = ctc_decode(item_logits, self.config.ctc_vocab, decoder, beam_width, lm_path)
            result["words"] = word_timings(result["tokens"], self.config.frame_seconds)
            decoded.append(result)
        return decoded

    def init_from_published(self, loaded) -> None:
        """A `*ForCTC` checkpoint whose vocab.json is `config.ctc_vocab` (facebook/wav2vec2-base-960h and the default
        vocabulary) initialises the CTC head with its `lm_head`, and the layer sum with (almost) all its weight on
        the last layer, the one that head was trained on: before training the model gives the checkpoint's own
        logits (the speech-to-singing transfer of Ou et al.). Other vocabularies keep a random head (one line)."""
        if not loaded.ctc_head:
            return
        vocab = {token: i for i, token in enumerate(self.config.ctc_vocab)}
        if loaded.vocab != vocab or tuple(loaded.ctc_head["weight"].shape) != tuple(self.head.weight.shape):
            logging.getLogger(__name__).warning(
                "%s: its CTC head is for another vocabulary than ctc_vocab; the lyrics head starts random.", loaded.location)
            return
        with torch.no_grad():
            self.head.weight.copy_(loaded.ctc_head["weight"])
            self.head.bias.copy_(loaded.ctc_head["bias"])
            self.layer_sum.weight.fill_(LAST_LAYER_LOGIT_GAP)
            self.layer_sum.weight[-1] = 0.0
        loaded.dropped = [name for name in loaded.dropped if not name.startswith("lm_head.")]
        self.config.ctc_head_init = loaded.location

    def save_pretrained(self, save_directory, *args, **kwargs):
        """As every SVU model, plus the tokenizer (`vocab.json`) and processor of its vocabulary."""
        super().save_pretrained(save_directory, *args, **kwargs)
        if kwargs.get("is_main_process", True):
            save_processor(self.config.ctc_vocab, self.feature_extractor(), save_directory)


# task name -> its model class, as `tasks.TASKS` pairs them; each class learns its task from the same table.
TASK_MODELS = {task.name: globals()[task.model_class] for task in TASKS.values()}
for _name, _model_class in TASK_MODELS.items():
    _model_class.task = _name

