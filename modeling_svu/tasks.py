"""The SVU tasks: each declared once, in one table that the model, training, data, card and CLI code all read.

    from svu.modeling_svu.tasks import TASKS, get_task
    task = get_task("technique")        # one ValueError line listing the known tasks if the name is unknown
    task.model_class, task.target_column, task.selection_metrics[0], task.pipeline_tag
    task.hook("report")                 # svu.evaluate.class_report: code outside remote code, imported on demand

An entry holds facts (names, columns, target kind, text) and names the code of its task: this file is Hub remote
code and imports only the standard library, so the model and pipeline classes are names in `modeling_svu.py` /
`pipeline_svu.py` (the remote code) and every other piece of code is a hook, `"svu.module:attribute"`, imported by
`Task.hook` when called. Dispatch reads the entry; no code outside this table branches on a task's name.

Adding a task: docs/tasks.md ("Adding a task").
"""

import importlib
from dataclasses import dataclass
from typing import Callable, Optional

# What a task's model learns to predict (`Task.target`):
CHUNK_LABEL = "chunk label"  # one class per chunk, from a time-pooled head (the `label` column)
FRAME_LABELS = "frame labels"  # a class per frame (e.g. technique detection)
FRAME_CONTOUR = "frame contour"  # a value per frame (e.g. F0 in Hz)
NOTE_EVENTS = "note events"  # notes (onset, offset, pitch), learnt as frame targets made from them
TOKEN_SEQUENCE = "token sequence"  # text, learnt as a sequence of vocabulary tokens without frame alignment (CTC)
TARGET_KINDS = (CHUNK_LABEL, FRAME_LABELS, FRAME_CONTOUR, NOTE_EVENTS, TOKEN_SEQUENCE)
# the `Task` fields naming code outside remote code ("svu.module:attribute"), resolved by `Task.hook`
HOOKS = ("collate", "scoring", "report", "synthetic", "distillation")


@dataclass(frozen=True)
class CardMetric:
    """A test metric as model cards report it."""

    key: str  # as in metrics.json
    name: str  # shown in the card's table and model-index
    type: Optional[str] = None  # model-index metric type; None: the key lower-cased
    args: tuple = ()  # model-index metric args, as (name, value) pairs

    @property
    def metric_type(self) -> str:
        return self.type or self.key.lower()


MACRO_F1 = CardMetric("macro_f1", "Macro F1", "f1", (("average", "macro"),))
ACCURACY = CardMetric("accuracy", "Accuracy", "accuracy")
BALANCED_ACCURACY = CardMetric("balanced_accuracy", "Balanced accuracy", "balanced_accuracy")
TOP2_ACCURACY = CardMetric("top2_accuracy", "Top-2 accuracy", "top_2_accuracy", (("k", 2),))
TOP3_ACCURACY = CardMetric("top3_accuracy", "Top-3 accuracy", "top_3_accuracy", (("k", 3),))
CLASSIFICATION_METRICS = tuple(m.key for m in (MACRO_F1, ACCURACY, BALANCED_ACCURACY, TOP2_ACCURACY, TOP3_ACCURACY))


def as_is(value: str) -> str:
    return value


def recording_of_clip(clip_id: str) -> str:
    """The recording (album) of a singer-ID chunk's clip: Artist20 clip ids are `artist/album/track`, so the album
    is all but the track; a synthetic `singer/recordingN` clip is its own recording."""
    return clip_id.rsplit("/", 1)[0] if clip_id.count("/") >= 2 else clip_id


@dataclass(frozen=True)
class Task:
    # ---- model ----
    name: str  # the value of `SVUConfig.task`, `TrainConfig.task` and `svu_meta.json` "task"
    model_class: str  # its class in modeling_svu.py
    head_shape: str  # what sizes the head, formatted with `config=` (load errors quote it)
    target: str  # what the model predicts: one of TARGET_KINDS
    auto_classes: tuple  # auto classes mapped to the model class in a saved repo's auto_map, besides AutoModel
    pipeline: str  # the transformers pipeline task running a saved model; the Space's view follows it too
    pipeline_class: str  # its class in pipeline_svu.py (saved with the model; registered unless transformers has it)
    native_unsupported: Optional[str]  # why transformers has no class of its own computing the model; None: it has
    # ---- data ----
    target_column: str  # the dataset column the loss reads
    target_companions: tuple  # the other columns its collate reads (e.g. the times of an F0 annotation)
    collate: str  # hook: the `train.data.AudioCollator` method turning a batch of it into `labels`
    synthetic: str  # hook: the `dataset_scripts.synthetic.SyntheticTask` making the task's synthetic corpus
    leakage: str  # what must not appear in two splits (in words)
    leakage_column: str  # the column it is read from ...
    leakage_group: Callable[[str], str]  # ... by this function of the column value
    # ---- training ----
    class_weighted: bool  # the loss weighs class c by w_c = 1/n_c^0.2 of the training split (`svu_meta.json`)
    metric: str  # the local `evaluate` module train/metrics/<metric>/ scoring validation and test
    scoring: str  # hook: the `train.evaluation.Scoring` of validation and test
    report: str  # hook: the detailed report `svu evaluate` writes next to metrics.json
    distillation: str  # hook: the `train.distill_targets` target a student learns from a teacher (`svu distill`)
    selection_metrics: tuple  # validation metrics that may pick the best epoch; the first is the default
    # ---- model and dataset cards, command line ----
    title: str
    pipeline_tag: str
    dataset_category: str  # Hub `task_categories` of a prepared dataset of the task
    card_tags: tuple
    card_metrics: tuple  # the `CardMetric`s of the card's model-index and table, in this order
    paper_corpus: Optional[str]  # the paper's corpus of the task (`model_cards.paper_results`); None: not in the paper
    loss: str  # the loss, in words
    outputs: str  # what the model outputs, in words (a card shows the class names instead when there are some)
    usage: str  # a call of the pipeline (the variable before the parenthesis) on a file, for cards
    long_audio: str  # how longer recordings are handled, in words
    cli_verb: Optional[str] = None  # `svu <verb>` running such a model on audio files (several tasks may share one)
    # its `svu <cli_verb> --engine onnx` runs a repo whose export is cached from config.json and the export alone,
    # without torch or transformers (`saved_onnx`, `svu.common.load_model_and_engine`)
    onnx_without_torch: bool = False
    # what a prepared dataset holds as labels, in words, when they are not class names (its dataset card)
    dataset_labels: Optional[str] = None
    endpoint_defaults: tuple = ()  # (option, value) pairs of the pipeline call of the Inference Endpoints handler
    # `SVUConfig` fields, pipeline call options and training config fields that apply to this task only
    # (`check_task_options`)
    options: tuple = ()

    def __post_init__(self):
        if self.target not in TARGET_KINDS:
            raise ValueError(f"task {self.name}: target {self.target!r} is not one of {TARGET_KINDS}.")

    @property
    def classes(self) -> bool:
        """Named classes: id2label / num_labels / class weights and a ClassLabel column apply."""
        return self.target in (CHUNK_LABEL, FRAME_LABELS)

    @property
    def pooled(self) -> bool:
        """One prediction per chunk from a time-pooled head, trained on the chunk's `label` (a stage-1 cache of
        pooled states is exact); else a prediction per frame."""
        return self.target == CHUNK_LABEL

    @property
    def default_selection_metric(self) -> str:
        return self.selection_metrics[0]

    @property
    def card_metric_keys(self) -> tuple:
        return tuple(metric.key for metric in self.card_metrics)

    def hook(self, name: str):
        """The object a hook field names (`HOOKS`), imported now; ValueError (one line) if the task has none."""
        path = getattr(self, name) if name in HOOKS else None
        if not path:
            raise ValueError(f"task {self.name} has no {name!r} hook ({', '.join(HOOKS)}).")
        module, _, attribute = path.partition(":")
        found = importlib.import_module(module)
        for part in attribute.split("."):
            found = getattr(found, part)
        return found

    def describe_head(self, config) -> str:
        return f"task={self.name}, " + self.head_shape.format(config=config)


_CLASSIFIER = dict(
    head_shape="num_labels={config.num_labels}",
    target=CHUNK_LABEL,
    auto_classes=("AutoModelForAudioClassification",),
    pipeline="audio-classification",
    pipeline_class="SVUAudioClassificationPipeline",
    native_unsupported=None,  # the family's *ForSequenceClassification with use_weighted_layer_sum
    target_column="label",
    target_companions=(),
    collate="svu.train.data:AudioCollator.class_indices",
    metric="classification",
    scoring="svu.train.evaluation:CLASSIFICATION_SCORING",
    report="svu.evaluate:class_report",
    distillation="svu.train.distill_targets:CLASS_LOGITS",
    pipeline_tag="audio-classification",
    dataset_category="audio-classification",
    outputs="one class per chunk",
    usage='classifier("take.wav", top_k=3)',
    long_audio="clip-level aggregation is reported as an extra",
    cli_verb="classify",
    onnx_without_torch=True,
    options=("class_weights", "top_k", "function_to_apply", "cache_stage1"),
)

TASKS = {
    task.name: task
    for task in (
        Task(
            name="singer_id",
            model_class="SVUForSingerID",
            leakage="recording/album",  # every singer is in every split, a recording in one only
            leakage_column="clip_id",
            leakage_group=recording_of_clip,
            synthetic="svu.dataset_scripts.synthetic:SINGER_ID",
            class_weighted=False,
            selection_metrics=CLASSIFICATION_METRICS,
            title="Singer identification",
            card_tags=("singer-id",),
            card_metrics=(MACRO_F1, TOP2_ACCURACY, TOP3_ACCURACY, ACCURACY, BALANCED_ACCURACY),
            paper_corpus="Artist20",
            loss="Cross entropy.",
            **_CLASSIFIER,
        ),
        Task(
            name="technique",
            model_class="SVUForTechniqueClassification",
            leakage="singer",
            leakage_column="singer",
            leakage_group=as_is,
            synthetic="svu.dataset_scripts.synthetic:TECHNIQUE",
            class_weighted=True,
            selection_metrics=CLASSIFICATION_METRICS,
            title="Singing technique classification",
            card_tags=("technique",),
            card_metrics=(MACRO_F1, ACCURACY, BALANCED_ACCURACY, TOP2_ACCURACY, TOP3_ACCURACY),
            paper_corpus="VocalSet",
            loss="Weighted cross entropy, w_c = 1/n_c^0.2.",
            **_CLASSIFIER,
        ),
        Task(
            name="transcription",
            model_class="SVUForNoteTranscription",
            head_shape="num_octaves={config.num_octaves} -> {config.num_transcription_logits} logits",
            target=NOTE_EVENTS,
            # frame logits; its `singing-transcription` pipeline loads the model through this auto class
            auto_classes=("AutoModelForAudioFrameClassification",),
            pipeline="singing-transcription",
            pipeline_class="SingingTranscriptionPipeline",
            native_unsupported="transcription has no transformers class (frame-wise onset/silence/octave/pitch-class head)",
            target_column="notes_unclipped",
            target_companions=(),
            collate="svu.train.data:AudioCollator.padded_frame_targets",  # computed for the model from the notes
            synthetic="svu.dataset_scripts.synthetic:TRANSCRIPTION",
            leakage="song",
            leakage_column="song_id",
            leakage_group=as_is,
            class_weighted=False,
            metric="transcription",
            scoring="svu.train.evaluation:TRANSCRIPTION_SCORING",
            report="svu.evaluate:transcription_report",
            distillation="svu.train.distill_targets:NOTE_POSTERIORS",
            selection_metrics=(
                "COnPOff_f1", "COnP_f1", "COn_f1", "frame_onset_f1", "frame_voicing_accuracy", "frame_note_accuracy",
            ),
            title="Singing note transcription",
            pipeline_tag="other",
            dataset_category="audio-classification",
            card_tags=("transcription",),
            card_metrics=(
                CardMetric("COnPOff_f1", "COnPOff F1"), CardMetric("COnP_f1", "COnP F1"), CardMetric("COn_f1", "COn F1"),
                CardMetric("frame_note_accuracy", "Frame note accuracy"), CardMetric("frame_onset_f1", "Frame onset F1"),
                CardMetric("frame_voicing_accuracy", "Frame voicing accuracy"),
            ),
            paper_corpus="MIR-ST500",
            loss="Transcription loss: BCE(onset, pos_weight 15) + BCE(silence) + CE(octave) + CE(pitch class).",
            outputs="frame-wise onset / silence / octave / pitch class",
            usage='transcriber("song.wav", return_midi=True, onset_threshold=0.4)    # {"notes": [...], "midi": b"MThd..."}',
            long_audio="the pipeline transcribes any length in overlapping windows",
            cli_verb="transcribe",
            onnx_without_torch=True,
            dataset_labels="notes (`notes_unclipped`: onset and offset in seconds from the chunk start, MIDI pitch; "
            "`notes`: cut at the chunk edges), frame targets made at collate time",
            endpoint_defaults=(("return_midi", True),),
            options=(
                "lowest_midi", "num_octaves", "onset_pos_weight", "onset_threshold", "onset_window", "silence_threshold",
                "return_midi", "return_posteriors", "pitch_model",
            ),
        ),
        Task(
            name="pitch",
            model_class="SVUForPitchEstimation",
            head_shape="num_pitch_bins={config.num_pitch_bins} + voicing",
            target=FRAME_CONTOUR,
            auto_classes=("AutoModelForAudioFrameClassification",),  # frame logits, as transcription
            pipeline="singing-pitch",
            pipeline_class="SingingPitchPipeline",
            native_unsupported="pitch estimation has no transformers class (frame-wise pitch-bin + voicing head)",
            target_column="f0_hz",
            target_companions=("f0_times",),
            collate="svu.train.data:AudioCollator.padded_pitch_targets",  # onto the model's frames
            synthetic="svu.dataset_scripts.synthetic:PITCH",
            leakage="song",
            leakage_column="song_id",
            leakage_group=as_is,
            class_weighted=False,
            metric="pitch",
            scoring="svu.train.evaluation:PITCH_SCORING",
            report="svu.evaluate:pitch_report",
            distillation="svu.train.distill_targets:PITCH_POSTERIORS",
            selection_metrics=(
                "raw_pitch_accuracy", "overall_accuracy", "raw_chroma_accuracy", "voicing_recall",
            ),
            title="Singing pitch estimation",
            pipeline_tag="other",
            dataset_category="audio-classification",
            card_tags=("pitch", "f0-estimation"),
            card_metrics=(
                CardMetric("raw_pitch_accuracy", "Raw pitch accuracy (50 cents)"),
                CardMetric("raw_chroma_accuracy", "Raw chroma accuracy (50 cents)"),
                CardMetric("overall_accuracy", "Overall accuracy"), CardMetric("voicing_recall", "Voicing recall"),
                CardMetric("voicing_false_alarm", "Voicing false alarm"),
            ),
            paper_corpus=None,  # a task beyond the paper (its future work): no paper numbers
            loss="BCE on Gaussian-blurred pitch bins (sigma 25 cents, voiced frames) + BCE(voicing).",
            outputs="frame-wise F0 in Hz and voicing confidence",
            usage='pitch = estimator("take.wav")    # {"times": [...], "f0_hz": [...], "voicing": [...]}',
            long_audio="the pipeline runs any length in overlapping windows",
            cli_verb="pitch",
            onnx_without_torch=True,
            dataset_labels="F0 in Hz per annotated frame (`f0_times`, `f0_hz`; 0 = unvoiced), frame targets made at "
            "collate time",
            options=(
                "pitch_fmin_hz", "pitch_bins_per_semitone", "num_pitch_bins", "pitch_target_sigma_cents",
                "pitch_head_hidden_size", "voicing_threshold",
            ),
        ),
        Task(
            name="lyrics",
            model_class="SVUForLyricsTranscription",
            head_shape="ctc_vocab of {config.ctc_vocab_size} tokens",
            target=TOKEN_SEQUENCE,
            # CTC logits, as transformers' *ForCTC models; the ASR pipeline name is transformers' own task
            auto_classes=("AutoModelForCTC",),
            pipeline="automatic-speech-recognition",
            pipeline_class="LyricsTranscriptionPipeline",
            native_unsupported="lyrics transcription has no transformers class with a weighted layer sum under CTC",
            target_column="text",
            target_companions=(),
            collate="svu.train.data:AudioCollator.padded_token_ids",
            synthetic="svu.dataset_scripts.synthetic:LYRICS",
            distillation="svu.train.distill_targets:TOKEN_POSTERIORS",
            leakage="song",
            leakage_column="song_id",
            leakage_group=as_is,
            class_weighted=False,
            metric="lyrics",
            scoring="svu.train.evaluation:LYRICS_SCORING",
            report="svu.evaluate:lyrics_report",
            selection_metrics=("neg_cer", "neg_wer"),
            title="Lyrics transcription",
            pipeline_tag="automatic-speech-recognition",
            dataset_category="automatic-speech-recognition",
            card_tags=("lyrics", "lyrics-transcription", "ctc"),
            card_metrics=(CardMetric("wer", "WER", "wer"), CardMetric("cer", "CER", "cer")),
            paper_corpus=None,  # beyond the paper
            loss="CTC over the character vocabulary (blank = the pad token).",
            outputs="lyrics as text, with word timings from the CTC alignment",
            usage='transcriber("song.wav", return_timestamps="word")    # {"text": "...", "chunks": [{"text", "timestamp"}]}',
            long_audio="the pipeline transcribes any length in overlapping windows, stitched before decoding",
            cli_verb="lyrics",
            onnx_without_torch=True,
            dataset_labels="the lyrics of each chunk (`text`, words of the chunk's span) and the word timings (`words`)",
            endpoint_defaults=(("return_timestamps", "word"),),
            options=(
                "ctc_vocab", "ctc_loss_reduction", "ctc_zero_infinity", "ctc_blank_bias", "return_timestamps", "decoder", "beam_width",
                "lm_path",
            ),
        ),
    )
}
TASK_NAMES = tuple(TASKS)
DEFAULT_TASK = "technique"  # of a bare `SVUConfig()`, `SVUModel.from_backbone(...)` and `TrainConfig()` (the demo's task)


def get_task(name) -> Task:
    """The task called `name`; ValueError (one line, listing the known tasks) for any other value."""
    try:
        return TASKS[name]
    except (KeyError, TypeError):
        raise ValueError(f"Unknown task {name!r}; expected one of {TASK_NAMES}.") from None


def check_task_options(name: str, options) -> None:
    """ValueError (one line) for the first of `options` (names) that applies to other tasks' models only."""
    for option in options:
        owners = [task.name for task in TASKS.values() if option in task.options]
        if owners and name not in owners:
            raise ValueError(f"{option} is a {' / '.join(owners)} option; a {name} model does not use it.")


def tasks_of_verb(verb: str) -> tuple:
    """The tasks whose models `svu <verb>` runs."""
    return tuple(task for task in TASKS.values() if task.cli_verb == verb)
