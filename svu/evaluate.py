"""`svu evaluate --model M --data PREPARED [--split test] [-o DIR] [--device] [--batch-size N]`: score a saved model.

Any saved SVU repo (folder or Hub repo id; remote-code or native export) on a `svu data prepare` folder, no
training. The numbers come from the very function the training run uses for its test metrics
(`train.evaluation.evaluate_test`: chunk-level classification scores; whole-song transcription scores), on the
same chunks in the same order and batches (default batch size: the repo's `train_config.yaml` `eval_batch_size`),
so a model evaluated on its own prepared data reproduces the `test` block of the run's `metrics.json`.

Writes to DIR (default `evaluation/`) `metrics.json` and, for classification, `per_class.csv` (precision, recall,
F1, support per class) and `confusion_matrix.png`; for transcription, `per_song.csv` (COnPOff/COnP/COn P/R/F of
each whole song, as the test metrics score it) and `per_song_f1.png`; for pitch, `per_song.csv` (raw pitch / chroma,
overall accuracy, voicing of each song) and `per_song_accuracy.png`. Prints the table.
"""

import csv
import json
from functools import partial
from pathlib import Path

import numpy as np

from .common import add_device_option, add_quiet_option, load_model, model_task, resolve_device

DEFAULT_BATCH_SIZE = 8
NOTE_METRICS = ("COnPOff", "COnP", "COn")


def repo_eval_batch_size(name: str):
    """`eval_batch_size` of the training config saved with the repo (train/run.py writes it), or None."""
    import yaml
    from transformers.utils import cached_file

    try:
        path = cached_file(name, "train_config.yaml", _raise_exceptions_for_missing_entries=False)
    except OSError:
        return None
    if path is None:
        return None
    return (yaml.safe_load(Path(path).read_text()) or {}).get("eval_batch_size")


def load_split(data_dir: str, split: str, task: str, model_config):
    """(dataset split, meta) of a prepared folder, checked against the model: one line (SystemExit) if unusable."""
    from svu.dataset_scripts.prepare import check_stored_rate, load_prepared
    from svu.modeling_svu.tasks import get_task
    from svu.train.data import absent_column

    try:
        data, meta = load_prepared(data_dir)
        check_stored_rate(meta, model_config.sampling_rate, data_dir)
    except (ValueError, OSError) as error:
        raise SystemExit(f"svu evaluate: --data {data_dir}: {str(error).splitlines()[0]}") from None
    if split not in data or len(data[split]) == 0:
        raise SystemExit(f"svu evaluate: {data_dir} has no (or an empty) {split!r} split; it has {sorted(data)}.")
    if task is not None and meta.get("task") != task:  # None: a classifier naming no task, checked by labels
        raise SystemExit(f"svu evaluate: {data_dir} is prepared for {meta.get('task')!r}; the model does {task!r}.")
    try:
        data_task = get_task(meta.get("task"))
    except ValueError as error:
        raise SystemExit(f"svu evaluate: --data {data_dir}: {error}") from None
    absent = absent_column(data[split], data_task.name)
    if absent:
        raise SystemExit(f"svu evaluate: {data_dir}: split {split!r} has no {absent!r} column; prepare it again "
                         "(svu data prepare ... --force).")
    if data_task.classes:
        if not getattr(model_config, "id2label", None):
            raise SystemExit(f"svu evaluate: the model has no class labels; {data_dir} is a {meta['task']} dataset.")
        model_labels = [model_config.id2label[i] for i in sorted(model_config.id2label)]
        if model_labels != list(meta["label_names"]):
            raise SystemExit(
                f"svu evaluate: the model's labels {model_labels} differ from the dataset's {meta['label_names']}."
            )
    return data[split], meta


def display_name(model: str) -> str:
    """A short name for titles: the Hub id, or the folder's name (its parent's for a run's `repo/` folder)."""
    path = Path(model)
    if not path.exists():
        return model
    path = path.resolve()
    return path.parent.name if path.name == "repo" else path.name


def per_class_report(logits: np.ndarray, labels: np.ndarray, label_names: list):
    """(confusion matrix [true, predicted], rows of class, precision, recall, f1, support)."""
    n = len(label_names)
    confusion = np.zeros((n, n), dtype=np.int64)
    np.add.at(confusion, (labels, logits.argmax(axis=1)), 1)
    rows = []
    for c, name in enumerate(label_names):
        tp, predicted, support = confusion[c, c], confusion[:, c].sum(), confusion[c].sum()
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append({"class": name, "precision": float(precision), "recall": float(recall), "f1": float(f1), "support": int(support)})
    return confusion, rows


def write_csv(path: Path, rows: list) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def print_table(title: str, rows: list, columns: list) -> None:
    print(title)
    width = max(len(str(row[columns[0]])) for row in rows) + 2
    print(columns[0].ljust(width) + "".join(c.rjust(11) for c in columns[1:]))
    for row in rows:
        cells = [f"{100 * row[c]:.2f}" if isinstance(row[c], float) else str(row[c]) for c in columns[1:]]
        print(str(row[columns[0]]).ljust(width) + "".join(cell.rjust(11) for cell in cells))


def class_report(report: dict, results: dict, scored: dict, meta: dict, out_dir: Path, title: str) -> None:
    """Per-class precision / recall / F1 (CSV, table) and the confusion matrix (PNG, JSON)."""
    from .figures import confusion_matrix_figure

    confusion, per_class = per_class_report(scored["logits"], scored["labels"], meta["label_names"])
    report.update(label_names=meta["label_names"], confusion_matrix=confusion.tolist(), per_class=per_class)
    write_csv(out_dir / "per_class.csv", per_class)
    confusion_matrix_figure(confusion, meta["label_names"], out_dir / "confusion_matrix.png", title=title)
    print()
    print_table("per class", per_class, ["class", "precision", "recall", "f1", "support"])


def song_report(report: dict, results: dict, scored: dict, meta: dict, out_dir: Path, title: str, *,
                metrics: tuple, figure: str, ylabel: str) -> None:
    """Scores of each whole song (CSV, PNG of `metrics`, table)."""
    from .figures import per_song_figure

    per_song = results["per_song"]
    write_csv(out_dir / "per_song.csv", per_song)
    per_song_figure(per_song, metrics, out_dir / figure, title=title, ylabel=ylabel)
    print()
    print_table("per song", per_song, ["song_id", *metrics])


# the detailed reports tasks name (their `report` hook) besides `class_report`
transcription_report = partial(song_report, metrics=tuple(f"{m}_f1" for m in NOTE_METRICS), figure="per_song_f1.png",
                               ylabel="F1")
pitch_report = partial(song_report, metrics=("raw_pitch_accuracy", "raw_chroma_accuracy", "overall_accuracy"),
                       figure="per_song_accuracy.png", ylabel="accuracy")
lyrics_report = partial(song_report, metrics=("wer", "cer"), figure="per_song_error_rate.png", ylabel="error rate")


def run_evaluate(args) -> int:
    from svu.modeling_svu.tasks import TASK_NAMES, get_task
    from svu.train.evaluation import evaluate_test  # the training run's test metrics: one function for both
    from svu.train.export import results_table

    device = resolve_device(args.device, "evaluate")
    model = load_model(args.model, "evaluate", TASK_NAMES, device)
    task = model_task(model.config)
    dataset, meta = load_split(args.data, args.split, task, model.config)
    batch_size = args.batch_size or repo_eval_batch_size(args.model) or DEFAULT_BATCH_SIZE
    if batch_size < 1:
        raise SystemExit(f"svu evaluate: --batch-size must be >= 1, got {batch_size}.")
    scored = {}
    try:
        results = evaluate_test(model, dataset, meta, batch_size=batch_size, keep=scored)
    except ValueError as error:  # e.g. a transcription split prepared before whole-song scoring
        raise SystemExit(f"svu evaluate: {str(error).splitlines()[0]}") from None

    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = {"model": args.model, "data": str(args.data), "split": args.split, "task": task,
              "batch_size": batch_size, "device": device, "metrics": results}  # fmt: skip
    print(results_table({"test": results, "test_split_size": len(dataset)}).replace("test metric", f"{args.split} metric"))

    title = f"{display_name(args.model)} on {args.split}"
    get_task(meta["task"]).hook("report")(report, results, scored, meta, out_dir, title)
    (out_dir / "metrics.json").write_text(json.dumps(report, indent=1))
    print(f"\nwritten: {', '.join(sorted(p.name for p in out_dir.iterdir()))} in {out_dir}")
    return 0


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("evaluate")
    parser.add_argument("--model", required=True, help="saved SVU model: Hub repo id or local folder")
    parser.add_argument("--data", required=True, help="a folder written by `svu data prepare`")
    parser.add_argument("--split", default="test", help="split to score (default: test)")
    parser.add_argument("-o", "--output-dir", default="evaluation", help="folder for metrics.json, CSVs and PNGs (default: evaluation)")
    parser.add_argument("--batch-size", type=int, help="chunks per forward pass (default: the run's eval_batch_size, else 8)")
    add_device_option(parser)
    add_quiet_option(parser)
    parser.set_defaults(func=run_evaluate)
