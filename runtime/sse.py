"""Server-sent event answers: errors become a last error event, and so does a server stop.

When uvicorn begins to stop (SIGTERM), sse-starlette sets the shutdown event; the stream then
cancels its generation and sends a final `server_shutdown` error event instead of just going
silent, so clients know to retry elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import anyio
from sse_starlette.sse import EventSourceResponse

from llm_runtime.errors import RuntimeServeError, internal_error
from llm_runtime.text_formats import sse_event

SHUTDOWN_GRACE_S = 2.0  # below uvicorn's timeout_graceful_shutdown (5 s)
SHUTDOWN_MESSAGE = "The server is shutting down; this answer is incomplete. Retry shortly."


def event_stream(events: AsyncIterator[dict], cancel: Callable[[], None]) -> EventSourceResponse:
    """SSE of events (dicts with 'data'); cancel stops the work behind them."""
    shutdown = anyio.Event()

    async def guarded():
        watcher = asyncio.ensure_future(_cancel_when_set(shutdown, cancel))
        try:
            async for event in events:
                if shutdown.is_set():
                    break
                yield event
            if shutdown.is_set():
                yield error_event(RuntimeServeError(SHUTDOWN_MESSAGE, code="server_shutdown"))
        except RuntimeServeError as exc:
            yield error_event(exc)
        except Exception as exc:  # an answer, not a cut connection
            yield error_event(internal_error(exc, "Streaming failed"))
        finally:
            watcher.cancel()
            with contextlib.suppress(Exception):
                cancel()

    return EventSourceResponse(
        guarded(), shutdown_event=shutdown, shutdown_grace_period=SHUTDOWN_GRACE_S
    )


def error_event(exc: RuntimeServeError) -> dict:
    return sse_event(exc.body())


async def _cancel_when_set(event: anyio.Event, cancel: Callable[[], None]) -> None:
    await event.wait()
    cancel()
