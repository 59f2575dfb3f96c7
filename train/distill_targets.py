"""What a student learns from its teacher, per kind of task output (`Task.distillation` names one of these).

Each target has a `loss(student_logits, teacher_logits, frame_mask, temperature, config)`, the soft-target loss of
a batch (scaled by T^2, as Hinton et al., so that the gradient's size does not depend on the temperature), and an
`agreement(student, teacher, config, groups)` of held-out chunks: how often the student gives the teacher's answer,
as the task's own metrics with the teacher's outputs as reference. `student` and `teacher` are lists of one
chunk's logits each (frames past the chunk's end cut off); `groups` names the recording of each chunk and its
start in seconds, for metrics over whole recordings.

* class logits (singer, technique): KL(teacher || student) of the softmaxes at temperature T; agreement: the
  fraction of chunks whose top class is the teacher's.
* note posteriors (transcription), T = 1 by default: BCE of the onset and silence sigmoids at T against the
  teacher's, KL of the octave and pitch-class softmaxes at T on the frames the teacher calls voiced (weighted by its
  voicing probability: its pitch is decoded only there); agreement: COnPOff / COnP / COn F1 of the student's notes
  against the teacher's notes (each recording's chunks decoded and joined), and the frame agreement (voicing and
  note).
* pitch posteriors (F0): BCE of the pitch-bin sigmoids (on the frames the teacher calls voiced, as above) and of the
  voicing sigmoid at T against the teacher's; agreement: raw pitch accuracy against the teacher's F0 (frames the
  teacher calls voiced, within 50 cents) and voicing agreement.
* token posteriors (lyrics): KL of the per-frame CTC token softmaxes at T (the blank included, so the student
  learns where the teacher emits); agreement: 1 - CER of the student's greedy transcripts against the teacher's
  (each recording's chunks joined in order, the lyrics metric's normalisation), with the WER.
"""

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from svu.modeling_svu.note_labels import IGNORE_INDEX, decode_logits, decoding_options, logit_slices
from svu.modeling_svu.pitch import decode_pitch, hz_to_cents


def soft_bce(student, teacher, temperature: float):
    """Mean BCE of sigmoid(student / T) against sigmoid(teacher / T), times T^2."""
    target = torch.sigmoid(teacher / temperature)
    return nn.functional.binary_cross_entropy_with_logits(student / temperature, target) * temperature**2


def kl_rows(student, teacher, temperature: float):
    """Per-row KL(softmax(teacher / T) || softmax(student / T)), times T^2."""
    log_student = nn.functional.log_softmax(student / temperature, dim=-1)
    log_teacher = nn.functional.log_softmax(teacher / temperature, dim=-1)
    return (log_teacher.exp() * (log_teacher - log_student)).sum(-1) * temperature**2


def soft_kl(student, teacher, temperature: float):
    """Mean over rows of KL(softmax(teacher / T) || softmax(student / T)), times T^2."""
    return kl_rows(student, teacher, temperature).mean()


def voiced_mean(losses, teacher_voiced_logits):
    """Mean of per-frame `losses` weighted by the teacher's voicing probability: pitch outputs on frames the
    teacher calls silent are never decoded (and were never trained), so the student need not copy them."""
    weight = torch.sigmoid(teacher_voiced_logits)
    return (weight * losses).sum() / weight.sum().clamp_min(1e-6)


def valid_frames(student, teacher, frame_mask):
    """Both (batch, frames, C) logits cut to their common length, flattened to the real frames -> (n, C) each."""
    frames = min(student.shape[1], teacher.shape[1])
    student, teacher = student[:, :frames], teacher[:, :frames]
    mask = frame_mask[:, :frames] if frame_mask is not None else torch.ones(student.shape[:2], dtype=torch.bool)
    return student[mask], teacher[mask]


class DistillationTarget:
    """What a task's `distillation` hook names: `headline` (the agreement metric the command prints), `description`
    (the loss in words, for cards), `temperature` (the default T), `loss(...)` and `agreement(...)` (module docstring). A frame-wise target's
    `soft_loss` sees the real frames of the batch only, as (frames, outputs) rows."""

    headline: str
    description: str
    frame_wise: bool = True
    temperature: float = 2.0  # the default T
    pitch_front_end: bool = False  # the student's CNN resolves pitch (`train.distill.front_end`)

    def loss(self, student, teacher, frame_mask, temperature, config):
        teacher = teacher.to(student.dtype)
        if self.frame_wise:
            student, teacher = valid_frames(student, teacher, frame_mask)
        return self.soft_loss(student, teacher, temperature, config)

    def soft_loss(self, student, teacher, temperature, config):
        raise NotImplementedError

    def agreement(self, student, teacher, config, groups) -> dict:
        raise NotImplementedError


@dataclass(frozen=True)
class ClassLogits(DistillationTarget):
    headline: str = "label_agreement"
    description: str = "KL divergence of the class softmaxes at temperature T (x T^2)"
    frame_wise: bool = False

    def soft_loss(self, student, teacher, temperature, config):
        return soft_kl(student, teacher, temperature)

    def agreement(self, student, teacher, config, groups) -> dict:
        same = [int(np.argmax(s) == np.argmax(t)) for s, t in zip(student, teacher)]
        return {"label_agreement": float(np.mean(same)) if same else None, "num_chunks": len(same)}


@dataclass(frozen=True)
class NotePosteriors(DistillationTarget):
    headline: str = "COnPOff_f1"
    description: str = ("BCE of the onset and silence sigmoids and KL of the octave and pitch-class softmaxes (on "
                        "the frames the teacher calls voiced) at temperature T (x T^2)")
    temperature: float = 1.0
    pitch_front_end: bool = True

    def soft_loss(self, student, teacher, temperature, config):
        slices = logit_slices(config.num_octaves)
        binary = torch.cat([student[:, slices["onset"]], student[:, slices["silence"]]], dim=1)
        binary_teacher = torch.cat([teacher[:, slices["onset"]], teacher[:, slices["silence"]]], dim=1)
        pitch = sum(kl_rows(student[:, slices[part]], teacher[:, slices[part]], temperature) for part in ("octave", "pitch_class"))
        return soft_bce(binary, binary_teacher, temperature) * 2 + voiced_mean(pitch, -teacher[:, slices["silence"]][:, 0])

    def agreement(self, student, teacher, config, groups) -> dict:
        from svu.train.evaluation import frame_metrics, note_scores

        estimates, references = {}, {}
        for s, t, (recording, start) in zip(student, teacher, groups):
            for side, logits in ((estimates, s), (references, t)):
                notes = decode_logits(logits, **decoding_options(config))
                side.setdefault(recording, []).extend([on + start, off + start, pitch] for on, off, pitch in notes)
        with_notes = {recording: notes for recording, notes in references.items() if notes}
        result = {"COnPOff_f1": None, "COnP_f1": None, "COn_f1": None}
        if with_notes:
            scores = note_scores(estimates, with_notes, "transcription")
            result.update({key: scores[key] for key in result})
        result["teacher_notes"] = sum(len(notes) for notes in references.values())
        result["student_notes"] = sum(len(notes) for notes in estimates.values())
        frames = frame_metrics(np.concatenate(student)[None], self.teacher_labels(np.concatenate(teacher), config)[None],
                               config.num_octaves)
        result.update({f"{key}_vs_teacher": value for key, value in frames.items()})
        return result

    @staticmethod
    def teacher_labels(logits, config) -> np.ndarray:
        """(frames, 4) frame targets of the teacher's decisions (onset, silence, octave, pitch class), as
        `frame_metrics` reads labels."""
        slices = logit_slices(config.num_octaves)
        labels = np.stack([
            (logits[:, slices["onset"]][:, 0] > 0).astype(np.float32),
            (logits[:, slices["silence"]][:, 0] > 0).astype(np.float32),
            logits[:, slices["octave"]].argmax(1), logits[:, slices["pitch_class"]].argmax(1),
        ], axis=1).astype(np.float32)
        labels[~np.isfinite(labels)] = IGNORE_INDEX
        return labels


@dataclass(frozen=True)
class PitchPosteriors(DistillationTarget):
    headline: str = "raw_pitch_accuracy"
    description: str = ("BCE of the pitch-bin (on the frames the teacher calls voiced) and voicing sigmoids at "
                        "temperature T against the teacher's (x T^2)")
    pitch_front_end: bool = True

    def soft_loss(self, student, teacher, temperature, config):
        target = torch.sigmoid(teacher[:, :-1] / temperature)
        bins = nn.functional.binary_cross_entropy_with_logits(student[:, :-1] / temperature, target, reduction="none")
        bins = voiced_mean(bins.sum(-1), teacher[:, -1]) * temperature**2
        return bins + soft_bce(student[:, -1], teacher[:, -1], temperature)

    def agreement(self, student, teacher, config, groups) -> dict:
        ours = decode_pitch(np.concatenate(student), config)
        theirs = decode_pitch(np.concatenate(teacher), config)
        voiced = theirs["voiced"]
        cents = np.abs(hz_to_cents(np.maximum(ours["pitch_hz"], 1e-3)) - hz_to_cents(np.maximum(theirs["pitch_hz"], 1e-3)))
        return {
            "raw_pitch_accuracy": float(np.mean(cents[voiced] <= 50)) if voiced.any() else None,
            "voicing_agreement": float(np.mean(ours["voiced"] == voiced)),
            "teacher_voiced_frames": int(voiced.sum()),
        }


@dataclass(frozen=True)
class TokenPosteriors(DistillationTarget):
    headline: str = "char_agreement"
    description: str = "KL divergence of the per-frame CTC token softmaxes (blank included) at temperature T (x T^2)"

    def soft_loss(self, student, teacher, temperature, config):
        return soft_kl(student, teacher, temperature)

    def agreement(self, student, teacher, config, groups) -> dict:
        from svu.modeling_svu.ctc import greedy_decode
        from svu.modeling_svu.tasks import get_task
        from svu.train.evaluation import load_metric

        order = sorted(range(len(groups)), key=lambda i: (str(groups[i][0]), groups[i][1]))
        transcripts = [(str(groups[i][0]), greedy_decode(student[i], config.ctc_vocab)["text"],
                        greedy_decode(teacher[i], config.ctc_vocab)["text"]) for i in order]  # fmt: skip
        scores = load_metric(get_task(config.task).metric).compute(
            predictions=[t[1] for t in transcripts], references=[t[2] for t in transcripts],
            song_ids=[t[0] for t in transcripts])
        return {"char_agreement": max(0.0, 1.0 - scores["cer"]), "cer_vs_teacher": scores["cer"],
                "wer_vs_teacher": scores["wer"], "teacher_words": scores["num_reference_words"]}


CLASS_LOGITS = ClassLogits()
NOTE_POSTERIORS = NotePosteriors()
PITCH_POSTERIORS = PitchPosteriors()
TOKEN_POSTERIORS = TokenPosteriors()
