"""Data preparation on several cores: an ordered map over a process pool.

The builders keep generating examples in one process, in their usual order (so the rows, their keys and the
report are those of a one-process run, and `datasets` shows its usual single progress bar per split); only the
expensive per-file work (FFmpeg decoding and resampling, synthesis) runs in `num_proc` worker processes, a few
files ahead of the writer.
"""

import multiprocessing
import os
from typing import Callable, Iterable, Iterator


def resolve_num_proc(num_proc) -> int:
    """`None` -> 1, `"auto"` -> the cores this process may use, N (int or digits) -> N; ValueError otherwise."""
    if num_proc is None:
        return 1
    if num_proc == "auto":
        return len(os.sched_getaffinity(0))
    if isinstance(num_proc, str) and num_proc.isdigit():
        num_proc = int(num_proc)
    if not isinstance(num_proc, int) or num_proc < 1:
        raise ValueError(f"num_proc={num_proc!r} must be a whole number of processes >= 1, or auto.")
    return num_proc


def ordered_map(fn: Callable, items: Iterable, num_proc: int = 1) -> Iterator:
    """``fn(item)`` for each item, in the items' order; on `num_proc` processes when > 1.

    `fn` must be a module-level function and the items picklable. Results are produced at most a few items
    ahead of the consumer, so memory stays bounded by about `2 * num_proc` results.
    """
    items = list(items)
    if num_proc <= 1 or len(items) <= 1:
        yield from map(fn, items)
        return
    with multiprocessing.get_context().Pool(min(num_proc, len(items))) as pool:
        pending = []
        for item in items:
            pending.append(pool.apply_async(fn, (item,)))
            if len(pending) >= 2 * num_proc:
                yield pending.pop(0).get()
        for result in pending:
            yield result.get()
