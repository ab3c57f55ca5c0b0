"""The test Hub's repos and snapshots (revisions), its errors and its request log."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from support.hub_files import LAST_MODIFIED, FileSpec, _File, _make_file

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
