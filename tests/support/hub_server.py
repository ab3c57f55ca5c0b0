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
import os
import re
import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from support.hub_files import HUB_TOKEN, INVALID_CREDENTIALS, LAST_MODIFIED, FileSpec, Placeholder
from support.hub_http import _Handler
from support.hub_repos import REPO_TYPES, RequestRecord, _HubError, _InjectedError, _Repo, _Snapshot

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
