"""Requests to an ASGI app in this process, the response body read as the app sends it.

httpx's ASGITransport collects a whole response before returning it, which would hold a
streamed reply until its last token; this client hands each body chunk over as it comes, and
closing a response tells the app its client left (``http.disconnect``), as a dropped connection
would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

log = logging.getLogger("llm_runtime")


class AsgiResponse:
    """One response: ``status`` once the app has started it, then its body chunks."""

    def __init__(self) -> None:
        self.status = 0
        self.started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.left = asyncio.Event()  # set by close(): the app's receive() answers disconnect
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> AsgiResponse:
        return self

    async def __aexit__(self, *_: object) -> None:
        self.close()

    async def iter_any(self) -> AsyncIterator[bytes]:
        """The body as the app sends it, one chunk per send."""
        while (chunk := await self.chunks.get()) is not None:
            yield chunk

    async def lines(self) -> AsyncIterator[bytes]:
        """The body split after each b"\\n" (the last line may lack one)."""
        pending = b""
        async for chunk in self.iter_any():
            pending += chunk
            *whole, pending = pending.split(b"\n")
            for line in whole:
                yield line + b"\n"
        if pending:
            yield pending

    async def read(self) -> bytes:
        try:
            return b"".join([chunk async for chunk in self.iter_any()])
        finally:
            self.close()

    def close(self) -> None:
        """The client is done: an app still sending sees a disconnect and stops."""
        self.left.set()


class AsgiClient:
    """Calls ``app`` directly on the running event loop: no socket, no HTTP parsing."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def request(self, method: str, path: str, body: bytes = b"") -> AsgiResponse:
        """Returns once the app has sent the response's status (or raises what the app raised
        before it could)."""
        response = AsgiResponse()
        unread = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> dict[str, Any]:
            if unread:
                return unread.pop()
            await response.left.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                response.status = message["status"]
                response.started.set_result(None)
            elif message["type"] == "http.response.body":
                if message.get("body"):
                    response.chunks.put_nowait(message["body"])
                if not message.get("more_body"):
                    response.chunks.put_nowait(None)

        scope = _scope(method, path, body)
        response.task = asyncio.get_running_loop().create_task(self.app(scope, receive, send))
        response.task.add_done_callback(lambda task: _finished(task, response))
        try:
            await asyncio.wait(
                (response.started, response.task), return_when=asyncio.FIRST_COMPLETED
            )
        except asyncio.CancelledError:  # our caller gave up (its client left): so does the app
            response.close()
            raise
        if not response.started.done():
            response.task.result()  # the app's own error
            raise RuntimeError(f"{method} {path}: the app returned without a response")
        return response

    async def call(self, method: str, path: str, body: bytes, receive: Any, send: Any) -> None:
        """Runs the app on this task with ``send`` (no queue between) and, once it has read
        ``body``, ``receive`` (our own client's: its leaving is the app's disconnect)."""
        unread = [{"type": "http.request", "body": body, "more_body": False}]

        async def first_body_then(outer=receive) -> dict[str, Any]:
            return unread.pop() if unread else await outer()

        await self.app(_scope(method, path, body), first_body_then, send)


def _scope(method: str, path: str, body: bytes) -> dict[str, Any]:
    headers = [(b"content-type", b"application/json"), (b"host", b"127.0.0.1")]
    if method != "GET":
        headers.append((b"content-length", str(len(body)).encode()))
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1", "method": method, "scheme": "http", "path": path,
        "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers,
        "client": ("127.0.0.1", 0), "server": ("127.0.0.1", 0), "state": {},
    }  # fmt: skip


def _finished(task: asyncio.Task[None], response: AsgiResponse) -> None:
    """Readers never wait on an app that has stopped; its error is logged, not lost."""
    response.chunks.put_nowait(None)
    with contextlib.suppress(asyncio.CancelledError):
        error = task.exception()
        if error is not None and response.started.done():
            log.error("The engine's app failed mid-response: %r", error)
