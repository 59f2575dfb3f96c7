"""`svu distill --teacher REPO --audio DIR_OR_PREPARED --student SIZE -o OUT`: a small student of a fine-tuned SVU
model, trained on its outputs over unlabelled audio (`train.distill`); OUT is a saved model repo."""

import sys

SIZES = ("nano", "tiny", "small", "base-4l")  # train.distill.STUDENT_SIZES (not imported here: --help stays fast)


def run_distill(args) -> int:
    from svu.train.distill import DistillConfig, distill

    cfg = DistillConfig(
        teacher=args.teacher, audio=args.audio, student=args.student, output_dir=args.output_dir, glob=args.glob,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, temperature=args.temperature,
        hidden_states=args.hidden_states, label_weight=args.label_weight, held_out=args.held_out,
        cache_dir=args.cache_dir, seed=args.seed, max_steps=args.max_steps,
    )  # fmt: skip
    try:
        record = distill(cfg)
    except ValueError as error:
        print(f"svu distill: error: {str(error).splitlines()[0]}", file=sys.stderr)
        return 2
    failed = record["files_failed"]
    if not record["main_process"]:
        return 1 if failed else 0  # process 0 prints the run's lines
    if record["files"] is not None:
        print(f"svu distill: {record['files']} files: {record['files'] - len(failed)} read, {len(failed)} failed"
              + (": " + "; ".join(f["error"] if f["error"].startswith(f["input"]) else f"{f['input']}: {f['error']}"
                                  for f in failed) if failed else ""), file=sys.stderr)
    if "agreement" in record:
        key = record["headline"]
        after, before = record["agreement"].get(key), record["agreement_undistilled"].get(key)
        show = lambda value: "-" if value is None else f"{value:.3f}"  # noqa: E731
        print(f"agreement with the teacher on {record['held_out_chunks']} held-out chunks ({key}): "
              f"{show(after)} (undistilled: {show(before)}); real-time factor {record['speed']['student_rtf']:.4f} "
              f"(teacher {record['speed']['teacher_rtf']:.4f})")
    print(f"student ({record['student_size']}, {record['student_parameters']:,} parameters) -> {args.output_dir}")
    return 1 if failed else 0


def add_parser(subparsers) -> None:
    from svu.common import add_quiet_option

    parser = subparsers.add_parser("distill")
    parser.add_argument("--teacher", required=True, help="the fine-tuned SVU model: local folder or Hub repo id")
    parser.add_argument("--audio", required=True,
                        help="a folder (or file) of recordings, searched recursively, or a prepared dataset folder "
                        "(svu data prepare: train + validation train, test is held out)")
    parser.add_argument("--student", default="small", choices=SIZES,
                        help="student size: nano (1 layer x 32), tiny (2 x 64), small (2 x 256, narrow CNN; default), "
                        "base-4l (4 x 384)")
    parser.add_argument("-o", "--output-dir", required=True, help="the student's model repo folder")
    parser.add_argument("--glob", help="in a folder, the files matching this pattern (default: audio extensions)")
    parser.add_argument("--epochs", type=int, default=20, help="passes over the audio (default: 20)")
    parser.add_argument("--max-steps", type=int, help="stop after this many optimizer steps")
    parser.add_argument("--batch-size", type=int, default=8, help="chunks per step (default: 8)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default: 1e-3)")
    parser.add_argument("--temperature", type=float,
                        help="softening of the teacher's outputs (default: 1 for notes, 2 for the other tasks)")
    parser.add_argument("--hidden-states", action="store_true",
                        help="also predict 3 of the teacher's hidden states (DistilHuBERT)")
    parser.add_argument("--label-weight", type=float, default=0.0,
                        help="with a prepared dataset: add its labels' task loss with this weight (default: 0, none)")
    parser.add_argument("--held-out", type=float, default=0.2,
                        help="fraction of a folder's recordings held out to measure agreement and speed (default: 0.2)")
    parser.add_argument("--cache-dir", help="where the teacher's outputs are cached (default: ~/.cache/svu/distill)")
    parser.add_argument("--seed", type=int, default=0)
    add_quiet_option(parser)
    parser.set_defaults(func=run_distill)
