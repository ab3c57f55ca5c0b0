"""A small Hugging Face Hub-compatible HTTP server for tests.

The Hub cannot be reached from the test machines, so tests point the *real* ``huggingface_hub`` client at
this server (``HF_ENDPOINT``; see :func:`patch_huggingface_hub` for the import-time copies). It speaks
the part of the Hub API the client uses to inspect and download model repos, and dataset repos the same
way (``add_dataset``; ``api/datasets/...`` and ``/datasets/{repo}/resolve/...``, which is all
``datasets.load_dataset`` asks of a repo of data files):

* ``GET /api/models/{repo}`` and ``/api/models/{repo}/revision/{rev}``   (``model_info``/``repo_info``;
  ``?blobs=true`` adds sizes and LFS info to ``siblings``, ``?expand=...`` keeps only those properties)
* ``GET /api/models/{repo}/tree/{rev}[/{path}]?recursive=&expand=&cursor=``   (``list_repo_tree``;
  paginated with a ``Link: <...>; rel="next"`` header like the Hub)
* ``POST /api/models/{repo}/paths-info/{rev}``   (``get_paths_info``; form or JSON body)
* ``GET /api/models/{repo}/refs``   (``list_repo_refs``)
* the same under ``/api/datasets/{repo}`` for dataset repos (``dataset_info``, ``HfFileSystem``)
* ``GET /api/whoami-v2``   (``whoami``)
* ``HEAD``/``GET /{repo}/resolve/{rev}/{path}``   (``hf_hub_download``, ``snapshot_download``,
  ``get_hf_file_metadata``, ``get_safetensors_metadata``) with ``X-Repo-Commit``, ``ETag``,
  ``X-Linked-Etag``/``X-Linked-Size`` (LFS files), ``Content-Length``, ``Accept-Ranges`` and ``Range``
  requests (``206`` + ``Content-Range``; ``bytes=a-b``, ``a-``, ``-n``; ``416`` when unsatisfiable);
  ``/datasets/{repo}/resolve/{rev}/{path}`` for dataset repos.

Errors carry ``X-Error-Code``/``X-Error-Message`` and a JSON body ``{"error": ...}`` exactly as the client's
``hf_raise_for_status`` expects them:

* unknown repo -> 404 ``RepoNotFound`` (``RepositoryNotFoundError``)
* private repo, no token -> 401 ``RepoNotFound``; valid token without access -> 404 ``RepoNotFound``
* gated repo files (``resolve`` only; info and listings stay public like on the Hub), no token -> 401
  ``GatedRepo``; valid token without access -> 403 ``GatedRepo`` (``GatedRepoError``)
* unknown revision -> 404 ``RevisionNotFound``; missing file/folder -> 404 ``EntryNotFound``
* a token that is not in ``server.tokens`` -> 401 "Invalid credentials in Authorization header" (no
  error code, like the Hub: the client raises a plain ``HfHubHTTPError`` with status 401)

Files are never all held in memory: placeholders (weights of the real repos) are generated on the fly,
``Path`` files are streamed from disk.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import os
import re
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

__all__ = [
    "GATED_REPO",
    "HUB_TOKEN",
    "PRIVATE_REPO",
    "REALCONFIGS_DIR",
    "HubServer",
    "Placeholder",
    "RequestRecord",
    "patch_datasets",
    "patch_huggingface_hub",
    "safetensors_header",
    "safetensors_placeholder",
]

# Names shared by the fixtures (tests/integration/conftest.py) and the tests.
# A trimmed copy of shared/realconfigs ships in tests/fixtures (tests/fixtures/trim_realconfigs.py),
# so a clone alone runs every test; LLM_INSTALLER_REALCONFIGS points at another copy.
REALCONFIGS_DIR = Path(
    os.environ.get(
        "LLM_INSTALLER_REALCONFIGS", Path(__file__).resolve().parent / "fixtures" / "realconfigs"
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


# --------------------------------------------------------------------------------------------------
# Repos
# --------------------------------------------------------------------------------------------------


@dataclass
class _Snapshot:
    sha: str
    files: dict[str, _File]
    dirs: set[str]

    @classmethod
    def build(cls, repo_id: str, sha: str, files: Mapping[str, FileSpec]) -> _Snapshot:
        built: dict[str, _File] = {}
        dirs: set[str] = set()
        for raw_path, spec in files.items():
            path = str(raw_path).strip("/")
            if not path or any(part in ("", ".", "..") for part in path.split("/")):
                raise ValueError(f"invalid repo path {raw_path!r}")
            built[path] = _make_file(repo_id, path, spec)
            parts = path.split("/")
            for i in range(1, len(parts)):
                dirs.add("/".join(parts[:i]))
        clash = dirs & built.keys()
        if clash:
            raise ValueError(f"paths are both files and folders: {sorted(clash)}")
        return cls(sha, dict(sorted(built.items())), dirs)

    def children(self, base: str, recursive: bool) -> list[dict[str, Any]]:
        prefix = f"{base}/" if base else ""

        def wanted(path: str) -> bool:
            return path.startswith(prefix) and (recursive or "/" not in path[len(prefix) :])

        entries = [self.dir_entry(d) for d in sorted(self.dirs) if wanted(d)]
        entries += [f.tree_entry() for p, f in self.files.items() if wanted(p)]
        return entries

    def dir_entry(self, path: str) -> dict[str, Any]:
        oid = hashlib.sha1(f"tree:{self.sha}:{path}".encode()).hexdigest()
        return {"type": "directory", "oid": oid, "size": 0, "path": path}

    def last_commit(self) -> dict[str, Any]:
        return {"id": self.sha, "title": "Upload folder", "date": LAST_MODIFIED}


# URL segment (api/models/..., api/datasets/...) -> huggingface_hub's repo_type
REPO_TYPES = {"models": "model", "datasets": "dataset"}


@dataclass
class _Repo:
    repo_id: str
    snapshots: dict[str, _Snapshot]  # sha -> snapshot
    branches: dict[str, str]  # name -> sha ("main" always)
    private: bool = False
    gated: bool | str = False
    access_tokens: set[str] | None = None  # None: every valid token has access
    tags: list[str] = field(default_factory=list)
    pipeline_tag: str | None = None
    library_name: str | None = None
    safetensors_params: dict[str, int] | None = None
    card_data: dict[str, Any] | None = None
    extra_info: dict[str, Any] = field(default_factory=dict)
    repo_type: str = "model"

    @property
    def main(self) -> _Snapshot:
        return self.snapshots[self.branches["main"]]

    def resolve(self, revision: str) -> _Snapshot | None:
        if revision.startswith("refs/heads/"):
            revision = revision[len("refs/heads/") :]
        if revision in self.branches:
            return self.snapshots[self.branches[revision]]
        return self.snapshots.get(revision.lower())


# --------------------------------------------------------------------------------------------------
# Errors / request log
# --------------------------------------------------------------------------------------------------


class _HubError(Exception):
    def __init__(
        self, status: int, message: str, code: str | None = None, commit: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.commit = commit


@dataclass
class RequestRecord:
    """One request seen by the server."""

    method: str
    path: str  # URL path, percent-decoded, without the query string
    query: str
    range: str | None  # the Range header as sent
    token: str | None  # bearer token as sent
    status: int = 0
    body_bytes: int = 0  # response body bytes actually written
    repo_id: str | None = None
    file: str | None = None  # repo path, for resolve requests
    repo_type: str | None = None  # "model" or "dataset", for repo requests


@dataclass
class _InjectedError:
    pattern: re.Pattern[str]
    status: int
    code: str | None
    message: str
    times: int | None


# --------------------------------------------------------------------------------------------------
# Server
# --------------------------------------------------------------------------------------------------


class HubServer:
    """A Hub-compatible server on ``127.0.0.1`` (random port unless given).

    Usage::

        server = HubServer()
        server.add_repo("org/model", {"config.json": b"{}", "model.safetensors": 5_000_000_000})
        server.add_dataset("org/set", {"data/train.jsonl": b'{"text": "hi"}\n'})
        server.start()
        ...   # HF_ENDPOINT=server.url
        server.stop()

    Attributes meant for tests:

    * ``repos``/``datasets``: the model/dataset repos, by id.
    * ``tokens``: the valid tokens (``Authorization: Bearer ...``); default ``{"hf_test_token"}``.
    * ``requests``: list of :class:`RequestRecord`, in arrival order.
    * ``bytes_served``: ``{(repo_id, path): body bytes written by /resolve}``; see also
      :meth:`bytes_for`, :meth:`total_bytes_served`, :meth:`reset_counters`.
    * ``tree_page_size``: entries per ``tree`` page (the Hub uses 1000, 50 with ``expand``).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.tokens: set[str] = {HUB_TOKEN}
        self.user = "test-user"
        self.tree_page_size = 1000
        self.bytes_per_second: int | None = None  # throttle file bodies (to interrupt downloads)
        self.repos: dict[str, _Repo] = {}
        self.datasets: dict[str, _Repo] = {}
        self.requests: list[RequestRecord] = []
        self.bytes_served: dict[tuple[str, str], int] = defaultdict(int)
        self._errors: list[_InjectedError] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle -------------------------------------------------------------------------------

    def start(self) -> HubServer:
        if self._httpd is not None:
            return self
        handler = type("_BoundHandler", (_Handler,), {"hub": self})
        self._httpd = ThreadingHTTPServer((self.host, self.port), handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="hubserver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("HubServer is not started")
        return f"http://{self.host}:{self.port}"

    # ---- content ---------------------------------------------------------------------------------

    def add_repo(
        self,
        repo_id: str,
        files: Mapping[str, FileSpec],
        *,
        private: bool = False,
        gated: bool | str = False,
        access_tokens: Iterable[str] | None = None,
        revision_sha: str | None = None,
        tags: Iterable[str] = (),
        pipeline_tag: str | None = None,
        library_name: str | None = None,
        safetensors_params: Mapping[str, int] | None = None,
        revisions: Mapping[str, Mapping[str, FileSpec]] | None = None,
        card_data: Mapping[str, Any] | None = None,
        repo_type: str = "model",
        **extra_info: Any,
    ) -> str:
        """Add (or replace) a model repo (a dataset repo with ``repo_type="dataset"``, see
        :meth:`add_dataset`); returns the commit sha of ``main``.

        ``files`` maps a repo path to its content: ``bytes``/``str`` (content), ``int`` (a zero-filled
        placeholder of that size), ``Path`` (streamed from disk) or :class:`Placeholder`.
        ``gated``: ``False``, ``True`` (= ``"auto"``), ``"auto"`` or ``"manual"``. ``access_tokens``: the
        tokens allowed into a private/gated repo (default: every token of ``self.tokens``).
        ``revisions``: other branches, name -> their own files (each gets its own commit sha).
        ``safetensors_params``: ``{"BF16": n, ...}``, reported by ``model_info`` as ``safetensors``.
        Extra keyword arguments are added as-is to the ``model_info`` JSON (e.g. ``downloads=10``).
        """
        if repo_id.count("/") > 1 or not repo_id.strip("/"):
            raise ValueError(f"invalid repo id {repo_id!r}")
        repos = self._repos_of(repo_type)
        sha = (revision_sha or hashlib.sha1(f"commit:{repo_id}:main".encode()).hexdigest()).lower()
        if not re.fullmatch(r"[0-9a-f]{40}", sha):
            raise ValueError(f"revision_sha must be 40 hex digits, got {revision_sha!r}")
        snapshots = {sha: _Snapshot.build(repo_id, sha, files)}
        branches = {"main": sha}
        for name, rev_files in (revisions or {}).items():
            rev_sha = hashlib.sha1(f"commit:{repo_id}:{name}".encode()).hexdigest()
            snapshots[rev_sha] = _Snapshot.build(repo_id, rev_sha, rev_files)
            branches[name] = rev_sha
        repo = _Repo(
            repo_id=repo_id,
            snapshots=snapshots,
            branches=branches,
            private=private,
            gated="auto" if gated is True else gated,
            access_tokens=set(access_tokens) if access_tokens is not None else None,
            tags=list(tags),
            pipeline_tag=pipeline_tag,
            library_name=library_name,
            safetensors_params=dict(safetensors_params) if safetensors_params else None,
            card_data=dict(card_data) if card_data else None,
            extra_info=extra_info,
            repo_type=repo_type,
        )
        with self._lock:
            repos[repo_id] = repo
        return sha

    def add_dataset(self, repo_id: str, files: Mapping[str, FileSpec], **kwargs: Any) -> str:
        """Add (or replace) a dataset repo, e.g. ``{"data/train.jsonl": ..., "data/test.jsonl": ...}``
        (``datasets.load_dataset`` takes the splits from the file names); options as :meth:`add_repo`.
        """
        return self.add_repo(repo_id, files, repo_type="dataset", **kwargs)

    def _repos_of(self, repo_type: str) -> dict[str, _Repo]:
        if repo_type not in REPO_TYPES.values():
            known = sorted(REPO_TYPES.values())
            raise ValueError(f"repo_type must be one of {known}, got {repo_type!r}")
        return self.datasets if repo_type == "dataset" else self.repos

    def add_folder(self, repo_id: str, folder: str | os.PathLike[str], **kwargs: Any) -> str:
        """Serve every file under ``folder`` (e.g. a ``save_pretrained`` output) as repo ``repo_id``."""
        root = Path(folder)
        files: dict[str, FileSpec] = {
            p.relative_to(root).as_posix(): p
            for p in sorted(root.rglob("*"))
            if p.is_file() and ".git" not in p.relative_to(root).parts
        }
        if not files:
            raise ValueError(f"{root} holds no files")
        return self.add_repo(repo_id, files, **kwargs)

    def add_realconfigs(
        self, directory: str | os.PathLike[str], *, hub_metadata: bool = True
    ) -> list[str]:
        """Serve each ``owner__name`` folder of ``directory`` (see tests/fixtures/realconfigs/README.md) as a repo.

        The repo id is ``meta.json``'s ``model_id`` (else the folder name with ``__`` -> ``/``). With a
        ``files.json``, the repo holds exactly the files it lists at their listed sizes: present files with
        their content, absent ones (weights) as placeholders; an unknown size (``null``, "blob absent from
        mirror") gives an empty placeholder. Without one, the repo holds the folder's files.
        ``meta.json``/``files.json`` are never served unless listed. With ``hub_metadata``, ``library_name``,
        ``pipeline_tag``, ``tags`` and ``cardData`` come from the README's YAML front matter like on the Hub
        (``library_name`` falling back to ``meta.json``'s expected library).
        Returns the repo ids added.
        """
        added = []
        for folder in sorted(Path(directory).iterdir()):
            if not folder.is_dir() or "__" not in folder.name:
                continue
            meta_path = folder / "meta.json"
            meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
            repo_id = meta.get("model_id") or folder.name.replace("__", "/", 1)
            listing_path = folder / "files.json"
            files: dict[str, FileSpec] = {}
            if listing_path.is_file():
                for entry in json.loads(listing_path.read_text()):
                    path = entry["path"]
                    on_disk = folder / path
                    size = entry.get("size")
                    lfs_info = entry.get("lfs")
                    if on_disk.is_file() and (size is None or on_disk.stat().st_size == size):
                        files[path] = on_disk
                    else:
                        files[path] = Placeholder(
                            size=size or 0,
                            sha256=(lfs_info or {}).get("sha256"),
                            lfs=lfs_info is not None or None,
                        )
            else:
                for p in sorted(folder.rglob("*")):
                    rel = p.relative_to(folder).as_posix()
                    if p.is_file() and rel not in ("meta.json", "files.json"):
                        files[rel] = p
            kwargs: dict[str, Any] = {}
            if hub_metadata:
                kwargs = _card_metadata(folder / "README.md")
                kwargs.setdefault("library_name", (meta.get("expected") or {}).get("library"))
            self.add_repo(repo_id, files, **kwargs)
            # LFS flags listed by files.json are the truth, whatever the suffix rule says.
            if listing_path.is_file():
                for entry in json.loads(listing_path.read_text()):
                    self.repos[repo_id].main.files[entry["path"]].lfs = "lfs" in entry
            added.append(repo_id)
        return added

    def remove_repo(self, repo_id: str, repo_type: str = "model") -> None:
        with self._lock:
            self._repos_of(repo_type).pop(repo_id, None)

    def file_size(
        self, repo_id: str, path: str, revision: str = "main", repo_type: str = "model"
    ) -> int:
        snapshot = self._repos_of(repo_type)[repo_id].resolve(revision)
        assert snapshot is not None
        return snapshot.files[path].size

    # ---- fault injection -------------------------------------------------------------------------

    def inject_error(
        self,
        path_regex: str,
        status: int = 500,
        *,
        code: str | None = None,
        message: str = "Injected error",
        times: int | None = 1,
    ) -> None:
        """Answer requests whose URL path matches ``path_regex`` with an error (``times=None``: always)."""
        with self._lock:
            self._errors.append(
                _InjectedError(re.compile(path_regex), status, code, message, times)
            )

    def clear_errors(self) -> None:
        with self._lock:
            self._errors.clear()

    def _take_injected(self, path: str) -> _InjectedError | None:
        with self._lock:
            for err in self._errors:
                if err.pattern.search(path):
                    if err.times is not None:
                        err.times -= 1
                        if err.times <= 0:
                            self._errors.remove(err)
                    return err
        return None

    # ---- counters --------------------------------------------------------------------------------

    def reset_counters(self) -> None:
        with self._lock:
            self.requests.clear()
            self.bytes_served.clear()

    def total_bytes_served(self, repo_id: str | None = None) -> int:
        with self._lock:
            return sum(
                n
                for (repo, _), n in self.bytes_served.items()
                if repo_id is None or repo == repo_id
            )

    def bytes_for(self, repo_id: str, path: str) -> int:
        with self._lock:
            return self.bytes_served.get((repo_id, path), 0)

    def requests_for(
        self,
        repo_id: str | None = None,
        *,
        method: str | None = None,
        file: str | None = None,
        repo_type: str | None = None,
    ) -> list[RequestRecord]:
        with self._lock:
            return [
                r
                for r in self.requests
                if (repo_id is None or r.repo_id == repo_id)
                and (method is None or r.method == method)
                and (file is None or r.file == file)
                and (repo_type is None or r.repo_type == repo_type)
            ]

    def _count(self, record: RequestRecord, nbytes: int) -> None:
        with self._lock:
            record.body_bytes += nbytes
            if record.repo_id is not None and record.file is not None:
                self.bytes_served[(record.repo_id, record.file)] += nbytes

    # ---- access control --------------------------------------------------------------------------

    def _check_token(self, token: str | None) -> None:
        if token is not None and token not in self.tokens:
            raise _HubError(401, INVALID_CREDENTIALS)

    def _has_access(self, repo: _Repo, token: str | None) -> bool:
        if token is None:
            return False
        return token in (repo.access_tokens if repo.access_tokens is not None else self.tokens)

    def _get_repo(self, repo_id: str, token: str | None, repo_type: str = "model") -> _Repo:
        repo = self._repos_of(repo_type).get(repo_id)
        if repo is None:
            raise _HubError(404 if token else 401, "Repository not found", "RepoNotFound")
        if repo.private and not self._has_access(repo, token):
            raise _HubError(404 if token else 401, "Repository not found", "RepoNotFound")
        return repo

    @staticmethod
    def _get_snapshot(repo: _Repo, revision: str) -> _Snapshot:
        snapshot = repo.resolve(revision)
        if snapshot is None:
            raise _HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return snapshot

    def _check_gate(self, repo: _Repo, token: str | None) -> None:
        if repo.gated and not self._has_access(repo, token):
            if token is None:
                msg = (
                    f"Access to {repo.repo_type} {repo.repo_id} is restricted. You must have access to "
                    "it and be authenticated to access it. Please log in."
                )
                raise _HubError(401, msg, "GatedRepo")
            msg = (
                f"Access to {repo.repo_type} {repo.repo_id} is restricted and you are not in the "
                "authorized list."
            )
            raise _HubError(403, msg, "GatedRepo")

    # ---- JSON views ------------------------------------------------------------------------------

    def _repo_info(
        self, repo: _Repo, snapshot: _Snapshot, blobs: bool, expand: list[str]
    ) -> dict[str, Any]:
        """The ``model_info``/``dataset_info`` JSON: the fields both share, then the model-only ones."""
        info: dict[str, Any] = {
            "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "author": repo.repo_id.split("/")[0] if "/" in repo.repo_id else None,
            "sha": snapshot.sha,
            "lastModified": LAST_MODIFIED,
            "createdAt": LAST_MODIFIED,
            "private": repo.private,
            "gated": repo.gated,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": list(repo.tags),
            "siblings": [f.sibling(blobs) for f in snapshot.files.values()],
            "usedStorage": sum(f.size for f in snapshot.files.values()),
        }
        if repo.card_data is not None:
            info["cardData"] = repo.card_data
        if repo.repo_type == "model":
            info.update(_model_fields(repo, snapshot))
        info.update(repo.extra_info)
        if expand:
            keep = set(expand) | {"_id", "id"}
            info = {k: v for k, v in info.items() if k in keep}
        return info


def _model_fields(repo: _Repo, snapshot: _Snapshot) -> dict[str, Any]:
    """What ``model_info`` has beyond ``dataset_info``: library, pipeline, parameters, config."""
    fields: dict[str, Any] = {"modelId": repo.repo_id, "spaces": []}
    for key, value in (("library_name", repo.library_name), ("pipeline_tag", repo.pipeline_tag)):
        if value is not None:
            fields[key] = value
    if repo.safetensors_params:
        fields["safetensors"] = {
            "parameters": dict(repo.safetensors_params),
            "total": sum(repo.safetensors_params.values()),
        }
    config = snapshot.files.get("config.json")
    if config is not None and config.size < 1_000_000:
        try:
            cfg = json.loads(b"".join(config.chunks(0, config.size)))
            fields["config"] = {k: cfg[k] for k in ("architectures", "model_type") if k in cfg}
        except (
            ValueError,
            RecursionError,
            TypeError,
        ):  # like the Hub: no summary of a broken config
            pass
    return fields


def _card_metadata(readme: Path) -> dict[str, Any]:
    """``library_name``/``pipeline_tag``/``tags``/``card_data`` from a README's YAML front matter."""
    if not readme.is_file():
        return {}
    text = readme.read_text(errors="replace")
    match = re.match(r"\A---\s*\n(.*?)\n---\s*(\n|\Z)", text, re.S)
    if not match:
        return {}
    try:
        import yaml

        card = yaml.safe_load(match.group(1))
    except Exception:  # noqa: BLE001 - a broken card is simply no card, like on the Hub
        return {}
    if not isinstance(card, dict):
        return {}
    out: dict[str, Any] = {"card_data": card}
    tags = card.get("tags") or []
    tags = [tags] if isinstance(tags, str) else [str(t) for t in tags]
    for key in ("library_name", "pipeline_tag"):
        if isinstance(card.get(key), str):
            out[key] = card[key]
    if out.get("library_name") and out["library_name"] not in tags:
        tags.insert(0, out["library_name"])
    licence = card.get("license")
    if isinstance(licence, str):
        tags.append(f"license:{licence}")
    out["tags"] = tags
    return out


# --------------------------------------------------------------------------------------------------
# HTTP handler
# --------------------------------------------------------------------------------------------------

_RANGE_RE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$")


def _parse_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """``(start, end_exclusive)`` for a single satisfiable range, ``None`` to serve everything,
    ``"unsatisfiable"`` for a 416."""
    if not header:
        return None
    m = _RANGE_RE.match(header)
    if not m:
        return None  # multi-range or garbage: ignoring Range is allowed (RFC 9110)
    first, last = m.group(1), m.group(2)
    if first == "" and last == "":
        return None
    if first == "":
        n = int(last)
        if n == 0:
            return "unsatisfiable"
        return (max(0, size - n), size)
    start = int(first)
    end = size if last == "" else min(int(last) + 1, size)
    if last != "" and int(last) < start:
        return None
    if start >= size:
        return "unsatisfiable"
    return (start, end)


def _split_repo(segments: list[str], known: Mapping[str, Any]) -> tuple[str, list[str]]:
    """Split ``owner/name/rest...`` (or ``name/rest...`` for canonical one-part ids) into id and rest."""
    if len(segments) >= 2 and f"{segments[0]}/{segments[1]}" in known:
        return f"{segments[0]}/{segments[1]}", segments[2:]
    if segments and segments[0] in known:
        return segments[0], segments[1:]
    if len(segments) >= 2:
        return f"{segments[0]}/{segments[1]}", segments[2:]
    return segments[0] if segments else "", []


class _Handler(BaseHTTPRequestHandler):
    hub: HubServer
    protocol_version = "HTTP/1.1"
    server_version = "hubserver/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence stderr logging
        pass

    # -- plumbing ---------------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _token(self) -> str | None:
        auth = self.headers.get("Authorization")
        if not auth:
            return None
        scheme, _, value = auth.partition(" ")
        return value.strip() if scheme.lower() == "bearer" and value.strip() else auth.strip()

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        raw_segments = [s for s in split.path.split("/") if s]
        segments = [unquote(s) for s in raw_segments]
        self._record = RequestRecord(
            method=method,
            path=unquote(split.path),
            query=split.query,
            range=self.headers.get("Range"),
            token=self._token(),
        )
        with self.hub._lock:
            self.hub.requests.append(self._record)
        self._query = parse_qs(split.query, keep_blank_values=True)
        self._body = b""
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self._body = self.rfile.read(length)
        try:
            injected = self.hub._take_injected(self._record.path)
            if injected is not None:
                raise _HubError(injected.status, injected.message, injected.code)
            self.hub._check_token(self._record.token)
            self._route(method, segments)
        except _HubError as err:
            self._send_error(err, method)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # noqa: BLE001 - report server bugs as 500s, not hangs
            if self._record.status:  # headers already sent: all we can do is drop the connection
                self.close_connection = True
                return
            self._send_error(_HubError(500, f"hubserver internal error: {exc!r}"), method)

    def _route(self, method: str, segments: list[str]) -> None:
        if segments[:2] == ["api", "whoami-v2"] and method == "GET":
            return self._whoami()
        if segments[:1] == ["api"] and len(segments) >= 3 and segments[1] in REPO_TYPES:
            repo_type = REPO_TYPES[segments[1]]
            repo_id, rest = _split_repo(segments[2:], self.hub._repos_of(repo_type))
            self._record.repo_id, self._record.repo_type = repo_id, repo_type
            if method == "GET" and not rest:
                return self._api_info(repo_id, "main")
            if method == "GET" and len(rest) == 2 and rest[0] == "revision":
                return self._api_info(repo_id, rest[1])
            if method == "GET" and len(rest) >= 2 and rest[0] == "tree":
                return self._api_tree(repo_id, rest[1], "/".join(rest[2:]))
            if method == "POST" and len(rest) == 2 and rest[0] == "paths-info":
                return self._api_paths_info(repo_id, rest[1])
            if method == "GET" and rest == ["refs"]:
                return self._api_refs(repo_id)
        elif method in ("GET", "HEAD") and segments and segments[0] != "api":
            # Dataset files live under /datasets/{repo}/resolve/..., model files under /{repo}/resolve/...
            dataset = segments[0] == "datasets" and len(segments) > 1
            repo_type = "dataset" if dataset else "model"
            repo_path = segments[1:] if dataset else segments
            repo_id, rest = _split_repo(repo_path, self.hub._repos_of(repo_type))
            if len(rest) >= 3 and rest[0] == "resolve":
                self._record.repo_id, self._record.repo_type = repo_id, repo_type
                return self._resolve(method, repo_id, rest[1], "/".join(rest[2:]))
        raise _HubError(404, f"Not found: {method} {self._record.path}")

    def _repo(self, repo_id: str) -> _Repo:
        """The repo the request names (its type noted by the router), or the Hub's error for it."""
        return self.hub._get_repo(repo_id, self._record.token, self._record.repo_type or "model")

    def _send_json(
        self, data: Any, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> None:
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self._record.status = status  # before the client can see the reply
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
            self._record.body_bytes = len(body)

    def _send_error(self, err: _HubError, method: str) -> None:
        body = json.dumps({"error": err.message}).encode()
        self.send_response(err.status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Error-Message", err.message)
        if err.code:
            self.send_header("X-Error-Code", err.code)
        if err.commit:
            self.send_header("X-Repo-Commit", err.commit)
        self._record.status = err.status
        self.end_headers()
        if method != "HEAD":
            try:
                self.wfile.write(body)
                self._record.body_bytes = len(body)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

    def _flag(self, name: str, default: bool = False) -> bool:
        values = self._query.get(name)
        if not values:
            return default
        return values[-1].lower() in ("1", "true", "yes", "")

    # -- endpoints --------------------------------------------------------------------------------

    def _whoami(self) -> None:
        token = self._record.token
        if token is None:
            raise _HubError(401, INVALID_CREDENTIALS)
        self._send_json(
            {
                "type": "user",
                "id": "0" * 24,
                "name": self.hub.user,
                "fullname": "Test User",
                "orgs": [],
                "auth": {
                    "type": "access_token",
                    "accessToken": {"displayName": "test", "role": "read"},
                },
            }
        )

    def _api_info(self, repo_id: str, revision: str) -> None:
        repo = self._repo(repo_id)
        snapshot = self.hub._get_snapshot(repo, revision)
        expand = [v for key in ("expand", "expand[]") for v in self._query.get(key, [])]
        self._send_json(self.hub._repo_info(repo, snapshot, self._flag("blobs"), expand))

    def _api_tree(self, repo_id: str, revision: str, path: str) -> None:
        repo = self._repo(repo_id)
        snapshot = self.hub._get_snapshot(repo, revision)
        path = path.strip("/")
        if path and path not in snapshot.dirs:
            raise _HubError(404, f"Entry not found: {path}", "EntryNotFound", commit=snapshot.sha)
        expand = self._flag("expand")
        entries = snapshot.children(path, self._flag("recursive"))
        if expand:
            for entry in entries:
                entry["lastCommit"] = snapshot.last_commit()
        page_size = max(1, 50 if expand else self.hub.tree_page_size)
        try:
            cursor = int((self._query.get("cursor") or ["0"])[-1])
        except ValueError:
            raise _HubError(400, "Invalid cursor") from None
        page = entries[cursor : cursor + page_size]
        headers = {}
        if cursor + page_size < len(entries):
            query = {k: v[-1] for k, v in self._query.items() if k != "cursor"}
            query["cursor"] = str(cursor + page_size)
            qs = "&".join(f"{quote(k)}={quote(v)}" for k, v in query.items())
            base = self.path.split("?", 1)[0]
            headers["Link"] = f'<{self.hub.url}{base}?{qs}>; rel="next"'
        self._send_json(page, headers=headers)

    def _api_paths_info(self, repo_id: str, revision: str) -> None:
        repo = self._repo(repo_id)
        snapshot = self.hub._get_snapshot(repo, revision)
        ctype = (self.headers.get("Content-Type") or "").lower()
        if "json" in ctype:
            payload = json.loads(self._body or b"{}")
            paths = payload.get("paths", [])
            paths = [paths] if isinstance(paths, str) else paths
            expand = bool(payload.get("expand"))
        else:
            form = parse_qs(self._body.decode(), keep_blank_values=True)
            paths = form.get("paths", [])
            expand = (form.get("expand") or ["false"])[-1].lower() in ("1", "true")
        out = []
        for p in paths:
            p = p.strip("/")
            if p in snapshot.files:
                entry = snapshot.files[p].tree_entry()
            elif p in snapshot.dirs:
                entry = snapshot.dir_entry(p)
            else:
                continue  # the Hub silently leaves out unknown paths
            if expand:
                entry["lastCommit"] = snapshot.last_commit()
            out.append(entry)
        self._send_json(out)

    def _api_refs(self, repo_id: str) -> None:
        repo = self._repo(repo_id)
        branches = [
            {"name": name, "ref": f"refs/heads/{name}", "targetCommit": sha}
            for name, sha in repo.branches.items()
        ]
        data: dict[str, Any] = {"branches": branches, "converts": [], "tags": []}
        if self._flag("include_prs"):
            data["pullRequests"] = []
        self._send_json(data)

    def _resolve(self, method: str, repo_id: str, revision: str, path: str) -> None:
        token = self._record.token
        repo = self._repo(repo_id)
        self.hub._check_gate(repo, token)
        snapshot = self.hub._get_snapshot(repo, revision)
        f = snapshot.files.get(path)
        if f is None:
            raise _HubError(404, "Entry not found", "EntryNotFound", commit=snapshot.sha)
        self._record.file = path
        rng = _parse_range(self.headers.get("Range"), f.size)
        if rng == "unsatisfiable":
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{f.size}")
            self.send_header("Content-Length", "0")
            self.send_header("X-Repo-Commit", snapshot.sha)
            self._record.status = 416
            self.end_headers()
            return
        start, end = rng if isinstance(rng, tuple) else (0, f.size)
        status = 206 if isinstance(rng, tuple) else 200
        self.send_response(status)
        ctype = mimetypes.guess_type(path)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype == "application/json":
            ctype += "; charset=utf-8"
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(end - start))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("X-Repo-Commit", snapshot.sha)
        self.send_header("Content-Disposition", f'inline; filename="{path.rsplit("/", 1)[-1]}"')
        if f.lfs:
            self.send_header("ETag", f'"{f.sha256}"')
            self.send_header("X-Linked-Etag", f'"{f.sha256}"')
            self.send_header("X-Linked-Size", str(f.size))
        else:
            self.send_header("ETag", f'"{f.oid}"')
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{f.size}")
        self._record.status = status
        self.end_headers()
        if method == "HEAD":
            return
        for chunk in f.chunks(start, end):
            self.wfile.write(chunk)
            self.hub._count(self._record, len(chunk))
            if self.hub.bytes_per_second:
                time.sleep(len(chunk) / self.hub.bytes_per_second)


# --------------------------------------------------------------------------------------------------
# huggingface_hub wiring
# --------------------------------------------------------------------------------------------------


def patch_huggingface_hub(monkeypatch: Any, endpoint: str, hf_home: str | os.PathLike[str]) -> None:
    """Point an already-imported ``huggingface_hub`` at ``endpoint`` with its cache in ``hf_home``.

    ``huggingface_hub`` reads ``HF_ENDPOINT``, ``HF_HOME``, ``HF_HUB_OFFLINE``... once, at import time, into
    ``huggingface_hub.constants`` (and derived values such as ``HUGGINGFACE_CO_URL_TEMPLATE``, the cache
    paths, the token path, the module-level ``HfApi`` behind ``huggingface_hub.model_info``); a few modules
    copy some of them with ``from ..constants import X``. Setting the environment variables alone therefore
    only works for child processes, so this also ``monkeypatch.setattr``-s those copies (undone at the end
    of the test). Any module attribute named ``ENDPOINT``/``HF_ENDPOINT``/``HUGGINGFACE_CO_RESOLVE_ENDPOINT``
    that still holds the old endpoint (e.g. in the project's own modules) is patched as well.
    """
    from huggingface_hub import constants

    endpoint = endpoint.rstrip("/")
    home = str(hf_home)
    hub_cache = os.path.join(home, "hub")
    old_endpoint = constants.ENDPOINT
    values: dict[str, Any] = {
        "ENDPOINT": endpoint,
        "HUGGINGFACE_CO_URL_TEMPLATE": endpoint + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_HOME": home,
        "HF_HUB_CACHE": hub_cache,
        "HUGGINGFACE_HUB_CACHE": hub_cache,
        "HF_ASSETS_CACHE": os.path.join(home, "assets"),
        "HUGGINGFACE_ASSETS_CACHE": os.path.join(home, "assets"),
        "HF_XET_CACHE": os.path.join(home, "xet"),
        "HF_TOKEN_PATH": os.path.join(home, "token"),
        "HF_STORED_TOKENS_PATH": os.path.join(home, "stored_tokens"),
        "HF_HUB_OFFLINE": False,
        "HF_HUB_DISABLE_TELEMETRY": True,
    }
    host = urlsplit(endpoint).hostname
    if hasattr(constants, "HF_URL_HOSTS") and host:
        values["HF_URL_HOSTS"] = frozenset(constants.HF_URL_HOSTS | {host})
    _setattrs(monkeypatch, constants, values)

    import huggingface_hub.utils._http as http_mod

    if hasattr(http_mod, "_HUB_ORIGINS") and hasattr(http_mod, "_url_origin"):
        origins = frozenset(http_mod._HUB_ORIGINS | {http_mod._url_origin(endpoint)})
        monkeypatch.setattr(http_mod, "_HUB_ORIGINS", origins)
    hf_api = sys.modules.get("huggingface_hub.hf_api")
    if hf_api is not None and hasattr(hf_api, "api"):
        monkeypatch.setattr(hf_api.api, "endpoint", endpoint)
    for module_name, attrs in {
        "huggingface_hub.utils._cache_manager": {"HF_HUB_CACHE": hub_cache},
        "huggingface_hub.utils._git_credential": {"ENDPOINT": endpoint},
    }.items():
        if module_name in sys.modules:
            _setattrs(monkeypatch, sys.modules[module_name], attrs)

    # Any other import-time copy of the endpoint, e.g. `from huggingface_hub.constants import ENDPOINT`.
    names = ("ENDPOINT", "HF_ENDPOINT", "HUGGINGFACE_CO_RESOLVE_ENDPOINT")
    for module in list(sys.modules.values()):
        namespace = getattr(module, "__dict__", None)
        if module is constants or not isinstance(namespace, dict):
            continue
        for attr in names:
            if namespace.get(attr) == old_endpoint:
                monkeypatch.setattr(module, attr, endpoint)


def patch_datasets(monkeypatch: Any, endpoint: str, hf_home: str | os.PathLike[str]) -> None:
    """Point ``datasets`` at ``endpoint``, online, its cache in ``hf_home/datasets`` (with
    :func:`patch_huggingface_hub`, which it leans on for the Hub client itself).

    Like ``huggingface_hub``, ``datasets.config`` copies ``HF_ENDPOINT``, the cache paths and the offline
    switch when first imported, which may have happened earlier in the session with ``HF_HUB_OFFLINE=1``;
    importing it here, before patching, also keeps the session's ``datasets`` from being left pointed at
    this test's server and cache once ``monkeypatch`` undoes the rest.
    """
    from datasets import config
    from huggingface_hub import HfFileSystem

    endpoint = endpoint.rstrip("/")
    cache = Path(hf_home) / "datasets"
    downloads = cache / config.DOWNLOADED_DATASETS_DIR
    _setattrs(
        monkeypatch,
        config,
        {
            "HF_ENDPOINT": endpoint,
            "HUB_DATASETS_URL": endpoint + "/datasets/{repo_id}/resolve/{revision}/{path}",
            "HF_CACHE_HOME": str(hf_home),
            "HF_DATASETS_CACHE": cache,
            "HF_MODULES_CACHE": Path(hf_home) / "modules",
            "DOWNLOADED_DATASETS_PATH": downloads,
            "EXTRACTED_DATASETS_PATH": downloads / config.EXTRACTED_DATASETS_DIR,
            "HF_HUB_OFFLINE": False,
            "HF_DATASETS_OFFLINE": False,
        },
    )
    HfFileSystem.clear_instance_cache()  # a cached filesystem keeps listings of an earlier test


def _setattrs(monkeypatch: Any, target: Any, values: Mapping[str, Any]) -> None:
    for name, value in values.items():
        if hasattr(target, name):
            monkeypatch.setattr(target, name, value)
