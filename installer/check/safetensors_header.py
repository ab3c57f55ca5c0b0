"""Parameter counts from a safetensors header: 8 bytes of length, then that many bytes of JSON.

Only the header is ever read (two small reads, or two HTTP Range requests), never a tensor.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable
from pathlib import Path

MAX_HEADER_BYTES = 100 * 1024 * 1024  # the safetensors format's own limit

ReadRange = Callable[[int, int], bytes]
"""Reads ``length`` bytes at ``offset`` (a file read, or an HTTP Range request)."""


def header_length(first_eight: bytes) -> int | None:
    """The JSON header's length from the file's first 8 bytes, or None when implausible."""
    if len(first_eight) != 8:
        return None
    (length,) = struct.unpack("<Q", first_eight)
    return length if 2 <= length <= MAX_HEADER_BYTES else None


def params_by_dtype(header_json: bytes) -> dict[str, int] | None:
    """{dtype: parameter count} from a header's JSON, or None when it is not a safetensors header."""
    try:
        header = json.loads(header_json)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    if not isinstance(header, dict):
        return None
    counts: dict[str, int] = {}
    for name, tensor in header.items():
        if name == "__metadata__":
            continue
        if not _is_tensor_entry(tensor):
            return None
        counts[tensor["dtype"]] = counts.get(tensor["dtype"], 0) + math.prod(tensor["shape"])
    return counts


def _is_tensor_entry(tensor: object) -> bool:
    """``{"dtype": str, "shape": [non-negative ints], …}`` as the format defines it."""
    if not isinstance(tensor, dict) or not isinstance(tensor.get("dtype"), str):
        return False
    shape = tensor.get("shape")
    return isinstance(shape, list) and all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
    )


def read_params(read_range: ReadRange) -> dict[str, int] | None:
    """Read a header through ``read_range`` and count its parameters by dtype."""
    length = header_length(read_range(0, 8))
    if length is None:
        return None
    return params_by_dtype(read_range(8, length))


def read_local_params(path: Path) -> dict[str, int] | None:
    """Parameter counts of a local safetensors file, reading its header only (None: unreadable)."""
    try:
        with path.open("rb") as handle:

            def read_range(offset: int, length: int) -> bytes:
                handle.seek(offset)
                return handle.read(length)

            return read_params(read_range)
    except OSError:
        return None
