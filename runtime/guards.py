"""Checks in front of every route: Host and Origin allow-lists, body size, content type, JSON.

A pure ASGI middleware (it sees WebSockets too): a request that fails a check is answered here
with the runtime's error shape and never reaches a route. JSON bodies are parsed once here, off
the event loop when large, so nesting too deep for Python or text that is not Unicode (a lone
surrogate) is a 400 rather than an exception deep in a route or a tokenizer.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.responses import JSONResponse

from llm_runtime.errors import TOO_DEEP, error_body
from llm_runtime.host_policy import HostPolicy
from llm_runtime.values import ServeConfig

# Routes whose body may be an upload (multipart/form-data) rather than JSON.
UPLOAD_PATHS = frozenset(
    {"/generate", "/v1/chat/completions", "/v1/audio/transcriptions", "/v1/images/generations"}
)
PARSE_OFF_LOOP_BYTES = 64 * 1024
# Traces of a UTF-16 surrogate: a JSON \\uD800-style escape or the UTF-8 lead byte 0xED.
SURROGATE_MARKS = (b"\\ud", b"\\uD", b"\xed")
MIN_SUSPICIOUS_DEPTH = 500  # fewer brackets than this cannot nest deep enough to matter


class RequestGuard:
    """ASGI middleware applying HostPolicy, the body limit and the JSON checks."""

    def __init__(self, app, config: ServeConfig) -> None:
        self.app, self.limit = app, config.max_body_bytes
        self.policy = HostPolicy(config.host, config.allowed_hosts, config.cors_origins)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            await _refuse(scope, receive, send, *refusal)
            return
        if scope["type"] == "http" and _has_body(scope, headers):
            body_receive = await self._checked_body(scope, receive, send, headers)
            if body_receive is None:
                return
            receive = body_receive
        await self.app(scope, receive, send)

    def _refusal(self, scope, headers: dict[str, str]) -> tuple[int, str, str] | None:
        refusal = self.policy.refusal(
            headers.get("host"),
            headers.get("origin"),
            hosts_hint="start it with --allowed-hosts {name}",
            origins_hint="start the server with --cors-origins ORIGIN",
        )
        if refusal is not None:
            return refusal
        if scope["type"] == "http":
            return self._content_type_refusal(scope, headers)
        return None

    def _content_type_refusal(self, scope, headers: dict[str, str]) -> tuple | None:
        if not _has_body(scope, headers):
            return None
        media = headers.get("content-type", "").split(";")[0].strip().lower()
        if _is_json(media) or (media == "multipart/form-data" and scope["path"] in UPLOAD_PATHS):
            return None
        uploads = " (or multipart/form-data for an upload)" if scope["path"] in UPLOAD_PATHS else ""
        return (
            415,
            "unsupported_media_type",
            (
                f"Content-Type {media or '(none)'!r} is not accepted on {scope['path']}: send the "
                f"body as JSON with 'Content-Type: application/json'{uploads}."
            ),
        )

    async def _checked_body(self, scope, receive, send, headers: dict[str, str]):
        """The receive callable replaying the checked body, or None when already answered."""
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            await _refuse(scope, receive, send, *self._too_large())
            return None
        chunks, size, scan = [], 0, _Scan()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await _refuse(scope, receive, send, *self._too_large())
                return None
            chunks.append(chunk)
            scan.feed(chunk)  # chunk by chunk: the event loop never scans the whole at once
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        media = headers.get("content-type", "").split(";")[0].strip().lower()
        if _is_json(media) and scan.suspicious:
            problem = await _json_problem(body)
            if problem is not None:
                await _refuse(scope, receive, send, 400, "invalid_json", problem)
                return None
        return _replay(body, receive)

    def _too_large(self) -> tuple[int, str, str]:
        mib = self.limit / (1024 * 1024)
        return (
            413,
            "request_too_large",
            (
                f"The request body is larger than this server's limit of {mib:g} MiB "
                f"({self.limit} bytes). Send less, or start the server with a larger --max-body-mb."
            ),
        )


class _Scan:
    """Cheap signs, gathered chunk by chunk, that a JSON body needs a real look: enough
    brackets to nest too deep, or a trace of a UTF-16 surrogate."""

    def __init__(self) -> None:
        self.brackets, self.marked, self.tail = 0, False, b""

    def feed(self, chunk: bytes) -> None:
        self.brackets += chunk.count(b"[") + chunk.count(b"{")
        window = self.tail + chunk  # a mark may straddle two chunks
        self.marked = self.marked or any(window.find(mark) >= 0 for mark in SURROGATE_MARKS)
        self.tail = chunk[-2:]

    @property
    def suspicious(self) -> bool:
        return self.marked or self.brackets >= MIN_SUSPICIOUS_DEPTH


async def _json_problem(body: bytes) -> str | None:
    """Why body is JSON the server must refuse (too deep, not Unicode), or None."""
    if len(body) > PARSE_OFF_LOOP_BYTES:
        return await asyncio.to_thread(json_problem, body)
    return json_problem(body)


def json_problem(raw: bytes | str) -> str | None:
    """The message for JSON nested too deeply or holding a lone surrogate; None if fine.

    Malformed JSON is left to the route, which names the syntax error.
    """
    try:
        value = json.loads(raw)
    except RecursionError:
        return TOO_DEEP
    except (ValueError, UnicodeDecodeError):
        return None
    if not _valid_unicode(value):
        return (
            "The JSON holds text that is not valid Unicode (a lone UTF-16 surrogate such as "
            "\\ud800); send well-formed UTF-8."
        )
    return None


def _valid_unicode(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return False
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


def _replay(body: bytes, receive):
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: the disconnect, when it comes

    return replay


async def _refuse(scope, receive, send, status: int, code: str, message: str) -> None:
    if scope["type"] == "websocket":  # closing before accept answers the handshake with 403
        await send({"type": "websocket.close", "code": 1008, "reason": message[:120]})
        return
    error_type = "invalid_request_error"
    response = JSONResponse(error_body(message, error_type, code), status_code=status)
    await response(scope, receive, send)


def _headers(scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def _has_body(scope, headers: dict[str, str]) -> bool:
    if scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
        return False
    return headers.get("content-length", "0") != "0" or "transfer-encoding" in headers


def _is_json(media: str) -> bool:
    return media == "application/json" or media.endswith("+json")
