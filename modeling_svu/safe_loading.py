"""Checks used when loading a saved SVU model: weights only from safetensors, and shapes that fit the config.

Reads only a safetensors *header* (stdlib: 8-byte length + JSON), never tensor data, and only when
`from_pretrained` already failed, so a normal load does no extra work.
"""

import json
import struct

from .tasks import get_task


def safetensors_shapes(path) -> dict:
    """`{tensor name: shape list}` from the header of a `.safetensors` file."""
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    return {name: info["shape"] for name, info in header.items() if name != "__metadata__"}


def shape_mismatches(expected: dict, saved: dict, limit: int = 3) -> str:
    """'head.weight: saved [3, 32], config needs [4, 32]; ...' for the first `limit` disagreeing tensors."""
    found = [
        f"{name}: saved {saved[name]}, config needs {list(shape)}"
        for name, shape in expected.items()
        if name in saved and list(shape) != list(saved[name])
    ]
    more = f" (+{len(found) - limit} more)" if len(found) > limit else ""
    return "; ".join(found[:limit]) + more


def config_summary(config) -> str:
    """The config values that decide the head's shape."""
    return get_task(config.task).describe_head(config)
