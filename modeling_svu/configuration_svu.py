"""Configuration of SVU models: a backbone sub-config plus the layer sum, head and task options."""

import copy
import inspect

from transformers import AutoConfig, PretrainedConfig

from .backbones import FAMILIES, family_of
from .ctc import DEFAULT_VOCAB, check_vocab
from .frame_geometry import FrameGeometry
from .note_labels import num_transcription_logits
from .tasks import DEFAULT_TASK, TASKS, TOKEN_SEQUENCE, check_task_options, get_task


def _copy_backbone_config(value) -> PretrainedConfig:
    """A copy of `value` (a supported backbone config or its dict) as a config object."""
    if value is None:
        return FAMILIES["wav2vec2"].config_class()
    if isinstance(value, dict):
        value = dict(value)
        return family_of(value.pop("model_type", None)).config_class(**value)
    if not isinstance(value, PretrainedConfig):
        raise ValueError(
            f"backbone_config must be a backbone config or its dict, got {type(value).__name__} {value!r}; "
            "use SVUFor...from_backbone(name_or_path) for names and paths."
        )
    family_of(value)
    return copy.deepcopy(value)


class SVUConfig(FrameGeometry, PretrainedConfig):
    r"""
    Configuration for [`SVUModel`] and its task heads. A field of one task (`Task.options`: "Transcription only",
    "Pitch decoding", ...) set to another value than its default on a model of another task is a ValueError.

    Args:
        backbone_config (`dict` or `PretrainedConfig`, *optional*):
            Config of the SSL backbone: a `Wav2Vec2Config`, `WavLMConfig`, `HubertConfig` (MERT-v0) or
            `Data2VecAudioConfig` (music2vec), or its dict. Defaults to a wav2vec2-base config. It is copied,
            and the copy's `layerdrop` is forced to `0.0`: a dropped layer would drop a hidden state from the sum.
        task (`str`, *optional*, defaults to `tasks.DEFAULT_TASK`):
            A task of `tasks.TASKS` (`tasks.TASK_NAMES` lists them): the task of the model, whose class is
            `TASK_MODELS[task]` (a saved task model maps `AutoModel` to its own class).
        layer_norm_per_layer (`bool`, *optional*, defaults to `False`):
            Apply a parameter-free LayerNorm to each hidden state before the weighted sum. Off in the paper.
        classifier_dropout (`float`, *optional*, defaults to 0.0):
            Dropout on the (pooled) weighted-sum features before the linear head.
        normalize_audio (`bool`, *optional*, defaults to `True`):
            `do_normalize` of the saved feature extractor: zero-mean/unit-variance normalisation of each input
            waveform. `from_backbone` copies it from the backbone checkpoint's preprocessor config, else uses the
            family's convention (True for wav2vec2-base, MERT-v0, music2vec; False for WavLM-base-plus).
        sampling_rate (`int`, *optional*, defaults to 16000):
            Input sampling rate in Hz of the backbone checkpoint (16000 for wav2vec2, WavLM, MERT-v0, music2vec;
            24000 for MERT-v1). Audio at another rate is resampled to it (collator, pipelines, `svu transcribe`);
            the frame rate is `sampling_rate / frame_hop_samples` (50 Hz at 16 kHz, 75 Hz at 24 kHz).
        chunk_seconds (`float`, *optional*, defaults to 5.0):
            Chunk length of the training data (the training script copies it from the prepared dataset: 5 s
            singer ID / transcription, 3 s technique in the paper), and the default window of long-audio
            transcription.
        class_weights (`list[float]`, *optional*):
            Classification only. Per-class weights of the cross entropy (the paper uses `1 / n_c ** 0.2` for
            technique).
        lowest_midi (`int`, *optional*, defaults to 36):
            Transcription only. MIDI note of octave 0, pitch class 0 (36 = C2).
        num_octaves (`int`, *optional*, defaults to 4):
            Transcription only. Octaves covered (36-83 for the defaults); the octave output has one more
            class for "no note".
        onset_pos_weight (`float`, *optional*, defaults to 15.0):
            Transcription only. `pos_weight` of the onset BCE.
        onset_threshold (`float`, *optional*, defaults to 0.4):
            Transcription decoding: minimum onset probability of an onset frame.
        onset_window (`int`, *optional*, defaults to 3):
            Transcription decoding: an onset frame is the maximum within +-`onset_window` frames.
        silence_threshold (`float`, *optional*, defaults to 0.5):
            Transcription decoding: a note ends at the first frame with silence probability >= this.
        pitch_fmin_hz (`float`, *optional*, defaults to 32.70):
            Pitch only. Frequency of pitch bin 0 (C1 = 32.70 Hz, as CREPE).
        pitch_bins_per_semitone (`int`, *optional*, defaults to 5):
            Pitch only. Bins per semitone (5: 20-cent bins, as CREPE).
        num_pitch_bins (`int`, *optional*, defaults to 360):
            Pitch only. Pitch bins of the head; the head has one more logit, voicing. 360 x 20 cents span six
            octaves, C1 (32.70 Hz) to 2.07 kHz (CREPE's bins: its last bin centre is 7180 cents above C1).
        pitch_target_sigma_cents (`float`, *optional*, defaults to 25.0):
            Pitch only. Standard deviation in cents of the Gaussian over the bins around the true pitch in the
            training targets (25 cents, as CREPE).
        pitch_head_hidden_size (`int`, *optional*, defaults to 512):
            Pitch only. Width of the head's hidden layer. The bin logits are a linear map of it, so their rank
            is at most this: keep it wider than the bins in use (at a tiny backbone's 32, the pitch demo learnt
            half as fast).
        voicing_threshold (`float`, *optional*, defaults to 0.5):
            Pitch decoding: a frame is voiced when its voicing probability is >= this (`pitch.decode_pitch` takes
            another per call).
        ctc_vocab (`list[str]`, *optional*):
            Lyrics only. The CTC vocabulary, token `i` at index `i` (saved as the tokenizer's `vocab.json`): the
            pad token `<pad>` is the CTC blank, `|` the word delimiter. Defaults (lyrics) to the 32 characters of
            `facebook/wav2vec2-base-960h`, so that checkpoint's CTC head can initialise the head.
        ctc_loss_reduction (`str`, *optional*, defaults to `"mean"`):
            Lyrics only. "mean" (each sequence's loss divided by its target length, then averaged) or "sum".
        ctc_zero_infinity (`bool`, *optional*, defaults to `True`):
            Lyrics only. Zero the loss of a chunk whose target cannot be aligned (more tokens than frames).
        ctc_blank_bias (`float`, *optional*, defaults to 0.0):
            Lyrics only. The starting bias of the blank logit of a randomly initialised CTC head: a positive value
            (the lyrics demo: 3) starts the model emitting blanks, so training spends no steps unlearning random
            characters. A head initialised from a checkpoint's CTC head keeps that head's bias.
    """

    model_type = "svu"
    sub_configs = {"backbone_config": AutoConfig}

    def __init__(
        self,
        backbone_config=None,
        task: str = DEFAULT_TASK,
        layer_norm_per_layer: bool = False,
        classifier_dropout: float = 0.0,
        normalize_audio: bool = True,
        sampling_rate: int = 16000,
        chunk_seconds: float = 5.0,
        class_weights=None,
        lowest_midi: int = 36,
        num_octaves: int = 4,
        onset_pos_weight: float = 15.0,
        onset_threshold: float = 0.4,
        onset_window: int = 3,
        silence_threshold: float = 0.5,
        pitch_fmin_hz: float = 32.70,
        pitch_bins_per_semitone: int = 5,
        num_pitch_bins: int = 360,
        pitch_target_sigma_cents: float = 25.0,
        pitch_head_hidden_size: int = 512,
        voicing_threshold: float = 0.5,
        ctc_vocab=None,
        ctc_loss_reduction: str = "mean",
        ctc_zero_infinity: bool = True,
        ctc_blank_bias: float = 0.0,
        **kwargs,
    ):
        backbone_config = _copy_backbone_config(backbone_config)
        backbone_config.layerdrop = 0.0
        self.backbone_config = backbone_config
        self.task = task
        self.layer_norm_per_layer = layer_norm_per_layer
        self.classifier_dropout = classifier_dropout
        self.normalize_audio = normalize_audio
        self.sampling_rate = sampling_rate
        self.chunk_seconds = chunk_seconds
        self.class_weights = list(class_weights) if class_weights is not None else None
        self.lowest_midi = lowest_midi
        self.num_octaves = num_octaves
        self.onset_pos_weight = onset_pos_weight
        self.onset_threshold = onset_threshold
        self.onset_window = onset_window
        self.silence_threshold = silence_threshold
        self.pitch_fmin_hz = pitch_fmin_hz
        self.pitch_bins_per_semitone = pitch_bins_per_semitone
        self.num_pitch_bins = num_pitch_bins
        self.pitch_target_sigma_cents = pitch_target_sigma_cents
        self.pitch_head_hidden_size = pitch_head_hidden_size
        self.voicing_threshold = voicing_threshold
        spec = TASKS.get(task) if isinstance(task, str) else None  # an unknown task: validate()'s one line
        if ctc_vocab is None and spec is not None and spec.target == TOKEN_SEQUENCE:
            ctc_vocab = DEFAULT_VOCAB
        self.ctc_vocab = list(ctc_vocab) if ctc_vocab is not None else None
        self.ctc_loss_reduction = ctc_loss_reduction
        self.ctc_zero_infinity = ctc_zero_infinity
        self.ctc_blank_bias = ctc_blank_bias
        num_labels = kwargs.pop("num_labels", None)
        super().__init__(**kwargs)
        if num_labels is not None and self.id2label is not None and num_labels != len(self.id2label):
            raise ValueError(
                f"num_labels={num_labels} does not match id2label, which has {len(self.id2label)} labels."
            )
        if num_labels is not None and kwargs.get("id2label") is None:
            self.num_labels = num_labels
        self.validate()

    def validate(self):
        """Cross-field checks; ValueError quoting the offending values."""
        task = get_task(self.task)
        check_task_options(self.task, self.changed_fields())
        if isinstance(self.sampling_rate, bool) or not isinstance(self.sampling_rate, int) or self.sampling_rate < 1000:
            raise ValueError(
                f"sampling_rate={self.sampling_rate!r} must be the backbone's input rate in Hz, an integer such as "
                "16000 (wav2vec2, WavLM, MERT-v0, music2vec) or 24000 (MERT-v1)."
            )
        if self.class_weights is not None and task.classes:
            if len(self.class_weights) != self.num_labels:
                raise ValueError(
                    f"class_weights has {len(self.class_weights)} entries for {self.num_labels} labels."
                )
        if not (isinstance(self.num_octaves, int) and self.num_octaves >= 1):
            raise ValueError(f"num_octaves={self.num_octaves!r} must be an integer >= 1 (octaves of the transcription head).")
        if not 0 <= self.lowest_midi <= 127 - 12 * self.num_octaves:
            raise ValueError(
                f"lowest_midi={self.lowest_midi}, num_octaves={self.num_octaves} leave the MIDI range 0-127."
            )
        for name in ("num_pitch_bins", "pitch_bins_per_semitone", "pitch_head_hidden_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be an integer >= 1.")
        for name in ("pitch_fmin_hz", "pitch_target_sigma_cents"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}={getattr(self, name)!r} must be > 0.")
        if not 0.0 <= self.voicing_threshold <= 1.0:
            raise ValueError(f"voicing_threshold={self.voicing_threshold!r} must be a probability in [0, 1].")
        if self.ctc_vocab is not None:
            check_vocab(self.ctc_vocab)
        if self.ctc_loss_reduction not in ("mean", "sum"):
            raise ValueError(f"ctc_loss_reduction={self.ctc_loss_reduction!r} must be 'mean' or 'sum'.")

    def changed_fields(self) -> list:
        """The fields of `__init__` whose value is not their default (a task's options must be set on it only)."""
        parameters = inspect.signature(SVUConfig.__init__).parameters.values()
        return [p.name for p in parameters if p.default is not p.empty and getattr(self, p.name) != p.default]

    @property
    def num_hidden_states(self) -> int:
        """States summed by the layer sum: the CNN-projection output + one per transformer layer."""
        return self.backbone_config.num_hidden_layers + 1

    @property
    def num_transcription_logits(self) -> int:
        return num_transcription_logits(self.num_octaves)
