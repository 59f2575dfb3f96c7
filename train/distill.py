"""Distil a fine-tuned SVU model (the teacher) into a small student of the same task, on unlabelled audio.

    svu distill --teacher REPO --audio SONGS_DIR --student small -o student/
    accelerate launch -m svu distill --teacher REPO --audio PREPARED_DIR --student tiny -o student/ --label-weight 1

The student is an ordinary SVU model of the teacher's class and task fields (labels, frame rate, pitch range,
decoding thresholds), on a small backbone of the teacher's family (`STUDENT_SIZES`) whose CNN has the teacher's
hop and receptive field, so both give the same frames at the same times (for pitch and notes a CNN that resolves
pitch, `front_end`; else the teacher's kernels and strides). It learns the teacher's outputs at a temperature (the task's
`distillation` target, `train.distill_targets`), optionally the teacher's hidden states (DistilHuBERT: one linear
head per predicted teacher layer on the student's last state, L1 - log sigmoid(cosine); the heads are not saved)
and, on a prepared dataset with `label_weight` > 0, the task loss on its labels.

Audio: a folder (or file) of recordings in any format FFmpeg reads, cut into the teacher's `chunk_seconds` chunks
(an unreadable file is named, counted and skipped), or a prepared dataset folder (`svu data prepare`): its train and
validation chunks train, its test chunks are held out. From a folder, a fraction of the recordings (`held_out`) is
held out. The teacher runs once over every chunk, on `accelerator.device`, each process on its share of the files,
and its outputs (and the chunks' audio) are cached on disk (`cache_dir/<fingerprint>/shard-R-of-N.npz`): a second
student of another size distilled from the same teacher and audio, on any number of processes, reuses them.

The output folder is a saved model repo, as `train/run.py` writes (weights, config, code, feature extractor,
handler.py, samples/, metrics.json, distill_config.yaml and a card naming the teacher as `base_model`): its
metrics.json holds the student's agreement with the teacher on the held-out chunks, that of the same student
before distillation, and the real-time factors of both models on those chunks.
"""

import copy
import hashlib
import json
import os
import sys
import time
from argparse import Namespace
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import yaml
from torch import nn
from tqdm.auto import tqdm

from svu.modeling_svu import TASK_MODELS, SVUConfig
from svu.modeling_svu.backbones import tiny_backbone_config
from svu.modeling_svu.tasks import get_task
from svu.train.evaluation import quiet


@dataclass(frozen=True)
class StudentSize:
    layers: int
    hidden: int
    heads: int
    ffn: int
    conv: int  # channels of the teacher-shaped CNN; a pitch `front_end` has 4x, 4x, 2x as many
    pos_conv: int  # kernel of the positional convolution

    def describe(self, channels) -> str:
        """The size in words, with `channels`, the CNN widths of the student built (`student_backbone`)."""
        widths = str(channels[0]) if len(set(channels)) == 1 else "-".join(str(c) for c in channels)
        return f"{self.layers} layer{'s' if self.layers > 1 else ''} x {self.hidden}, CNN {widths} channels"


STUDENT_SIZES = {
    "nano": StudentSize(layers=1, hidden=32, heads=2, ffn=64, conv=16, pos_conv=16),
    "tiny": StudentSize(layers=2, hidden=64, heads=2, ffn=256, conv=32, pos_conv=16),
    "small": StudentSize(layers=2, hidden=256, heads=4, ffn=1024, conv=64, pos_conv=32),
    "base-4l": StudentSize(layers=4, hidden=384, heads=6, ffn=1536, conv=128, pos_conv=64),
}
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "svu" / "distill"


@dataclass
class DistillConfig:
    teacher: str
    audio: str
    student: str = "small"
    output_dir: str = "student"
    glob: Optional[str] = None
    epochs: int = 20
    batch_size: int = 8
    lr: float = 1e-3
    temperature: Optional[float] = None  # the task's target's (`DistillationTarget.temperature`)
    hidden_states: bool = False  # DistilHuBERT's prediction of teacher layers
    label_weight: float = 0.0  # > 0: a prepared dataset's labels add the task loss, with this weight
    held_out: float = 0.2  # of the recordings of a folder
    cache_dir: Optional[str] = None
    seed: int = 0
    max_steps: Optional[int] = None


def front_end(teacher_config, width: int) -> tuple:
    """(kernels, strides, channels) of a student's 3-layer pitch CNN with the teacher's hop and receptive field, so
    that the student's frames are the teacher's, at the same times: filters every sixteenth of a hop, then two layers
    of 4 x 4; channels 4, 4 and 2 x `width`. None for a hop that 16 does not divide.

    The base backbones' 7-layer CNN (a 10-sample first filter) at a student's width resolves pitch poorly: a `tiny`
    student with it agreed with its teacher's F0 on 0.63 of the frames, 0.78 with this front end; its notes agreed
    at COnPOff F1 0.911 and 0.920 (`benchmarks/distill.py`). A technique student did worse with it (0.75 against
    0.85), so only the targets that carry pitch ask for it (`DistillationTarget.pitch_front_end`)."""
    hop, field = teacher_config.frame_hop_samples, teacher_config.receptive_field_samples
    step = hop // 16
    first = field - 3 * step - 3 * 4 * step
    if hop % 16 or first < step:
        return None
    return (first, 4, 4), (step, 4, 4), (4 * width, 4 * width, 2 * width)


def student_backbone(teacher_config, size: str, family: Optional[str] = None):
    """A random backbone config of `size` (`STUDENT_SIZES`) of the teacher's family (or `family`) with the teacher's
    frames: a `front_end` when the teacher's task's distillation target carries pitch, else the teacher's CNN
    kernels and strides at the size's width."""
    shape = STUDENT_SIZES[size]
    base = teacher_config.backbone_config
    cnn = (tuple(base.conv_kernel), tuple(base.conv_stride), (shape.conv,) * len(base.conv_kernel))
    if get_task(teacher_config.task).hook("distillation").pitch_front_end:
        cnn = front_end(teacher_config, shape.conv) or cnn
    kernels, strides, channels = cnn
    return tiny_backbone_config(
        family or base.model_type, hidden_size=shape.hidden, num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads, intermediate_size=shape.ffn, conv_dim=channels, conv_kernel=kernels,
        conv_stride=strides, num_conv_pos_embeddings=shape.pos_conv,
    )  # fmt: skip


def student_of(teacher, size: str, seed: int = 0):
    """A new student model: the teacher's class and every config field but the backbone (`student_backbone`) and
    its records."""
    fields = teacher.config.to_dict()
    for key in ("backbone_config", "auto_map", "custom_pipelines", "architectures", "transformers_version",
                "model_type", "pruning", "distillation", "_name_or_path"):  # fmt: skip
        fields.pop(key, None)
    config = SVUConfig(backbone_config=student_backbone(teacher.config, size), **fields)
    torch.manual_seed(seed)
    student = TASK_MODELS[config.task](config)
    for parameter in student.parameters():
        parameter.requires_grad_(True)
    student.unfreeze_feature_encoder()
    return student


def parameter_count(model) -> int:
    return sum(p.numel() for p in model.parameters())


# ----- audio -------------------------------------------------------------------------------------------------


@dataclass
class Recording:
    name: str
    held_out: bool
    path: Optional[Path] = None  # a file of a folder
    rows: tuple = ()  # (split, row) of a prepared dataset


def is_prepared(audio: str) -> bool:
    from svu.dataset_scripts.prepare import META_FILE

    return (Path(audio) / META_FILE).is_file()


def held_out_names(names, fraction: float) -> set:
    """`fraction` of the recordings (at least one when there are two or more), picked by a hash of their names:
    the same ones whatever the order or number of processes."""
    if len(names) < 2 or fraction <= 0:
        return set()
    count = min(len(names) - 1, max(1, round(fraction * len(names))))
    return set(sorted(names, key=lambda name: hashlib.sha1(name.encode()).hexdigest())[:count])


def folder_recordings(cfg: DistillConfig) -> list:
    from svu.catalogue import collect_inputs

    inputs = [item for item in collect_inputs(Namespace(inputs=[cfg.audio], glob=cfg.glob, file_list=None), "distill")
              if not item.path.is_dir()]  # an empty folder is listed as itself
    if not inputs:
        raise ValueError(f"--audio {cfg.audio}: no audio files in it ({'--glob ' + cfg.glob if cfg.glob else 'audio extensions'}).")
    held = held_out_names([item.name for item in inputs], cfg.held_out)
    return [Recording(item.name, item.name in held, path=item.path) for item in inputs]


def prepared_recordings(cfg: DistillConfig, data) -> list:
    """One recording per prepared chunk; the test split is held out."""
    return [Recording(f"{split}/{row}", split == "test", rows=((split, row),))
            for split in ("train", "validation", "test") if split in data for row in range(len(data[split]))]


def chunks_of(wave: np.ndarray, chunk_samples: int, min_samples: int):
    """(start sample, chunk) of consecutive chunks; a last part shorter than `min_samples` is dropped."""
    for start in range(0, max(len(wave), 1), chunk_samples):
        part = wave[start:start + chunk_samples]
        if len(part) >= min_samples:
            yield start, part


# ----- the teacher's outputs, cached -------------------------------------------------------------------------


def teacher_fingerprint(teacher, cfg: DistillConfig, recordings, hidden_layers) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(teacher.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().float().numpy().tobytes())
    digest.update(teacher.config.to_json_string().encode())
    for recording in recordings:
        stat = recording.path.stat() if recording.path is not None and recording.path.exists() else None
        digest.update(json.dumps([recording.name, recording.held_out, list(recording.rows),
                                  [stat.st_size, stat.st_mtime_ns] if stat else None]).encode())
    digest.update(json.dumps([str(Path(cfg.audio).resolve()), hidden_layers]).encode())
    return digest.hexdigest()[:20]


def teacher_layers(teacher, wanted: bool) -> list:
    """The teacher's hidden states a student predicts (DistilHuBERT: 3 evenly spaced layers), or []."""
    layers = teacher.config.backbone_config.num_hidden_layers
    return sorted({max(1, round(layers * k / 3)) for k in (1, 2, 3)}) if wanted else []


def read_share(recordings, rank: int, world: int, rate: int, chunk_samples: int, data=None):
    """This process's share of the recordings as chunks: (chunk list, failures). A file that cannot be read is
    one line naming it, and the others go on."""
    from svu.common import report_failure
    from svu.modeling_svu.audio_io import decode_audio
    from svu.train.data import to_model_rate

    chunks, failures = [], []
    min_samples = min(chunk_samples, rate)  # at least a second (or the chunk)
    for index in tqdm(range(rank, len(recordings), world), desc="reading audio", unit="file", disable=rank != 0 or quiet()):
        recording = recordings[index]
        if recording.path is not None:
            try:
                wave = decode_audio(str(recording.path), rate)
            except (ValueError, OSError, RuntimeError) as error:
                report_failure("distill", recording.path, error)
                failures.append({"input": str(recording.path), "error": str(error).splitlines()[0]})
                continue
            for start, part in chunks_of(wave, chunk_samples, min_samples):
                chunks.append({"recording": index, "start": start / rate, "wave": part, "row": ("", -1)})
        else:
            for split, row in recording.rows:
                audio = data[split][row]["audio"]
                wave = to_model_rate(audio["array"], audio["sampling_rate"], rate)[:chunk_samples]
                chunks.append({"recording": index, "start": 0.0, "wave": wave, "row": (split, row)})
    return chunks, failures


def model_batch(model, waves, device):
    extractor = model.feature_extractor()
    inputs = extractor(waves, sampling_rate=extractor.sampling_rate, padding=True, return_tensors="pt")
    return inputs["input_values"].to(device), inputs["attention_mask"].to(device)


@torch.inference_mode()
def run_teacher(teacher, chunks, layers, device, batch_size: int, show: bool):
    """Teacher logits (and the `layers` hidden states, float16) of each chunk, at its own frame count."""
    logits, hidden = [], []
    for begin in tqdm(range(0, len(chunks), batch_size), desc="teacher outputs", unit="batch", disable=not show):
        waves = [chunk["wave"] for chunk in chunks[begin:begin + batch_size]]
        input_values, attention_mask = model_batch(teacher, waves, device)
        out = teacher(input_values, attention_mask=attention_mask, output_hidden_states=bool(layers))
        for i, wave in enumerate(waves):
            if get_task(teacher.config.task).pooled:
                logits.append(out.logits[i].float().cpu().numpy())
            else:
                logits.append(out.logits[i, : teacher.config.num_frames(len(wave))].float().cpu().numpy())
            if layers:
                frames = teacher.config.num_frames(len(wave))
                hidden.append(np.stack([out.hidden_states[k][i, :frames].half().cpu().numpy() for k in layers]))
    return logits, hidden


def write_shard(path: Path, chunks, logits, hidden) -> None:
    arrays = {
        "recording": np.array([c["recording"] for c in chunks], dtype=np.int64),
        "start": np.array([c["start"] for c in chunks], dtype=np.float64),
        "split": np.array([c["row"][0] for c in chunks], dtype=str),
        "row": np.array([c["row"][1] for c in chunks], dtype=np.int64),
    }
    arrays.update({f"wave_{i}": c["wave"] for i, c in enumerate(chunks)})
    arrays.update({f"logits_{i}": x for i, x in enumerate(logits)})
    arrays.update({f"hidden_{i}": x for i, x in enumerate(hidden)})
    part = path.with_name(f".{path.name}.{os.getpid()}.npz")
    np.savez(part, **arrays)
    os.replace(part, path)


def read_shards(folder: Path, world: int) -> list:
    chunks = []
    for rank in range(world):
        with np.load(folder / f"shard-{rank}-of-{world}.npz") as shard:
            for i in range(len(shard["recording"])):
                chunks.append({
                    "recording": int(shard["recording"][i]), "start": float(shard["start"][i]),
                    "row": (str(shard["split"][i]), int(shard["row"][i])), "wave": shard[f"wave_{i}"],
                    "logits": shard[f"logits_{i}"], "hidden": shard[f"hidden_{i}"] if f"hidden_{i}" in shard else None,
                })
    return sorted(chunks, key=lambda c: (c["recording"], c["start"]))


def complete_cache(folder: Path, world: int) -> Optional[int]:
    """The number of processes that wrote every shard and failure list of the cache in `folder` (`world` first, then
    any other: the chunks are the same, only their split over the shards differs), or None."""
    written = {int(path.stem.rsplit("-", 1)[1]) for path in folder.glob("shard-*-of-*.npz")}
    for count in sorted(written, key=lambda count: (count != world, count)):
        if all((folder / f"{kind}-{rank}-of-{count}.{ext}").is_file()
               for rank in range(count) for kind, ext in (("shard", "npz"), ("failures", "json"))):  # fmt: skip
            return count
    return None


def cached_teacher_outputs(teacher, cfg, recordings, accelerator, layers, data=None):
    """Every chunk with its teacher outputs (`read_share`, `run_teacher`), from the cache (written by any number of
    processes) or computed now, each process computing its share; also the files that could not be read (recorded
    with the cache) and its folder."""
    folder = Path(cfg.cache_dir or DEFAULT_CACHE) / teacher_fingerprint(teacher, cfg, recordings, layers)
    rank, world = accelerator.process_index, accelerator.num_processes
    cached = complete_cache(folder, world)
    accelerator.wait_for_everyone()  # every process has looked before any writes
    shard = folder / f"shard-{rank}-of-{world}.npz"
    if cached is None and not shard.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        rate = teacher.config.sampling_rate
        chunks, failures = read_share(recordings, rank, world, rate, int(round(teacher.config.chunk_seconds * rate)), data)
        logits, hidden = run_teacher(teacher, chunks, layers, accelerator.device, cfg.batch_size,
                                     show=accelerator.is_local_main_process and not quiet())
        (folder / f"failures-{rank}-of-{world}.json").write_text(json.dumps(failures))
        write_shard(shard, chunks, logits, hidden)
    if cached is not None and accelerator.is_main_process:
        print(f"svu distill: teacher outputs from the cache {folder}", file=sys.stderr)
    accelerator.wait_for_everyone()
    count = cached or world
    every_failure = [f for r in range(count) for f in json.loads((folder / f"failures-{r}-of-{count}.json").read_text())]
    return read_shards(folder, count), every_failure, folder


# ----- training ----------------------------------------------------------------------------------------------


class DistillationModule(nn.Module):
    """The student plus its training-only hidden-state heads; `forward(batch)` is the loss of a batch."""

    def __init__(self, student, target, cfg: DistillConfig, teacher_hidden: Optional[int], num_layers: int):
        super().__init__()
        self.student, self.target, self.cfg = student, target, cfg
        hidden = student.config.backbone_config.hidden_size
        self.hidden_heads = nn.ModuleList([nn.Linear(hidden, teacher_hidden) for _ in range(num_layers)])

    def forward(self, batch):
        labels = batch.get("labels")
        out = self.student(batch["input_values"], attention_mask=batch["attention_mask"],
                           labels=labels, output_hidden_states=len(self.hidden_heads) > 0)  # fmt: skip
        frame_mask = getattr(out, "frame_mask", None)
        loss = self.target.loss(out.logits, batch["teacher"], frame_mask, self.cfg.temperature, self.student.config)
        parts = {"distillation": loss.detach()}
        if len(self.hidden_heads):
            predicted = [head(out.hidden_states[-1]) for head in self.hidden_heads]
            hidden_loss = sum(self.hidden_loss(p, batch["teacher_hidden"][:, k], batch["frames"])
                              for k, p in enumerate(predicted)) / len(predicted)  # fmt: skip
            loss = loss + hidden_loss
            parts["hidden_states"] = hidden_loss.detach()
        if labels is not None and self.cfg.label_weight > 0:
            loss = loss + self.cfg.label_weight * out.loss
            parts["labels"] = out.loss.detach()
        return loss, parts

    @staticmethod
    def hidden_loss(predicted, target, frames):
        """DistilHuBERT's L1 - log sigmoid(cosine similarity), over the real frames."""
        count = min(predicted.shape[1], target.shape[1])
        predicted, target = predicted[:, :count], target[:, :count].to(predicted.dtype)
        mask = torch.arange(count, device=frames.device)[None] < frames[:, None]
        predicted, target = predicted[mask], target[mask]
        l1 = (predicted - target).abs().mean()
        cosine = nn.functional.cosine_similarity(predicted, target, dim=-1)
        return l1 - nn.functional.logsigmoid(cosine).mean()


class ChunkCollator:
    def __init__(self, student, chunks, data=None, with_labels: bool = False):
        from svu.train.data import AudioCollator

        self.student, self.chunks, self.data = student, chunks, data
        self.labels = AudioCollator(student.feature_extractor(), student.config.task, student.config) if with_labels else None

    def __call__(self, indices):
        chunks = [self.chunks[i] for i in indices]
        waves = [c["wave"] for c in chunks]
        extractor = self.student.feature_extractor()
        batch = dict(extractor(waves, sampling_rate=extractor.sampling_rate, padding=True, return_tensors="pt"))
        batch["teacher"] = pad_stack([c["logits"] for c in chunks])
        batch["frames"] = torch.tensor([self.student.config.num_frames(len(w)) for w in waves])
        if chunks[0]["hidden"] is not None:
            batch["teacher_hidden"] = pad_stack([c["hidden"] for c in chunks], axis=1)
        if self.labels is not None:
            rows = [self.data[c["row"][0]][c["row"][1]] for c in chunks]
            batch["labels"] = self.labels.collate_target(self.labels, rows, waves)
        return batch


def pad_stack(arrays, axis: int = 0) -> torch.Tensor:
    """Arrays whose `axis` (frames) differ, zero-padded to the longest and stacked; scalars-per-chunk as they are."""
    if arrays[0].ndim == 1:
        return torch.as_tensor(np.stack(arrays)).float()
    longest = max(a.shape[axis] for a in arrays)
    padded = []
    for a in arrays:
        pad = [(0, 0)] * a.ndim
        pad[axis] = (0, longest - a.shape[axis])
        padded.append(np.pad(a, pad))
    return torch.as_tensor(np.stack(padded)).float()


def train_student(module, chunks, collate, cfg, accelerator):
    """Adam over every student weight (and the hidden-state heads), `cfg.epochs` passes (or `max_steps`); the mean
    loss of each epoch."""
    from torch.utils.data import DataLoader

    generator = torch.Generator().manual_seed(cfg.seed)
    loader = DataLoader(list(range(len(chunks))), batch_size=cfg.batch_size, shuffle=True, collate_fn=collate,
                        generator=generator, drop_last=len(chunks) > cfg.batch_size)  # fmt: skip
    optimizer = torch.optim.Adam(module.parameters(), lr=cfg.lr)
    module, optimizer, loader = accelerator.prepare(module, optimizer, loader)
    history, step = [], 0
    for epoch in range(cfg.epochs):
        module.train()
        losses = []
        bar = tqdm(loader, desc=f"distilling, epoch {epoch + 1}/{cfg.epochs}", disable=not accelerator.is_local_main_process or quiet())
        for batch in bar:
            loss, parts = module(batch)
            accelerator.backward(loss)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(accelerator.gather(loss.detach()[None]).mean().item())
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
            step += 1
            if cfg.max_steps and step >= cfg.max_steps:
                break
        history.append(float(np.mean(losses)))
        if cfg.max_steps and step >= cfg.max_steps:
            break
    return accelerator.unwrap_model(module), history


# ----- held-out agreement, speed -----------------------------------------------------------------------------


@torch.inference_mode()
def chunk_logits(model, chunks, device) -> list:
    """The model's logits of each chunk alone, at the chunk's frame count."""
    model.eval()
    found = []
    for chunk in chunks:
        input_values, attention_mask = model_batch(model, [chunk["wave"]], device)
        logits = model(input_values, attention_mask=attention_mask).logits[0].float().cpu().numpy()
        found.append(logits if get_task(model.config.task).pooled else logits[: model.config.num_frames(len(chunk["wave"]))])
    return found


def agreement(model, chunks, recordings, target, device) -> dict:
    ours = chunk_logits(model, chunks, device)
    teacher = [c["logits"] if ours[i].ndim == 1 else c["logits"][: len(ours[i])] for i, c in enumerate(chunks)]
    ours = [x if x.ndim == 1 else x[: len(teacher[i])] for i, x in enumerate(ours)]
    groups = [(recordings[c["recording"]].name, c["start"]) for c in chunks]
    return target.agreement(ours, teacher, model.config, groups)


@torch.inference_mode()
def real_time_factor(model, chunks, device, repeats: int = 1) -> float:
    """Seconds of computing per second of audio, chunk by chunk (batch 1), after one warm-up chunk."""
    model.eval()
    chunk_logits(model, chunks[:1], device)
    seconds = sum(len(c["wave"]) for c in chunks) / model.config.sampling_rate * repeats
    start = time.perf_counter()
    for _ in range(repeats):
        chunk_logits(model, chunks, device)
    return (time.perf_counter() - start) / seconds


def teacher_licence(teacher: str) -> str:
    """The `license` of the teacher's card (a local folder or a Hub repo in the cache), which the student carries;
    "other" when it has none."""
    from huggingface_hub import ModelCard

    try:
        card = Path(teacher) / "README.md" if Path(teacher).is_dir() else None
        data = (ModelCard.load(card) if card is not None and card.is_file() else ModelCard.load(teacher)).data
        return data.license or "other"
    except (OSError, ValueError):  # no card, offline: the licence is not known here
        return "other"


# ----- the repo ----------------------------------------------------------------------------------------------


def write_repo(student, cfg: DistillConfig, record: dict, held_chunks) -> Path:
    """The saved model repo, with the file set of `train/run.py`'s `repo/` (`train.export`)."""
    import shutil

    import soundfile as sf

    from svu.model_cards.card import LAYER_WEIGHTS_PNG, write_distilled_card
    from svu.model_cards.plot import plot_layer_weights
    from svu.train.export import save_model_files, write_handler

    repo = Path(cfg.output_dir)
    shutil.rmtree(repo, ignore_errors=True)
    repo.mkdir(parents=True)
    form = "native" if get_task(student.config.task).native_unsupported is None else "remote_code"
    student.config.distillation = {key: record[key] for key in ("teacher", "student_size")}
    save_model_files(student, repo, form)
    write_handler(repo / "handler.py", student.config.task)
    widget = []
    (repo / "samples").mkdir()
    for i, chunk in enumerate(held_chunks[:2]):
        path = f"samples/held_out_{i}.wav"
        sf.write(repo / path, np.asarray(chunk["wave"], dtype=np.float32), student.config.sampling_rate)
        widget.append((path, f"held-out chunk {i}"))
    (repo / "metrics.json").write_text(json.dumps(record, indent=1))
    (repo / "distill_config.yaml").write_text(yaml.safe_dump(asdict(cfg), sort_keys=False))
    plot_layer_weights(student.layer_weights().tolist(), repo / LAYER_WEIGHTS_PNG,
                       title=f"{get_task(student.config.task).title}: student's layer weights")
    write_distilled_card(repo, record, widget=widget, export=form)
    return repo


def distill(cfg: DistillConfig) -> dict:
    """Distil `cfg.teacher` into a new student saved at `cfg.output_dir`; the metrics.json record."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    from svu.common import load_model
    from svu.modeling_svu.tasks import TASK_NAMES

    if cfg.student not in STUDENT_SIZES:
        raise ValueError(f"--student {cfg.student!r}: expected one of {', '.join(STUDENT_SIZES)}.")
    if cfg.temperature is not None and cfg.temperature <= 0:
        raise ValueError(f"--temperature {cfg.temperature}: must be > 0.")
    accelerator = Accelerator(cpu=int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available())
    set_seed(cfg.seed)
    teacher = load_model(cfg.teacher, "distill", tasks=TASK_NAMES, device=str(accelerator.device))
    task = get_task(teacher.config.task)
    data = None
    if is_prepared(cfg.audio):
        from svu.dataset_scripts.prepare import load_prepared

        data, meta = load_prepared(cfg.audio)
        if meta.get("task") != task.name and cfg.label_weight > 0:
            raise ValueError(f"--label-weight: {cfg.audio} holds {meta.get('task')} labels, the teacher is a {task.name} model.")
        recordings = prepared_recordings(cfg, data)
    elif cfg.label_weight > 0:
        raise ValueError("--label-weight needs a prepared dataset (svu data prepare) as --audio: a folder has no labels.")
    else:
        if not Path(cfg.audio).exists():
            raise ValueError(f"--audio {cfg.audio}: no such file or folder.")
        recordings = folder_recordings(cfg)
    layers = teacher_layers(teacher, cfg.hidden_states)
    chunks, failures, cache = cached_teacher_outputs(teacher, cfg, recordings, accelerator, layers, data)
    training = [c for c in chunks if not recordings[c["recording"]].held_out]
    held = [c for c in chunks if recordings[c["recording"]].held_out]
    if not training:
        raise ValueError(f"--audio {cfg.audio}: no readable audio to distil on"
                         + (f" ({len(failures)} files failed)" if failures else "") + ".")
    target = task.hook("distillation")
    cfg = replace(cfg, temperature=cfg.temperature or target.temperature)
    student = student_of(teacher, cfg.student, cfg.seed)
    undistilled = copy.deepcopy(student)
    module = DistillationModule(student, target, cfg, teacher.config.backbone_config.hidden_size, len(layers))
    collate = ChunkCollator(student, training, data, with_labels=cfg.label_weight > 0)
    module, history = train_student(module, training, collate, cfg, accelerator)
    student = module.student.eval()
    record = {
        "teacher": cfg.teacher, "task": task.name, "student_size": cfg.student,
        "student_shape": STUDENT_SIZES[cfg.student].describe(student.config.backbone_config.conv_dim),
        "family": student.config.backbone_config.model_type,
        "student_parameters": parameter_count(student), "teacher_parameters": parameter_count(teacher),
        "audio": cfg.audio, "audio_kind": "prepared dataset" if data is not None else "folder",
        "files": len(recordings) if data is None else None, "files_failed": failures,
        "training_chunks": len(training), "held_out_chunks": len(held),
        "training_seconds": round(sum(len(c["wave"]) for c in training) / teacher.config.sampling_rate, 2),
        "held_out_seconds": round(sum(len(c["wave"]) for c in held) / teacher.config.sampling_rate, 2),
        "target": target.description, "temperature": cfg.temperature, "hidden_state_layers": layers,
        "label_weight": cfg.label_weight, "epochs": len(history), "loss_history": history, "headline": target.headline,
        "teacher_cache": str(cache), "teacher_licence": teacher_licence(cfg.teacher),
    }
    if accelerator.is_main_process:
        if held:
            device = accelerator.device
            record["agreement"] = agreement(student, held, recordings, target, device)
            record["agreement_undistilled"] = agreement(undistilled.to(device), held, recordings, target, device)
            threads = torch.get_num_threads()
            record["speed"] = {
                "device": str(device), "threads": threads,
                "student_rtf": real_time_factor(student, held, device),
                "teacher_rtf": real_time_factor(teacher, held, device),
            }
            record["speed"]["speedup"] = record["speed"]["teacher_rtf"] / max(record["speed"]["student_rtf"], 1e-12)
        write_repo(student.cpu(), cfg, record, held)
    accelerator.wait_for_everyone()
    return {**record, "main_process": accelerator.is_main_process}
