"""The test Hub's shared names (tokens, repos, REALCONFIGS_DIR) and its files: bytes, paths on disk,
and placeholders generated on the fly (safetensors headers with zero-filled data)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Names shared by the fixtures (tests/integration/conftest.py) and the tests.
# A trimmed copy of shared/realconfigs ships in tests/fixtures (tests/fixtures/trim_realconfigs.py),
# so a clone alone runs every test; LLM_INSTALLER_REALCONFIGS points at another copy.
REALCONFIGS_DIR = Path(
    os.environ.get(
        "LLM_INSTALLER_REALCONFIGS",
        Path(__file__).resolve().parent.parent / "fixtures" / "realconfigs",
    )
)
HUB_TOKEN = "hf_test_token"
PRIVATE_REPO = "test-org/private-model"
GATED_REPO = "test-org/gated-model"

CHUNK = 1 << 20
_ZEROS = bytes(CHUNK)
LFS_SIZE_THRESHOLD = 10 * 1000 * 1000  # the Hub refuses non-LFS files above 10 MB
# Extensions tracked by Git LFS in the default .gitattributes of a Hub repo.
LFS_SUFFIXES = (
    ".7z", ".arrow", ".bin", ".bz2", ".ckpt", ".ftz", ".gguf", ".gz", ".h5", ".joblib", ".mlmodel", ".model",
    ".msgpack", ".npy", ".npz", ".onnx", ".ot", ".parquet", ".pb", ".pickle", ".pkl", ".pt", ".pth", ".rar",
    ".safetensors", ".tar", ".tflite", ".tgz", ".wasm", ".xz", ".zip", ".zst",
)  # fmt: skip
LAST_MODIFIED = "2024-01-01T00:00:00.000Z"
INVALID_CREDENTIALS = "Invalid credentials in Authorization header"
_SAFETENSORS_DTYPE_SIZES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "E4M3": 1, "E5M2": 1, "U16": 2, "I16": 2,
    "F16": 2, "BF16": 2, "U32": 4, "I32": 4, "F32": 4, "U64": 8, "I64": 8, "F64": 8,
}  # fmt: skip


# --------------------------------------------------------------------------------------------------
# File specs
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Placeholder:
    """A file of ``size`` bytes generated on the fly: ``prefix`` then zeros.

    ``sha256``/``lfs`` override what the server would otherwise derive (LFS: from the suffix and size;
    sha256 of an LFS placeholder: a stable fake derived from repo, path and size, since hashing gigabytes
    of zeros would be slow and nothing checks it).
    """

    size: int
    prefix: bytes = b""
    sha256: str | None = None
    lfs: bool | None = None

    def __post_init__(self) -> None:
        if self.size < len(self.prefix):
            raise ValueError(
                f"placeholder of {self.size} bytes cannot hold a {len(self.prefix)}-byte prefix"
            )


FileSpec = bytes | str | int | Path | Placeholder


def safetensors_header(
    tensors: Mapping[str, tuple[str, Iterable[int]]], metadata: Mapping[str, str] | None = None
) -> tuple[bytes, int]:
    """Header bytes (8-byte length + JSON, space padded to 8) of a safetensors file and the data size.

    ``tensors`` maps a name to ``(dtype, shape)``, e.g. ``{"w": ("BF16", (4096, 4096))}``.
    """
    header: dict[str, Any] = {}
    if metadata is not None:
        header["__metadata__"] = dict(metadata)
    offset = 0
    for name, (dtype, shape) in tensors.items():
        n = 1
        shape = list(shape)
        for dim in shape:
            n *= dim
        nbytes = n * _SAFETENSORS_DTYPE_SIZES[dtype]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return len(raw).to_bytes(8, "little") + raw, offset


def safetensors_placeholder(
    tensors: Mapping[str, tuple[str, Iterable[int]]], metadata: Mapping[str, str] | None = None
) -> Placeholder:
    """A placeholder that is a structurally valid safetensors file: a real header, zero-filled data.

    Lets tests serve a "70B" shard whose header the client can parse with a Range request, without any
    weight bytes existing anywhere.
    """
    head, data_size = safetensors_header(tensors, metadata)
    return Placeholder(size=len(head) + data_size, prefix=head, lfs=True)


@dataclass
class _File:
    path: str
    size: int
    lfs: bool
    content: bytes | None = None
    disk: Path | None = None
    prefix: bytes = b""
    sha256_value: str | None = None
    fake_id: str = ""
    _oid: str | None = None

    def chunks(self, start: int, end: int) -> Iterator[bytes]:
        """Bytes ``[start, end)`` in chunks of at most 1 MiB."""
        if self.content is not None:
            for pos in range(start, end, CHUNK):
                yield self.content[pos : min(end, pos + CHUNK)]
        elif self.disk is not None:
            with open(self.disk, "rb") as fh:
                fh.seek(start)
                remaining = end - start
                while remaining > 0:
                    data = fh.read(min(CHUNK, remaining))
                    if not data:
                        raise OSError(f"{self.disk} shrank while being served")
                    remaining -= len(data)
                    yield data
        else:
            pos = start
            if pos < len(self.prefix):
                data = self.prefix[pos:end]
                pos += len(data)
                yield data
            while pos < end:
                n = min(CHUNK, end - pos)
                pos += n
                yield _ZEROS[:n]

    @property
    def sha256(self) -> str:
        if self.sha256_value is None:
            if self.content is None and self.disk is None:
                self.sha256_value = hashlib.sha256(
                    f"placeholder:{self.fake_id}".encode()
                ).hexdigest()
            else:
                h = hashlib.sha256()
                for chunk in self.chunks(0, self.size):
                    h.update(chunk)
                self.sha256_value = h.hexdigest()
        return self.sha256_value

    @property
    def pointer(self) -> bytes:
        return f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\nsize {self.size}\n".encode()

    @property
    def oid(self) -> str:
        """Git blob id: of the LFS pointer for LFS files, of the content otherwise."""
        if self._oid is None:
            h = hashlib.sha1()
            if self.lfs:
                pointer = self.pointer
                h.update(b"blob %d\0" % len(pointer))
                h.update(pointer)
            else:
                h.update(b"blob %d\0" % self.size)
                for chunk in self.chunks(0, self.size):
                    h.update(chunk)
            self._oid = h.hexdigest()
        return self._oid

    def tree_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "type": "file",
            "oid": self.oid,
            "size": self.size,
            "path": self.path,
        }
        if self.lfs:
            entry["lfs"] = {"oid": self.sha256, "size": self.size, "pointerSize": len(self.pointer)}
        return entry

    def sibling(self, blobs: bool) -> dict[str, Any]:
        entry: dict[str, Any] = {"rfilename": self.path}
        if blobs:
            entry["size"] = self.size
            entry["blobId"] = self.oid
            if self.lfs:
                entry["lfs"] = {
                    "sha256": self.sha256,
                    "size": self.size,
                    "pointerSize": len(self.pointer),
                }
        return entry


def _is_lfs_path(path: str, size: int) -> bool:
    return path.lower().endswith(LFS_SUFFIXES) or size > LFS_SIZE_THRESHOLD


def _make_file(repo_id: str, path: str, spec: FileSpec) -> _File:
    fake_id = f"{repo_id}/{path}"
    if isinstance(spec, str):
        spec = spec.encode()
    if isinstance(spec, bool):  # bool is an int: refuse the obvious mistake
        raise TypeError(f"{path}: a file spec cannot be a bool")
    if isinstance(spec, bytes | bytearray | memoryview):
        data = bytes(spec)
        return _File(path, len(data), _is_lfs_path(path, len(data)), content=data, fake_id=fake_id)
    if isinstance(spec, int):
        spec = Placeholder(spec)
    if isinstance(spec, Placeholder):
        lfs = spec.lfs if spec.lfs is not None else _is_lfs_path(path, spec.size)
        return _File(
            path, spec.size, lfs, prefix=spec.prefix, sha256_value=spec.sha256, fake_id=fake_id
        )
    if isinstance(spec, os.PathLike):
        disk = Path(spec)
        size = disk.stat().st_size
        return _File(path, size, _is_lfs_path(path, size), disk=disk, fake_id=fake_id)
    raise TypeError(f"{path}: unsupported file spec {type(spec).__name__}")
