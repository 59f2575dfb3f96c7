"""Fine-tune an SVU model (Yamamoto, APSIPA 2023): two-stage, LoRA, adapter or frozen; one Accelerate script.

    # the main job: demo config (synthetic corpus, technique, tiny backbone), a few minutes on 2 CPU cores
    accelerate launch --cpu train/run.py
    # a paper config, a field overridden, resumed from the newest complete checkpoint
    accelerate launch train/run.py --config train/configs/technique_wav2vec2.yaml --epochs 10 --resume
    # data parallel: 2 processes (CPU/gloo here; GPUs, nodes, DeepSpeed/FSDP via `accelerate config`)
    accelerate launch --multi_gpu --num_processes 2 train/run.py --config train/configs/demo_singer_id.yaml
    # (`accelerate launch --cpu --num_processes 2` silently runs ONE process; `--multi_gpu` without GPUs uses gloo)
    # a corpus past one disk: stream the Parquet shards of `svu data prepare ... --parquet DIR` (train/streaming.py)
    accelerate launch train/run.py --config train/configs/technique_wav2vec2.yaml --streaming true --streaming_path DIR

`--config` is a YAML file of `train.config.TrainConfig` fields (no `--config`: the embedded demo default);
any field can be overridden as `--field value` (`--dataset.options.task singer_id`). Unknown fields, backbones,
tasks, a dataset missing a split or with a label set the model does not have: one error line, before training.

Recipe. Stage 1 (`stage1_epochs`): backbone frozen, layer weights + head trained with Adam(`lr_stage1`). For
classification with `cache_stage1`, stage 1 reads the backbone's pooled hidden states from a cache
(`train/feature_cache.py`): exact, since the frozen backbone runs in eval mode and the shuffle order depends only
on (seed, epoch). The cache is built after `accelerator.prepare`, by the prepared model on `accelerator.device`
under the run's mixed precision, each process running its share of the batches (the same cache as one process).
Stage 2 (the rest): a new Adam over what `finetune` trains (`train/peft_variants.py`):
`two_stage` = transformer (CNN stays frozen), `lr_stage2`; `lora` / `adapter` = the PEFT weights, `lr_peft`;
`frozen` never enters stage 2.

Protocol. `validation: ours` holds out our validation singers/songs (Artist20: the paper's validation album) and
the best validation epoch is tested and saved (validation runs in eval mode: no dropout or SpecAugment, so the
kept epoch's score is what `svu evaluate --split validation` gives its weights); `validation: none` trains on
every non-test singer/song, as the paper's technique and transcription experiments, and keeps the last epoch.
Test metrics (`train/evaluation.py`): chunk-level for classification; for transcription each whole test song
through the long-audio path, scored against its complete annotation (MIR-ST500's evaluate.py); transcription
validation is a per-chunk proxy, logged as `validation_proxy/*`. `metrics.json` records all of it under `protocol`.

Scaling. `batch_size` is per process: the effective batch is `batch_size x num_processes x
gradient_accumulation_steps` (accelerate's `accumulate`), and there is no lr scaling, so N processes at
`batch_size / N` (or accumulation steps N at `batch_size / N`) reproduce the paper's batch (and its lr). If you instead keep
`batch_size` and add processes, scale the lr yourself (linear rule: lr x N; Adam is usually fine with sqrt(N)).
`--mixed_precision bf16|fp16` (fp16 needs a GPU). Evaluation gathers with `gather_for_metrics`, so each
validation/test example counts once whatever the number of processes (`metrics.json` records the count).

Outputs (`output_dir`): `checkpoints/checkpoint-<step>/` (complete ones only; `--resume [DIR]`), `logs/`
(the `report_to` trackers, default tensorboard: losses, metrics, layer weights; `--report_to none`: no logs),
`best/`, `metrics.json`, and `repo/`: the Hub-ready model (`AutoModel.from_pretrained(repo, trust_remote_code=True)`,
adapters merged; for lora/adapter also `repo/peft_adapter/`), with a generated model card. `--push_to_hub user/name`
uploads `repo/`.
"""

import argparse
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, set_seed
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from svu.dataset_scripts.prepare import check_stored_rate
from svu.modeling_svu import TASK_MODELS
from svu.modeling_svu.backbones import tiny_backbone_config
from svu.modeling_svu.checkpoints import resolve_family_name
from svu.modeling_svu.pruning import prune_layers

from svu.train.checkpointing import TrainingState, check_output_dir, read_training_state, resolve_resume, save_checkpoint
from svu.train.checkpointing import non_finite_loss_message
from svu.train.config import TrainConfig, load_config
from svu.train.data import (
    AudioCollator, columns_for, make_dataloader, pooled_collate, prepare_dataset,
    prepared_dir, resolve_num_workers,
)
from svu.train.evaluation import eval_mode, evaluate_split, evaluate_test, quiet, scoring_of
from svu.train.external_dataset import ColumnError
from svu.train.native_export import is_native_export, svu_from_native
from svu.train.peft_variants import describe_trainable, set_stage, svu_model, trainable_parameter_names, wrap_for_finetune
from svu.train.spec_augment import apply_spec_augment, spec_augment_record
from svu.train.streaming import load_streaming, streaming_loader
from svu.train.trackers import accelerate_log_with


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
    """The SVU task model of `cfg.task` on `cfg.backbone`, labelled with the dataset's classes, with the
    config's SpecAugment."""
    model = task_model(cfg, meta)
    apply_spec_augment(model.backbone, cfg.spec_augment)
    return model


def task_model(cfg: TrainConfig, meta: dict):
    """A new model on `cfg.backbone`, or the saved SVU model it names (either export form)."""
    model_cls = TASK_MODELS[cfg.task]
    overrides = {"chunk_seconds": meta["chunk_seconds"], "classifier_dropout": cfg.classifier_dropout, "task": cfg.task}
    id2label = dict(enumerate(meta["label_names"])) if cfg.task_spec.classes else None
    if cfg.task_spec.class_weighted:
        overrides["class_weights"] = meta["class_weights"]
    overrides.update(cfg.model_options)  # e.g. sampling_rate: 24000 for a tiny MERT-v1-like backbone
    config_file = Path(cfg.backbone) / "config.json"
    saved = json.loads(config_file.read_text()) if config_file.is_file() else {}
    if saved.get("model_type") == "svu" or is_native_export(saved):
        # continue from a saved SVU model (either export form)
        model = model_cls.from_pretrained(cfg.backbone) if saved.get("model_type") == "svu" else svu_from_native(cfg.backbone)
        labels = list(model.config.id2label.values()) if id2label else None
        if model.config.task != cfg.task or (id2label and labels != list(id2label.values())):
            raise ValueError(
                f"Model {cfg.backbone} ({model.config.task}, labels {labels}) does not match the dataset "
                f"({cfg.task}, labels {meta['label_names']})."
            )
        if cfg.max_layers is not None:
            prune_layers(model, cfg.max_layers)
        return model
    backbone = cfg.backbone
    if cfg.backbone_options:  # a tiny random backbone of another shape (checked by TrainConfig)
        backbone = tiny_backbone_config(resolve_family_name(cfg.backbone[len("tiny-"):]), **cfg.backbone_options)
    try:
        model = model_cls.from_backbone(backbone, id2label=id2label, **overrides)
    except OSError as err:
        raise ValueError(f"Backbone {cfg.backbone!r} could not be loaded ({str(err).splitlines()[0]}).") from None
    if cfg.max_layers is not None:
        prune_layers(model, cfg.max_layers)
    return model


def get_dataloaders(cfg, data, model, accelerator):
    """Audio loaders for train and validation (none with `validation: none`). The test split is scored by
    `train.evaluation.evaluate_test`; the stage-1 cached loaders come after `prepare` (`cached_loaders`)."""
    collate = AudioCollator(svu_model(model).feature_extractor(), cfg.task, svu_model(model).config)  # resamples
    columns = columns_for(cfg.task)
    if cfg.streaming:
        train = streaming_loader(cfg, data["train"], columns, collate, accelerator)
        workers = train.num_workers
    else:
        workers = resolve_num_workers(cfg.num_workers, cfg.backbone, len(data["train"]), accelerator.num_processes)
        train = make_dataloader(data["train"], columns, collate, cfg.batch_size, seed=cfg.seed, num_workers=workers)
    loaders = {"train": train}
    if cfg.validation != "none":
        loaders["validation"] = make_dataloader(data["validation"], columns, collate, cfg.eval_batch_size, num_workers=workers)
    return loaders


def cached_loaders(cfg, data, module, accelerator) -> dict:
    """Stage-1 loaders of pooled features (classification + cache_stage1): the same rows as the audio loaders,
    shuffled by the same (seed, epoch) sampler. The cache is built by the prepared `module`'s model on
    `accelerator.device` under the run's mixed precision, its batches shared between the processes."""
    if not (cfg.cache_stage1 is not False and cfg.task_spec.pooled and cfg.stage1_epochs > 0) or cfg.streaming:
        return {}
    from svu.train.feature_cache import build_pooled_cache

    model = svu_model(accelerator.unwrap_model(module).model)
    splits = ("train", "validation") if cfg.validation != "none" else ("train",)
    cache_dir = Path(cfg.output_dir) / "feature_cache"
    cached = {split: build_pooled_cache(model, data[split], cache_dir, batch_size=cfg.eval_batch_size, accelerator=accelerator)
              for split in splits}
    columns = ["pooled_layer_states", "label"]
    loaders = {"train_cached": make_dataloader(cached["train"], columns, pooled_collate, cfg.batch_size, seed=cfg.seed)}
    if "validation" in cached:
        loaders["validation_cached"] = make_dataloader(cached["validation"], columns, pooled_collate, cfg.eval_batch_size)
    return {name: accelerator.prepare(loader) for name, loader in loaders.items()}


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


def parameter_groups(model, lr: float, lr_head=None) -> list:
    """Adam parameter groups of the trainable parameters: all at `lr`, or the task head's at `lr_head` when set."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    if lr_head is None:
        return [{"params": trainable, "lr": lr}]
    head = {id(p) for p in svu_model(model).head.parameters()}
    return [{"params": [p for p in trainable if id(p) not in head], "lr": lr},
            {"params": [p for p in trainable if id(p) in head], "lr": lr_head}]  # fmt: skip


def start_fresh(output_dir: Path):
    """A run without --resume must not mix with an earlier run's checkpoints, best model or logs."""
    stale = [output_dir / name for name in ("checkpoints", "best", "trainable_params.jsonl") if (output_dir / name).exists()]
    for path in stale:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    if stale:
        print(f"starting afresh (no --resume): removed {', '.join(p.name for p in stale)} of the previous run in {output_dir}")


@dataclass
class Run:
    """What one training run works on (built by `build_run`)."""

    cfg: TrainConfig
    accelerator: Accelerator
    data: object  # DatasetDict
    meta: dict
    model: torch.nn.Module  # the SVU model (PEFT-wrapped for lora/adapter)
    module: torch.nn.Module  # TrainingModule(model), prepared
    optimizers: dict  # stage -> prepared Adam
    loaders: dict  # name -> prepared DataLoader

    @property
    def output_dir(self) -> Path:
        return Path(self.cfg.output_dir)

    @property
    def selection_metric(self) -> str:
        return self.cfg.selection_metric or self.cfg.task_spec.default_selection_metric


def build_run(cfg: TrainConfig):
    """Accelerator, data, model, loaders and both optimizers, prepared; bad data/backbone is one line."""
    output_dir = Path(cfg.output_dir)
    try:
        log_with = accelerate_log_with(cfg.report_to)
    except ValueError as err:  # a tracker that is not installed: one line, nothing written
        raise SystemExit(f"error: {err}") from None
    accelerator = Accelerator(
        # `accelerate launch --multi_gpu` on a machine without GPUs: data parallel on CPU (gloo)
        cpu=int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available(),
        mixed_precision=cfg.mixed_precision,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        log_with=log_with,
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
        if cfg.streaming:
            data, meta = load_streaming(cfg, accelerator)
        else:
            with accelerator.main_process_first():
                data, meta = prepare_dataset(cfg)
        model = wrap_for_finetune(cfg, build_model(cfg, meta))
        where = cfg.streaming_path if cfg.streaming else prepared_dir(cfg)
        check_stored_rate(meta, svu_model(model).config.sampling_rate, where=str(where))
    except ColumnError as err:  # a --*_column_name the dataset lacks: a usage error
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except ValueError as err:  # bad dataset / backbone / labels: one line, nothing trained
        raise SystemExit(f"error: {err}") from None
    loaders = get_dataloaders(cfg, data, model, accelerator)

    # One Adam per stage, both built now (stage 2's starts fresh): prepare() and checkpoints see a fixed set.
    set_stage(model, 1, cfg.finetune)
    optimizer1 = torch.optim.Adam(parameter_groups(model, cfg.lr_stage1, cfg.lr_head))
    set_stage(model, 2, cfg.finetune, cfg.freeze_feature_encoder)  # DDP registers the largest trainable set
    stage2_lr = cfg.lr_peft if cfg.finetune in ("lora", "adapter") else cfg.lr_stage2
    optimizer2 = torch.optim.Adam(parameter_groups(model, stage2_lr, cfg.lr_head))
    streamed = {"train": loaders.pop("train")} if cfg.streaming else {}  # split between processes already
    names = list(loaders)
    module, optimizer1, optimizer2, *prepared = accelerator.prepare(
        TrainingModule(model), optimizer1, optimizer2, *loaders.values()
    )
    loaders = {**dict(zip(names, prepared)), **streamed, **cached_loaders(cfg, data, module, accelerator)}
    return Run(cfg, accelerator, data, meta, model, module, {1: optimizer1, 2: optimizer2}, loaders)


def resume_or_start(run: Run, args) -> TrainingState:
    """The run state of `--resume` (weights, optimizers, RNG and position restored), or a fresh one after
    clearing what an earlier run left in output_dir."""
    accelerator, output_dir, state = run.accelerator, run.output_dir, TrainingState()
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
        (output_dir / "train_config.yaml").write_text(yaml.safe_dump(run.cfg.to_dict(), sort_keys=False))
    hyper = {k: v for k, v in run.cfg.to_dict().items() if isinstance(v, (int, float, str, bool))}
    accelerator.init_trackers("logs", config=hyper)
    return state


def train_epoch(run: Run, state: TrainingState, epoch: int, stage: int, cached: bool):
    """One pass over the training data. Gradients of `gradient_accumulation_steps` batches are summed (accelerate's
    `accumulate`: the loss is divided by the steps, the optimizer steps on the last batch of each group and at
    the end of the epoch). `step_in_epoch` counts batches, so a resumed epoch skips exactly the batches done."""
    cfg, accelerator, module, output_dir = run.cfg, run.accelerator, run.module, run.output_dir
    train_loader = run.loaders["train_cached" if cached else "train"]
    optimizer = run.optimizers[stage]
    if state.step_in_epoch:
        train_loader = accelerator.skip_first_batches(train_loader, state.step_in_epoch)
    train_loader.set_epoch(epoch)  # the shuffle order is a function of (seed, epoch) only

    module.train()
    bar = tqdm(train_loader, desc=f"epoch {epoch + 1}/{cfg.epochs} (stage {stage})", disable=not accelerator.is_local_main_process or quiet())
    for batch in bar:
        batch.pop("row_index")
        with accelerator.accumulate(module):
            loss = module(batch).loss
            losses = accelerator.gather(loss.detach()[None])
            if not torch.isfinite(losses).all():
                raise SystemExit(non_finite_loss_message(losses.tolist(), epoch + 1, state.step_in_epoch + 1, output_dir))
            accelerator.backward(loss)
            optimizer.step()  # a no-op until the last batch of an accumulation group
            optimizer.zero_grad(set_to_none=True)
        state.step_in_epoch += 1
        state.global_step += 1
        bar.set_postfix(loss=f"{losses.mean().item():.4f}")
        if state.global_step % cfg.log_every_steps == 0:
            accelerator.log({"train/loss": losses.mean().item(), "train/stage": stage}, step=state.global_step)
        # checkpoints only between accumulation groups: the summed gradients are not saved
        if accelerator.sync_gradients and cfg.checkpoint_every_steps and state.global_step % cfg.checkpoint_every_steps == 0:
            save_checkpoint(accelerator, output_dir, state, cfg.to_dict(), cfg.keep_checkpoints)


def validate_and_keep_best(run: Run, state: TrainingState, epoch: int, stage: int, cached: bool) -> dict:
    """Validation scores of this epoch; the best epoch's weights go to `best/`. With `validation: none` there
    is nothing to score and the last epoch is the one kept."""
    cfg, accelerator, module = run.cfg, run.accelerator, run.module
    layer_weights = svu_model(run.model).layer_weights().cpu().tolist()
    entry = {"epoch": epoch, "stage": stage, "layer_weights": layer_weights}
    logs = {f"layer_weight/{i}": w for i, w in enumerate(layer_weights)}
    if cfg.validation == "none":
        state.best_epoch = epoch
        accelerator.print(f"epoch {epoch + 1} done (validation: none, the last epoch is kept)")
    else:
        loader = run.loaders["validation_cached" if cached else "validation"]
        with eval_mode(module):  # the epoch is kept on deterministic scores (no dropout, no SpecAugment)
            val = evaluate_split(cfg.task, module, loader, run.data["validation"], module_config(accelerator, module), accelerator)
        score = val[run.selection_metric]
        if state.best_metric is None or score > state.best_metric:
            state.best_metric, state.best_epoch = score, epoch
            save_best(accelerator, module, run.output_dir, epoch, val)
        proxy = scoring_of(cfg.task).validation_proxy  # e.g. transcription validation decodes chunks alone
        prefix = "validation_proxy" if proxy else "validation"
        accelerator.print(f"epoch {epoch + 1}: {prefix.replace('_', ' ')} {run.selection_metric} = {score:.4f}"
                          + (f" ({proxy})" if proxy else ""))
        logs.update({f"{prefix}/{k}": v for k, v in val.items() if isinstance(v, (int, float))})  # no per-song lists
        entry["validation"] = val
    accelerator.log(logs, step=state.global_step)
    state.history.append(entry)
    return entry


def module_config(accelerator, module):
    return accelerator.unwrap_model(module).model_config


def protocol(run: Run) -> dict:
    """How this run's numbers were obtained (read by the model card)."""
    cfg, meta = run.cfg, run.meta
    scoring = scoring_of(cfg.task)
    selection = ("last epoch (validation: none)" if cfg.validation == "none"
                 else f"best validation epoch by {run.selection_metric}")
    result = {
        "validation": cfg.validation,
        "model_selection": selection,
        "groups": meta.get("report", {}).get("groups"),  # e.g. {"what": "singer", "train": 15, ...}
        "separation": meta.get("separation", "none"),
        "test_scoring": scoring.test_scoring,
        "spec_augment": spec_augment_record(cfg.spec_augment, svu_model(run.model).config.backbone_config),
    }
    if scoring.validation_proxy and cfg.validation != "none":
        result["validation_proxy"] = scoring.validation_proxy
    return result


def finish(run: Run, state: TrainingState):
    """Test the kept weights (the best validation epoch, or the last epoch with `validation: none`), then write
    metrics.json and the Hub-ready repo."""
    cfg, accelerator, model = run.cfg, run.accelerator, run.model
    accelerator.wait_for_everyone()
    if cfg.validation != "none":
        accelerator.unwrap_model(run.module).load_state_dict(load_file(str(run.output_dir / "best" / "model.safetensors")))
    test = evaluate_test(accelerator.unwrap_model(run.module).model, run.data["test"], run.meta,
                         batch_size=cfg.eval_batch_size, accelerator=accelerator)
    if accelerator.is_main_process:
        from svu.train.export import export_repo, print_results

        kept = state.history[state.best_epoch]
        metrics = {
            "task": cfg.task, "selection_metric": None if cfg.validation == "none" else run.selection_metric,
            "best_epoch": state.best_epoch, "protocol": protocol(run),
            "test": test, "validation": kept.get("validation"),
            "test_split_size": len(run.data["test"]), "num_processes": accelerator.num_processes,
            "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
            "effective_batch_size": cfg.batch_size * accelerator.num_processes * cfg.gradient_accumulation_steps,
            "eval_batch_size": cfg.eval_batch_size,
            "layer_weights": svu_model(model).layer_weights().cpu().tolist(),
        }
        repo = export_repo(cfg, model, run.meta, metrics, run.output_dir / "repo", run.data["test"])
        (run.output_dir / "metrics.json").write_text(json.dumps(metrics, indent=1))
        print_results(metrics, repo)
        if cfg.push_to_hub:
            from svu.train.export import push_repo

            push_repo(repo, cfg.push_to_hub, private=cfg.hub_private)
    accelerator.wait_for_everyone()
    accelerator.end_training()  # also ends the process group: last


def training_function(cfg: TrainConfig, args):
    run = build_run(cfg)
    state = resume_or_start(run, args)
    for epoch in range(state.epoch, cfg.epochs):
        stage = cfg.stage_of_epoch(epoch)
        set_stage(run.model, stage, cfg.finetune, cfg.freeze_feature_encoder)
        if stage != state.stage:
            log_trainable(run.accelerator, run.model, stage, run.output_dir)
            state.stage = stage
        cached = stage == 1 and "train_cached" in run.loaders
        train_epoch(run, state, epoch, stage, cached)
        validate_and_keep_best(run, state, epoch, stage, cached)
        state.epoch, state.step_in_epoch = epoch + 1, 0
        save_checkpoint(run.accelerator, run.output_dir, state, cfg.to_dict(), cfg.keep_checkpoints)
    finish(run, state)


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
