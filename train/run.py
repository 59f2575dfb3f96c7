"""Fine-tune an SVU model (Yamamoto, APSIPA 2023): two-stage, LoRA, adapter or frozen; one Accelerate script.

    # the main job: demo config (synthetic corpus, technique, tiny backbone), a few minutes on 2 CPU cores
    accelerate launch --cpu train/run.py
    # a paper config, a field overridden, resumed from the newest complete checkpoint
    accelerate launch train/run.py --config train/configs/technique_wav2vec2.yaml --epochs 10 --resume
    # data parallel: 2 processes (CPU/gloo here; GPUs, nodes, DeepSpeed/FSDP via `accelerate config`)
    accelerate launch --multi_gpu --num_processes 2 train/run.py --config train/configs/demo_singer_id.yaml
    # (`accelerate launch --cpu --num_processes 2` silently runs ONE process; `--multi_gpu` without GPUs uses gloo)

`--config` is a YAML file of `train.config.TrainConfig` fields (no `--config`: the embedded demo default);
any field can be overridden as `--field value` (`--dataset.options.task singer_id`). Unknown fields, backbones,
tasks, a dataset missing a split or with a label set the model does not have: one error line, before training.

Recipe. Stage 1 (`stage1_epochs`): backbone frozen, layer weights + head trained with Adam(`lr_stage1`). For
classification with `cache_stage1`, stage 1 reads the backbone's pooled hidden states from a cache
(`train/feature_cache.py`): exact, since the frozen backbone runs in eval mode and the shuffle order depends only
on (seed, epoch). Stage 2 (the rest): a new Adam over what `finetune` trains (`train/peft_variants.py`):
`two_stage` = transformer (CNN stays frozen), `lr_stage2`; `lora` / `adapter` = the PEFT weights, `lr_peft`;
`frozen` never enters stage 2. The model of the best validation epoch is tested and saved.

Scaling. `batch_size` is per process: the effective batch is `batch_size x num_processes`, and there is no lr
scaling, so N processes at `batch_size / N` reproduce the paper's batch (and its lr) exactly. If you instead keep
`batch_size` and add processes, scale the lr yourself (linear rule: lr x N; Adam is usually fine with sqrt(N)).
`--mixed_precision bf16|fp16` (fp16 needs a GPU). Evaluation gathers with `gather_for_metrics`, so each
validation/test example counts once whatever the number of processes (`metrics.json` records the count).

Outputs (`output_dir`): `checkpoints/checkpoint-<step>/` (complete ones only; `--resume [DIR]`), `logs/`
(tensorboard: losses, metrics, layer weights), `best/`, `metrics.json`, and `repo/`: the Hub-ready model
(`AutoModel.from_pretrained(repo, trust_remote_code=True)`, adapters merged; for lora/adapter also
`repo/peft_adapter/`), with a generated model card. `--push_to_hub user/name` uploads `repo/`.
"""

import argparse
import json
import os
import shutil
from pathlib import Path

import evaluate
import numpy as np
import torch
import yaml
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, set_seed
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from modeling_svu import TASK_MODELS
from modeling_svu.note_labels import IGNORE_INDEX, decode_logits, decoding_options, logit_slices

from train.checkpointing import TrainingState, check_output_dir, read_training_state, resolve_resume, save_checkpoint
from train.config import TrainConfig, load_config
from train.data import AudioCollator, make_dataloader, pooled_collate, prepare_dataset
from train.peft_variants import describe_trainable, set_stage, svu_model, trainable_parameter_names, wrap_for_finetune

METRICS_DIR = Path(__file__).parent / "metrics"


class TrainingModule(torch.nn.Module):
    """What Accelerate prepares: routes a batch to the full model or, for cached stage-1 batches, to
    `classify_pooled`, so both paths go through `forward` (and DDP's gradient sync)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    @property
    def model_config(self):
        return svu_model(self.model).config

    def forward(self, batch):
        if "pooled_layer_states" in batch:  # stage-1 feature cache: the backbone already ran
            return svu_model(self.model).classify_pooled(batch["pooled_layer_states"], labels=batch.get("labels"))
        return self.model(**batch)


def build_model(cfg: TrainConfig, meta: dict):
    """The SVU task model of `cfg.task` on `cfg.backbone`, labelled with the dataset's classes."""
    model_cls = TASK_MODELS[cfg.task]
    overrides = {"chunk_seconds": meta["chunk_seconds"], "classifier_dropout": cfg.classifier_dropout, "task": cfg.task}
    id2label = dict(enumerate(meta["label_names"])) if cfg.task_spec.classes else None
    if cfg.task_spec.class_weighted:
        overrides["class_weights"] = meta["class_weights"]
    config_file = Path(cfg.backbone) / "config.json"
    if config_file.is_file() and json.loads(config_file.read_text()).get("model_type") == "svu":
        model = model_cls.from_pretrained(cfg.backbone)  # continue from a saved SVU model
        labels = list(model.config.id2label.values()) if id2label else None
        if model.config.task != cfg.task or (id2label and labels != list(id2label.values())):
            raise ValueError(
                f"Model {cfg.backbone} ({model.config.task}, labels {labels}) does not match the dataset "
                f"({cfg.task}, labels {meta['label_names']})."
            )
        return model
    try:
        return model_cls.from_backbone(cfg.backbone, id2label=id2label, **overrides)
    except OSError as err:
        raise ValueError(f"Backbone {cfg.backbone!r} could not be loaded ({str(err).splitlines()[0]}).") from None


def get_dataloaders(cfg, data, model, accelerator):
    """Audio loaders for train/validation/test, plus stage-1 cached loaders (pooled heads + cache_stage1)."""
    collate = AudioCollator(svu_model(model).feature_extractor(), cfg.task)
    columns = cfg.task_spec.columns
    loaders = {
        "train": make_dataloader(data["train"], columns, collate, cfg.batch_size, seed=cfg.seed, num_workers=cfg.num_workers),
        "validation": make_dataloader(data["validation"], columns, collate, cfg.eval_batch_size, num_workers=cfg.num_workers),
        "test": make_dataloader(data["test"], columns, collate, cfg.eval_batch_size, num_workers=cfg.num_workers),
    }
    # ---- stage-1 feature cache: the same rows, shuffled by the same (seed, epoch) sampler ----
    if cfg.cache_stage1 and cfg.task_spec.pooled and cfg.stage1_epochs > 0:
        from train.feature_cache import build_pooled_cache

        cache_dir = Path(cfg.output_dir) / "feature_cache"
        with accelerator.main_process_first():
            cached = {
                split: build_pooled_cache(svu_model(model), data[split], cache_dir, batch_size=cfg.eval_batch_size)
                for split in ("train", "validation")
            }
        columns = ["pooled_layer_states", "label"]
        loaders["train_cached"] = make_dataloader(cached["train"], columns, pooled_collate, cfg.batch_size, seed=cfg.seed)
        loaders["validation_cached"] = make_dataloader(cached["validation"], columns, pooled_collate, cfg.eval_batch_size)
    return loaders


@torch.no_grad()
def predict(model, dataloader, accelerator, desc):
    """(logits, labels, row_index) of every example once, gathered over processes, in numpy."""
    model.eval()
    logits, labels, rows = [], [], []
    for batch in tqdm(dataloader, desc=desc, leave=False, disable=not accelerator.is_local_main_process):
        row_index = batch.pop("row_index")
        out = model(batch)
        batch_logits, batch_labels = out.logits, batch["labels"]
        if batch_logits.dim() == 3:  # frame-wise outputs: frames beyond the labels (or vice versa) are not scored
            frames = min(batch_logits.shape[1], batch_labels.shape[1])
            batch_logits, batch_labels = batch_logits[:, :frames].contiguous(), batch_labels[:, :frames].contiguous()
        gathered = accelerator.gather_for_metrics((batch_logits.float(), batch_labels, row_index))
        for store, value in zip((logits, labels, rows), gathered):
            store.append(value.cpu().numpy())
    if logits and logits[0].ndim == 3:  # frame-wise chunks may differ in frames: pad before concatenating
        frames = max(x.shape[1] for x in logits)
        logits = [np.pad(x, ((0, 0), (0, frames - x.shape[1]), (0, 0))) for x in logits]
        labels = [np.pad(y, ((0, 0), (0, frames - y.shape[1]), (0, 0)), constant_values=IGNORE_INDEX) for y in labels]
    return np.concatenate(logits), np.concatenate(labels), np.concatenate(rows)


def frame_metrics(logits, labels, num_octaves):
    """Frame-level transcription scores (no note decoding): onset F1 at p>=0.5, voicing accuracy, and the
    fraction of labelled voiced frames whose octave and pitch class are both right."""
    valid = labels[..., 0] != IGNORE_INDEX
    logits, labels = logits[valid], labels[valid]
    s = logit_slices(num_octaves)
    onset_pred, onset_true = logits[:, s["onset"]][:, 0] > 0, labels[:, 0] > 0.5
    tp = np.sum(onset_pred & onset_true)
    voiced_pred, voiced_true = logits[:, s["silence"]][:, 0] <= 0, labels[:, 1] < 0.5
    note_right = (logits[:, s["octave"]].argmax(1) == labels[:, 2]) & (logits[:, s["pitch_class"]].argmax(1) == labels[:, 3])
    return {
        "frame_onset_f1": float(2 * tp / max(1, onset_pred.sum() + onset_true.sum())),
        "frame_voicing_accuracy": float(np.mean(voiced_pred == voiced_true)),
        "frame_note_accuracy": float(np.mean(note_right[voiced_true])) if voiced_true.any() else 0.0,
    }


def note_metrics(metric, logits, labels, rows, dataset, svu_config):
    """COnPOff / COnP / COn F1 per song, averaged over songs: each chunk's decoded notes shifted by its start.
    Notes crossing a chunk edge are cut there on both sides (reference and estimate)."""
    songs = dataset.select_columns(["song_id", "chunk_start", "notes"])
    estimates, references = {}, {}
    for chunk_logits, chunk_labels, row in zip(logits, labels, rows.tolist()):
        song, start, notes = songs[row]["song_id"], float(songs[row]["chunk_start"]), songs[row]["notes"]
        frames = int(np.sum(chunk_labels[:, 0] != IGNORE_INDEX))
        decoded = decode_logits(chunk_logits[:frames], **decoding_options(svu_config))
        estimates.setdefault(song, []).extend([on + start, off + start, pitch] for on, off, pitch in decoded)
        references.setdefault(song, []).extend([n["onset"] + start, n["offset"] + start, n["pitch"]] for n in notes)
    song_ids = sorted(references)
    scores = metric.compute(
        predictions=[estimates[s] for s in song_ids], references=[references[s] for s in song_ids], song_ids=song_ids
    )
    return {k: v for k, v in scores.items() if k.endswith("_f1") or k == "num_songs"}


def classification_scores(metric, logits, labels, rows, dataset, svu_config):
    """Chunk-level classification metrics, plus clip-level extras when the split has clip ids."""
    clip_ids = None
    if "clip_id" in dataset.column_names:
        clip_column = list(dataset.select_columns(["clip_id"])["clip_id"])
        clip_ids = [clip_column[i] for i in rows]
    return metric.compute(predictions=logits, references=labels, clip_ids=clip_ids)


def transcription_scores(metric, logits, labels, rows, dataset, svu_config):
    """Note metrics per song (decoded as in the paper) and frame metrics."""
    return {
        **note_metrics(metric, logits, labels, rows, dataset, svu_config),
        **frame_metrics(logits, labels, svu_config.num_octaves),
        "num_examples": len(rows),
    }


# a task's `metric` (a module in train/metrics/) -> the function scoring model outputs with it
EVALUATORS = {"classification": classification_scores, "transcription": transcription_scores}


def load_metric(name: str):
    return evaluate.load(str(METRICS_DIR / name / f"{name}.py"))


def evaluate_split(cfg, model, dataloader, dataset, accelerator, desc):
    """Metrics of one split; `num_examples` / `num_unique_examples` prove nothing was counted twice."""
    logits, labels, rows = predict(model, dataloader, accelerator, desc)
    metric_name = cfg.task_spec.metric
    svu_config = accelerator.unwrap_model(model).model_config
    results = EVALUATORS[metric_name](load_metric(metric_name), logits, labels, rows, dataset, svu_config)
    results["num_unique_examples"] = len(set(rows.tolist()))
    return results


def save_best(accelerator, model, output_dir: Path, epoch: int, metrics: dict):
    best = output_dir / "best"
    state = accelerator.get_state_dict(model)  # on every process (DeepSpeed/FSDP gather here)
    if accelerator.is_main_process:
        best.mkdir(parents=True, exist_ok=True)
        state = {k: v.contiguous() for k, v in state.items()}
        save_file(state, str(best / "model.safetensors.tmp"))
        Path(best / "model.safetensors.tmp").replace(best / "model.safetensors")
        (best / "best.json").write_text(json.dumps({"epoch": epoch, "validation": metrics}, indent=1))
    accelerator.wait_for_everyone()


def log_trainable(accelerator, model, stage, output_dir: Path):
    """Print and record the trainable-parameter set of this stage (tests read `trainable_params.jsonl`)."""
    names = trainable_parameter_names(model)
    accelerator.print(f"stage {stage}: training {describe_trainable(model)}")
    if accelerator.is_main_process:
        with open(output_dir / "trainable_params.jsonl", "a") as f:
            f.write(json.dumps({"stage": stage, "names": names}) + "\n")


def start_fresh(output_dir: Path):
    """A run without --resume must not mix with an earlier run's checkpoints, best model or logs."""
    stale = [output_dir / name for name in ("checkpoints", "best", "trainable_params.jsonl") if (output_dir / name).exists()]
    for path in stale:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    if stale:
        print(f"starting afresh (no --resume): removed {', '.join(p.name for p in stale)} of the previous run in {output_dir}")


def training_function(cfg: TrainConfig, args):
    output_dir = Path(cfg.output_dir)
    accelerator = Accelerator(
        # `accelerate launch --multi_gpu` on a machine without GPUs: data parallel on CPU (gloo)
        cpu=int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available(),
        mixed_precision=cfg.mixed_precision,
        log_with="tensorboard",
        project_dir=str(output_dir),
        # stage 1 leaves the backbone without gradients; DDP must not wait for them
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )
    try:  # every process checks (a temp file each), so all of them stop on the same one-line error
        check_output_dir(output_dir)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    set_seed(cfg.seed)

    try:
        with accelerator.main_process_first():
            data, meta = prepare_dataset(cfg)
        model = wrap_for_finetune(cfg, build_model(cfg, meta))
    except ValueError as err:  # bad dataset / backbone / labels: one line, nothing trained
        raise SystemExit(f"error: {err}") from None
    loaders = get_dataloaders(cfg, data, model, accelerator)

    # One Adam per stage, both built now (stage 2's starts fresh): prepare() and checkpoints see a fixed set.
    set_stage(model, 1, cfg.finetune)
    optimizer1 = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr_stage1)
    set_stage(model, 2, cfg.finetune)  # DDP registers the largest trainable set
    stage2_lr = cfg.lr_peft if cfg.finetune in ("lora", "adapter") else cfg.lr_stage2
    optimizer2 = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=stage2_lr)
    names = list(loaders)
    module, optimizer1, optimizer2, *prepared = accelerator.prepare(
        TrainingModule(model), optimizer1, optimizer2, *loaders.values()
    )
    loaders = dict(zip(names, prepared))

    state = TrainingState()
    if args.resume:
        try:
            checkpoint = resolve_resume(output_dir, args.resume)
        except ValueError as err:
            raise SystemExit(f"error: {err}") from None
        try:
            accelerator.load_state(str(checkpoint))
        except (RuntimeError, OSError, ValueError) as err:  # damaged, or not written by this script
            raise SystemExit(f"error: cannot resume from {checkpoint}: {str(err).strip().splitlines()[0]}") from None
        # The run state comes from JSON: accelerate unpickles registered objects with weights_only=False.
        state.load_state_dict(read_training_state(checkpoint))
        accelerator.print(f"resumed from {checkpoint}: epoch {state.epoch}, step {state.step_in_epoch} of it")
    elif accelerator.is_main_process:
        start_fresh(output_dir)
    if accelerator.is_main_process:
        (output_dir / "train_config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    accelerator.init_trackers("logs", config={k: v for k, v in cfg.to_dict().items() if isinstance(v, (int, float, str, bool))})

    selection_metric = cfg.selection_metric or cfg.task_spec.default_selection_metric
    for epoch in range(state.epoch, cfg.epochs):
        stage = cfg.stage_of_epoch(epoch)
        set_stage(model, stage, cfg.finetune)
        if stage != state.stage:
            log_trainable(accelerator, model, stage, output_dir)
            state.stage = stage
        cached = stage == 1 and "train_cached" in loaders
        train_loader = loaders["train_cached" if cached else "train"]
        optimizer = optimizer1 if stage == 1 else optimizer2
        if state.step_in_epoch:
            train_loader = accelerator.skip_first_batches(train_loader, state.step_in_epoch)
        train_loader.set_epoch(epoch)  # the shuffle order is a function of (seed, epoch) only

        module.train()
        bar = tqdm(train_loader, desc=f"epoch {epoch + 1}/{cfg.epochs} (stage {stage})", disable=not accelerator.is_local_main_process)
        for batch in bar:
            batch.pop("row_index")
            loss = module(batch).loss
            losses = accelerator.gather(loss.detach()[None])
            if not torch.isfinite(losses).all():
                raise SystemExit(
                    f"error: loss is {losses.tolist()} at epoch {epoch + 1}, step {state.step_in_epoch + 1}; stopped. "
                    f"The last good checkpoint is in {output_dir / 'checkpoints'} (--resume continues from it)."
                )
            accelerator.backward(loss)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            state.step_in_epoch += 1
            state.global_step += 1
            bar.set_postfix(loss=f"{losses.mean().item():.4f}")
            if state.global_step % cfg.log_every_steps == 0:
                accelerator.log({"train/loss": losses.mean().item(), "train/stage": stage}, step=state.global_step)
            if cfg.checkpoint_every_steps and state.global_step % cfg.checkpoint_every_steps == 0:
                save_checkpoint(accelerator, output_dir, state, cfg.to_dict(), cfg.keep_checkpoints)

        val_loader = loaders["validation_cached" if cached else "validation"]
        val = evaluate_split(cfg, module, val_loader, data["validation"], accelerator, "validation")
        score = val[selection_metric]
        if state.best_metric is None or score > state.best_metric:
            state.best_metric, state.best_epoch = score, epoch
            save_best(accelerator, module, output_dir, epoch, val)
        layer_weights = svu_model(model).layer_weights().cpu().tolist()
        accelerator.print(f"epoch {epoch + 1}: validation {selection_metric} = {score:.4f}")
        accelerator.log(
            {**{f"validation/{k}": v for k, v in val.items()}, **{f"layer_weight/{i}": w for i, w in enumerate(layer_weights)}},
            step=state.global_step,
        )
        state.history.append({"epoch": epoch, "stage": stage, "validation": val, "layer_weights": layer_weights})
        state.epoch, state.step_in_epoch = epoch + 1, 0
        save_checkpoint(accelerator, output_dir, state, cfg.to_dict(), cfg.keep_checkpoints)

    # ---- test the best epoch's weights, then write the Hub-ready repo ----
    accelerator.wait_for_everyone()
    accelerator.unwrap_model(module).load_state_dict(load_file(str(output_dir / "best" / "model.safetensors")))
    test = evaluate_split(cfg, module, loaders["test"], data["test"], accelerator, "test")
    if accelerator.is_main_process:
        from train.export import export_repo, print_results

        metrics = {
            "task": cfg.task, "selection_metric": selection_metric, "best_epoch": state.best_epoch,
            "test": test, "validation": state.history[state.best_epoch]["validation"],
            "test_split_size": len(data["test"]), "num_processes": accelerator.num_processes,
            "effective_batch_size": cfg.batch_size * accelerator.num_processes,
            "layer_weights": svu_model(model).layer_weights().cpu().tolist(),
        }
        repo = export_repo(cfg, model, meta, metrics, output_dir / "repo", data["test"])
        (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=1))
        print_results(metrics, repo)
        if cfg.push_to_hub:
            from train.export import push_repo

            push_repo(repo, cfg.push_to_hub, private=cfg.hub_private)
    accelerator.wait_for_everyone()
    accelerator.end_training()  # also ends the process group: last


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="Any TrainConfig field: --field value.")
    parser.add_argument("--config", help="YAML config (default: the embedded demo config).")
    parser.add_argument(
        "--resume", nargs="?", const="latest", default=None,
        help="Continue from the newest complete checkpoint of output_dir, or from the given checkpoint folder.",
    )
    args, overrides = parser.parse_known_args(argv)
    try:
        cfg = load_config(args.config, overrides)
    except (ValueError, TypeError, yaml.YAMLError) as err:
        raise SystemExit(f"error: {err}") from None
    training_function(cfg, args)


if __name__ == "__main__":
    main()
