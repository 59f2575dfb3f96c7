"""`svu data prepare <corpus> --data-dir D --output O [--seed N] [--parquet DIR] [--push-to-hub REPO]`."""

import argparse
import dataclasses
import json
import sys

from svu.modeling_svu.tasks import get_task

from .corpora import corpora
from .prepare import META_FILE, load_prepared, prepare


def parse_option(text: str):
    """``key=value`` with the value read as JSON when it parses (numbers, lists), else a string."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--option expects key=value, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def ratios(text: str) -> list:
    """``0.8,0.1,0.1`` -> [0.8, 0.1, 0.1] (the builder checks them), as a training config's YAML list reads."""
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected fractions train,validation,test (e.g. 0.8,0.1,0.1), got {text!r}")


# flags that are builder options of the corpora whose builder config has the field of that name
BUILDER_FLAGS = {"split_ratios": "--split-ratios", "group_by": "--group-by"}


def corpora_with_option(option: str) -> tuple:
    return tuple(name for name, entry in corpora().items()
                 if option in {field.name for field in dataclasses.fields(entry.builder.BUILDER_CONFIG_CLASS)})


def summary_table(meta: dict) -> str:
    """Files found/used/skipped (with reasons), chunks per split and class, hours per split."""
    report = meta["report"]
    lines = [
        f"{meta['corpus']} ({meta['task']}, {meta['chunk_seconds']:g} s chunks)",
        f"files: {report['files_found']} found, {report['files_used']} used, {report['files_skipped']} skipped",
    ]

    for reason, names in report["skipped"].items():
        shown = ", ".join(names[:5]) + (f", ... (+{len(names) - 5})" if len(names) > 5 else "")
        lines.append(f"  skipped {len(names)}: {reason}: {shown}")
    if report.get("chunks_dropped_rms"):
        lines.append(f"chunks dropped by the RMS filter: {report['chunks_dropped_rms']}")
    lines.extend(report.get("messages", []))
    splits = list(report["chunks"])
    classes = sorted({name for counts in report["chunks"].values() for name in counts})
    task = get_task(meta["task"])
    if not task.pooled:  # chunks are counted per leakage group (e.g. song), not per label
        rows = [(f"{task.leakage}s", *(len(report["chunks"][s]) for s in splits))]
        rows.append(("chunks", *(sum(report["chunks"][s].values()) for s in splits)))
    else:
        rows = [(name, *(report["chunks"][s].get(name, 0) for s in splits)) for name in meta["label_names"] or classes]
        rows.append(("total chunks", *(sum(report["chunks"][s].values()) for s in splits)))
    rows.append(("hours", *(report["hours"][s] for s in splits)))
    width = max(len(str(row[0])) for row in rows) + 2
    lines.append("".ljust(width) + "".join(s.rjust(12) for s in splits))
    lines.extend(str(row[0]).ljust(width) + "".join(str(v).rjust(12) for v in row[1:]) for row in rows)
    if meta.get("class_weights"):
        weights = ", ".join(f"{n}={w:.3f}" for n, w in zip(meta["label_names"], meta["class_weights"]))
        lines.append(f"class weights (1/n_c^0.2, train): {weights}")
    groups = report.get("groups")
    if groups:
        per_split = ", ".join(f"{groups[split]} {split}" for split in ("train", "validation", "test"))
        lines.append(f"{groups['what']}s: {per_split} (validation: {meta.get('validation')}); "
                     f"vocal separation: {meta.get('separation')}")
    return "\n".join(lines)


def run_prepare(args) -> int:
    options = dict(args.option or [])
    if args.task:
        options["task"] = args.task
    if args.split:
        options["split"] = args.split
    if args.separation and args.separation != "none":
        options["separation"] = args.separation
    if args.validation and args.validation != "ours":
        options["validation"] = args.validation
    for option, flag in BUILDER_FLAGS.items():
        if getattr(args, option) is not None:
            if args.corpus not in corpora_with_option(option):
                print(f"svu data prepare: {flag} applies to {', '.join(corpora_with_option(option))} only; "
                      f"{args.corpus} has its own splits", file=sys.stderr)
                return 2
            options[option] = getattr(args, option)
    try:
        prepare(args.corpus, args.output, data_dir=args.data_dir, seed=args.seed, force=args.force,
                num_proc=args.num_proc, **options)
    except ValueError as error:
        print(f"svu data prepare: {error}", file=sys.stderr)
        return 2
    _, meta = load_prepared(args.output)
    print(summary_table(meta))
    print(f"saved to {args.output}")
    if args.parquet:
        from .hub import stage_for_hub

        print(f"Parquet shards, card and {META_FILE} in {stage_for_hub(args.output, args.parquet)}")
    if args.push_to_hub:
        from .hub import push_prepared

        try:
            print(f"pushed: {push_prepared(args.output, args.push_to_hub, public=args.public)}")
        except ValueError as error:  # refused: restricted audio into a public repo
            print(f"svu data prepare: {error}", file=sys.stderr)
            return 2
        except Exception as error:  # offline mode, auth, network: one line, the prepared folder stays
            print(f"svu data prepare: upload to {args.push_to_hub} failed: {type(error).__name__}: {error}", file=sys.stderr)
            return 1
    return 0


def per_corpus(values: dict) -> str:
    """``name: value; name: value`` of the corpora with a value."""
    return "; ".join(f"{name}: {value}" for name, value in values.items() if value)


def add_parser(subparsers) -> None:
    entries = corpora()
    generated = ", ".join(name for name, entry in entries.items() if entry.generated)
    separable = ", ".join(name for name, entry in entries.items() if entry.separable)
    user_data = ", ".join(name for name, entry in entries.items() if entry.user_data)
    restricted = " / ".join(entry.title for entry in entries.values() if entry.no_redistribution)
    data = subparsers.add_parser("data")
    actions = data.add_subparsers(dest="data_command", required=True)
    parser = actions.add_parser("prepare", help="build a corpus into a DatasetDict folder + svu_meta.json")
    parser.add_argument("corpus", choices=tuple(entries))
    parser.add_argument("--data-dir", help=f"root of the downloaded corpus (not needed for {generated})")
    parser.add_argument("--output", required=True, help="folder to write (DatasetDict.save_to_disk + svu_meta.json)")
    parser.add_argument("--seed", type=int, default=0,
                        help=f"draws the {generated} corpus, the {user_data} split and HT-Demucs' random shifts "
                        "(--separation htdemucs)")
    parser.add_argument("--task", help=per_corpus(
        {name: " | ".join(entry.tasks) for name, entry in entries.items() if len(entry.tasks) > 1}))
    parser.add_argument("--split", help=per_corpus({name: entry.split_help for name, entry in entries.items()}))
    parser.add_argument("--separation", metavar="none|stems:DIR|htdemucs",
                        help=f"{separable}: vocal separation of the mixtures; stems:DIR reads vocals separated "
                        "beforehand, mirroring the corpus layout (wav/flac/mp3); htdemucs needs the demucs package")
    parser.add_argument("--validation", choices=("ours", "none"),
                        help="ours (default): hold out our validation singers/songs; none: they train too (paper data)")
    parser.add_argument("--split-ratios", type=ratios, metavar="TRAIN,VAL,TEST",
                        help=f"{', '.join(corpora_with_option('split_ratios'))}: fractions of the groups per split, "
                        "seeded by --seed (default 0.8,0.1,0.1)")
    parser.add_argument("--group-by", metavar="COLUMN",
                        help=f"{', '.join(corpora_with_option('group_by'))}: the metadata.csv column whose values stay "
                        "in one split (default: each recording)")
    parser.add_argument("--option", action="append", type=parse_option, metavar="KEY=VALUE",
                        help="builder option, repeatable (e.g. "
                        f"{per_corpus({name: entry.option_help for name, entry in entries.items()})})")
    parser.add_argument("--force", action="store_true", help="rebuild even if the fingerprint matches")
    parser.add_argument("--num-proc", default="1", metavar="N",
                        help="processes decoding the files, or auto (all cores); same rows for any N (default: 1)")
    parser.add_argument("--parquet", metavar="DIR",
                        help="also write the Hub repo as a local folder: Parquet shards (data/<split>-*.parquet), card "
                        "and svu_meta.json, for train/run.py --streaming")
    parser.add_argument("--push-to-hub", metavar="REPO", help="upload the prepared dataset (Parquet) to this Hub repo")
    parser.add_argument("--private", action="store_true", help="with --push-to-hub: a private repo (the default)")
    parser.add_argument("--public", action="store_true",
                        help=f"with --push-to-hub: a public repo ({restricted} audio is not redistributable: "
                             "check the corpus licence first)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run_prepare)
