"""The test Hub's HTTP handler: routes, the Hub's error headers, Range requests on /resolve."""

from __future__ import annotations

import json
import mimetypes
import re
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from support.hub_files import INVALID_CREDENTIALS
from support.hub_repos import REPO_TYPES, RequestRecord, _HubError, _Repo

if TYPE_CHECKING:
    from support.hub_server import HubServer


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
