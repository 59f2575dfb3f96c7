"""`--batch-files N`: the windows of N files at once in shared forward passes, for catalogues of short files.

A file shorter than `--batch-size` windows gives forward passes of a few windows; here N files are read at once,
each on its own thread, and their windows meet: a forward pass runs when `--batch-size` windows of one model and
one length wait, or when every file being read waits for logits. Windows of one length need no padding, so a
window's logits are those of the file run alone.
"""

import threading
from collections import defaultdict


def add_batch_files_option(parser) -> None:
    parser.add_argument("--batch-files", type=int, default=1, metavar="N",
                        help="read N files at once and run their windows in shared batches of --batch-size "
                        "(short files; default: 1, one file at a time)")  # fmt: skip


def model_engine(model):
    """The default engine: the model in fp32 on its device (what `long_audio.stitched_logits` runs without one)."""

    import torch

    def run(input_values, attention_mask=None):
        device = next(model.parameters()).device
        with torch.inference_mode():
            mask = None if attention_mask is None else attention_mask.to(device)
            return model(input_values.to(device), attention_mask=mask).logits.float().cpu()

    return run


class SharedWindowBatches:
    """The windows of the files being read, batched together; `engine(compute)` is what one model's calls go to."""

    def __init__(self, batch_size: int):
        self.batch_size = batch_size
        self.condition = threading.Condition()
        self.readers = 0  # files being read (inside `reading()`); each makes one call at a time
        self.waiting = defaultdict(list)  # (compute, window length) -> [request]
        self.forward_passes = 0

    def engine(self, compute):
        """An engine for `long_audio.stitched_logits(engine=...)` whose calls join the shared batches of `compute`
        (a model's engine, or `model_engine(model)`)."""

        def call(input_values, attention_mask=None):
            request = {"inputs": input_values, "mask": attention_mask, "logits": None, "error": None}
            with self.condition:
                self.waiting[compute, input_values.shape[-1]].append(request)
                self._run_due()
                while request["logits"] is None and request["error"] is None:
                    self.condition.wait()
            if request["error"] is not None:
                raise request["error"]
            return request["logits"]

        return call

    def reading(self):
        """The context of one file's reading: the batches wait for it while it runs."""
        shared = self

        class Reading:
            def __enter__(self):
                with shared.condition:
                    shared.readers += 1

            def __exit__(self, *exc):
                with shared.condition:
                    shared.readers -= 1
                    shared._run_due()

        return Reading()

    def _run_due(self) -> None:
        """Run a full batch of any (model, length), and everything once every reader waits (the caller holds the
        condition)."""
        everyone_waits = sum(len(requests) for requests in self.waiting.values()) >= self.readers
        for key in list(self.waiting):
            requests = self.waiting[key]
            if everyone_waits or sum(len(r["inputs"]) for r in requests) >= self.batch_size:
                del self.waiting[key]
                self._run(key[0], requests)
        self.condition.notify_all()

    def _run(self, compute, requests: list) -> None:
        join = _joiner(requests[0]["inputs"])
        masks = [r["mask"] for r in requests]
        mask = None if any(m is None for m in masks) else join(masks)
        try:
            logits = compute(join([r["inputs"] for r in requests]), mask)
            logits = logits.float().cpu() if hasattr(logits, "detach") else logits
            self.forward_passes += 1
        except Exception as error:  # raised again in the thread of each file of the batch
            for r in requests:
                r["error"] = error
            return
        start = 0
        for r in requests:
            r["logits"] = logits[start : start + len(r["inputs"])]
            start += len(r["inputs"])


def _joiner(inputs):
    """How windows of several files are joined into one batch: numpy's for arrays (a `saved_onnx` model's
    windows), torch's for tensors."""
    if not hasattr(inputs, "detach"):
        import numpy as np

        return np.concatenate
    import torch

    return torch.cat


def shared_engines(args, *pairs):
    """With `--batch-files N` > 1: (the shared engine of each (model, engine) pair, the reading context factory,
    N); else the engines as they are, no context and 1."""
    if args.batch_files < 1:
        raise SystemExit(f"--batch-files {args.batch_files}: at least 1 is needed.")
    if args.batch_files == 1:
        return [engine for _, engine in pairs], None, 1
    from svu.modeling_svu.long_audio import DEFAULT_BATCH_SIZE

    batches = SharedWindowBatches(args.batch_size or DEFAULT_BATCH_SIZE)
    engines = [None if model is None else batches.engine(engine or model_engine(model)) for model, engine in pairs]
    return engines, batches.reading, args.batch_files
