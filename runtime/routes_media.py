"""Routes of the media families, and the media-aware front of /generate, /ws and chat.

Included before the core routers: POST /generate also takes multipart uploads, the chat route
and /ws also take images (multimodal models), /ws and `/generate {"stream": true}` (SSE) stream
diffusion steps; every other model is handed to the core route unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import threading
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sse_starlette.sse import EventSourceResponse
from starlette.datastructures import UploadFile

from llm_runtime import routes_native, routes_openai
from llm_runtime.admission import start_stream
from llm_runtime.errors import (
    TOO_DEEP,
    InvalidRequest,
    RuntimeServeError,
    describe_validation_error,
    internal_error,
)
from llm_runtime.handlers.base import TextStream
from llm_runtime.handlers.media_base import (
    ImageGeneration,
    ImageInput,
    Interrupted,
    SpeechSynthesis,
    Transcription,
)
from llm_runtime.image_api import ImageBody, outcome_body
from llm_runtime.schemas import ChatCompletionBody
from llm_runtime.serving import check_api_key, host_of, open_ws
from llm_runtime.serving import result_unless_disconnected as finished
from llm_runtime.sse import event_stream
from llm_runtime.text_formats import ChatFormat, native_result

log = logging.getLogger("llm_runtime")
router = APIRouter(dependencies=[Depends(check_api_key)])
ws_router = APIRouter()


# --- request bodies -------------------------------------------------------------------------


async def request_body(request: Request) -> dict[str, Any]:
    """The body as a dict: JSON, or multipart/urlencoded form with uploads as bytes."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        return await _form_body(request)
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"The body must be JSON or multipart/form-data: {exc}") from exc
    except RecursionError as exc:
        raise InvalidRequest(TOO_DEEP, code="invalid_json") from exc
    if not isinstance(body, dict):
        raise InvalidRequest("The body must be a JSON object.")
    return body


async def _form_body(request: Request) -> dict[str, Any]:
    form = await request.form()
    body: dict[str, Any] = {}
    for key, value in form.multi_items():
        item = await value.read() if isinstance(value, UploadFile) else _form_value(value)
        name = key.removesuffix("[]")
        if name in body:  # repeated fields become lists
            previous = body[name]
            body[name] = [*previous, item] if isinstance(previous, list) else [previous, item]
        else:
            body[name] = item
    return body


def _form_value(value: str) -> Any:
    if value[:1] in "[{":
        with contextlib.suppress(json.JSONDecodeError):
            return json.loads(value)
    return value


# --- /generate and chat: media-aware fronts of the core routes -----------------------------


@router.post("/generate", include_in_schema=False)  # documented by the core route
async def generate(request: Request):
    body = await request_body(request)
    handler = host_of(request).require()
    if isinstance(handler, ImageGeneration) and body.get("stream"):
        parsed = ImageBody.model_validate({"preview_every": 1, **body})
        if parsed.stream:  # SSE: a progress event per step (with previews), then the result
            stop = threading.Event()
            return _image_sse(image_events(handler, parsed.to_job(), stop), stop.set)
    if not isinstance(handler, ImageInput):
        return await routes_native.generate(request, body)
    text_request, stream = handler.request_from_generate(body=body)
    running = await start_stream(handler, text_request)
    if stream:
        return routes_native.native_sse(running, text_request)
    return native_result(await finished(running, request), text_request)


@router.post("/v1/chat/completions", include_in_schema=False)  # documented by the core route
async def chat_completions(request: Request):
    body = await request_body(request)
    host = host_of(request)
    handler = host.require()
    if not isinstance(handler, ImageInput):
        return await routes_openai.chat_completions(
            request, ChatCompletionBody.model_validate(body)
        )
    routes_openai.refuse_unsupported(handler, body)  # tools, response_format, logprobs, n
    text_request, stream, include_usage = handler.request_from_chat(body=body)
    running = await start_stream(handler, text_request)
    chat = ChatFormat(host.model_id)
    if stream:
        return _guarded_sse(running, chat.chunks(running, text_request, include_usage))
    return chat.completion(await finished(running, request), text_request)


def _guarded_sse(stream: TextStream, events) -> EventSourceResponse:
    return event_stream(events, stream.cancel)


# --- images ---------------------------------------------------------------------------------


class OpenAIImageBody(BaseModel):
    """POST /v1/images/generations (OpenAI), plus diffusion settings as extensions."""

    model_config = ConfigDict(extra="ignore")

    prompt: str = Field(min_length=1, max_length=4000)
    model: str | None = None
    n: int = Field(default=1, ge=1, le=8)
    size: str | None = None
    response_format: Literal["b64_json", "url"] | None = "b64_json"
    negative_prompt: str | None = None
    steps: int | None = Field(default=None, ge=1, le=200)
    guidance_scale: float | None = None
    seed: int | None = None
    scheduler: str | None = None

    def to_image_body(self) -> ImageBody:
        fields: dict[str, Any] = {"prompt": self.prompt, "num_images": self.n}
        if self.size and self.size != "auto":
            width, _, height = self.size.lower().partition("x")
            if not (width.isdigit() and height.isdigit()):
                raise InvalidRequest(f"size must look like '512x512', not {self.size!r}.")
            fields.update(width=int(width), height=int(height))
        extras = ("negative_prompt", "steps", "guidance_scale", "seed", "scheduler")
        fields.update({k: getattr(self, k) for k in extras if getattr(self, k) is not None})
        return ImageBody.model_validate(fields)


@router.post("/v1/images/generations")
async def images_generations(request: Request) -> dict[str, Any]:
    body = OpenAIImageBody.model_validate(await request_body(request))
    handler = host_of(request).require_capability(ImageGeneration, "POST /v1/images/generations")
    outcome = await handler.generate_images(job=body.to_image_body().to_job())
    key = "url" if body.response_format == "url" else "b64_json"
    prefix = "data:image/png;base64," if key == "url" else ""
    data = [{key: prefix + image, "revised_prompt": body.prompt} for image in outcome.images]
    return {"created": int(time.time()), "data": data, "seed": outcome.seed}


@router.post("/interrupt")
async def interrupt(request: Request) -> dict[str, Any]:
    handler = host_of(request).require_capability(ImageGeneration, "POST /interrupt")
    return {"interrupted": handler.interrupt()}


# --- audio ----------------------------------------------------------------------------------


class TranscriptionForm(BaseModel):
    model_config = ConfigDict(extra="ignore")

    file: bytes
    model: str | None = None
    language: str | None = None
    response_format: Literal["json", "text", "verbose_json"] = "json"


@router.post("/v1/audio/transcriptions")
async def audio_transcriptions(request: Request):
    form = TranscriptionForm.model_validate(await request_body(request))
    handler = host_of(request).require_capability(Transcription, "POST /v1/audio/transcriptions")
    verbose = form.response_format == "verbose_json"
    result = await handler.transcribe(audio=form.file, language=form.language, timestamps=verbose)
    if form.response_format == "text":
        return PlainTextResponse(result["text"])
    if verbose:  # OpenAI's shape: the timestamped pieces as segments
        chunks = result.pop("chunks", [])
        segments = [{"id": i, "start": c["timestamp"][0], "end": c["timestamp"][1],
                     "text": c["text"]} for i, c in enumerate(chunks)]  # fmt: skip
        return {"task": "transcribe", "language": form.language, **result, "segments": segments}
    return {"text": result["text"]}


class SpeechBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    input: str = Field(min_length=1, max_length=4096)
    model: str | None = None
    voice: str | None = None
    response_format: Literal["wav"] = "wav"


@router.post("/v1/audio/speech")
async def audio_speech(request: Request) -> Response:
    body = SpeechBody.model_validate(await request_body(request))
    handler = host_of(request).require_capability(SpeechSynthesis, "POST /v1/audio/speech")
    wav, _ = await handler.synthesize(text=body.input)
    return Response(wav, media_type="audio/wav")


# --- WebSocket: diffusion steps and multimodal text; everything else goes to the core ------


@ws_router.websocket("/ws")
async def websocket_stream(websocket: WebSocket) -> None:
    handler = websocket.app.state.host.handler
    if not isinstance(handler, (ImageGeneration, ImageInput)):
        await routes_native.websocket_stream(websocket)
        return
    if not await open_ws(websocket):
        return
    session = _ImageSession(websocket, handler) if isinstance(handler, ImageGeneration) else None
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            message = await routes_native.receive_text(websocket)
            if message is None:
                continue
            if session is not None:
                await session.on_message(message)
            else:
                start = functools.partial(_start_multimodal, handler)
                await routes_native.answer_ws(websocket, message, start)
    if session is not None:
        session.cancel()


class _ImageSession:
    """One socket of a diffusion model: runs one job at a time, streams its steps."""

    def __init__(self, websocket: WebSocket, handler) -> None:
        self.websocket, self.handler = websocket, handler
        self.task: asyncio.Task | None = None
        self.cancel_event = threading.Event()

    async def on_message(self, message: str) -> None:
        try:
            data = routes_native.json_param("message", message)
            if not isinstance(data, dict):
                raise InvalidRequest("Each message must be a JSON object.")
            if data.get("type") == "interrupt" or data.get("action") == "interrupt":
                self.cancel_event.set()
                await self.websocket.send_json({"type": "interrupted"})
                return
            if self.task is not None and not self.task.done():
                raise InvalidRequest("A generation is already running on this socket.")
            data.setdefault("preview_every", 1)
            job = ImageBody.model_validate(data).to_job()
        except ValidationError as exc:
            await self._send(InvalidRequest(describe_validation_error(exc)).body())
            return
        except RuntimeServeError as exc:
            await self._send(exc.body())
            return
        self.cancel_event = threading.Event()
        self.task = asyncio.create_task(self._run(job, self.cancel_event))

    async def _run(self, job, cancel_event: threading.Event) -> None:
        async for event in image_events(self.handler, job, cancel_event):
            await self._send(event)

    async def _send(self, event: dict) -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            await self.websocket.send_json(event)

    def cancel(self) -> None:
        self.cancel_event.set()


async def image_events(handler, job, cancel_event: threading.Event) -> AsyncIterator[dict]:
    """Progress events of one image job, then its result or an error event; never raises.

    Setting cancel_event (or closing this iterator: the client went away) stops the job at
    its next step.
    """
    loop, queue = asyncio.get_running_loop(), asyncio.Queue[Any]()

    def on_progress(progress) -> None:
        if cancel_event.is_set():
            raise Interrupted()
        loop.call_soon_threadsafe(queue.put_nowait, progress)

    work = asyncio.ensure_future(handler.generate_images(job=job, on_progress=on_progress))
    work.add_done_callback(lambda _: queue.put_nowait(None))
    try:
        while (progress := await queue.get()) is not None:
            event = {"type": "progress", "step": progress.step, "total": progress.total}
            if progress.preview:
                event["preview"] = progress.preview
            yield event
        yield {"type": "result", **outcome_body(work.result())}
    except RuntimeServeError as exc:
        yield exc.body()
    except Exception as exc:  # a failing pipeline must still answer, or the client waits forever
        yield internal_error(exc, "Image generation failed").body()
    finally:
        cancel_event.set()  # no-op once finished


def _image_sse(events: AsyncIterator[dict], stop) -> EventSourceResponse:
    async def data():
        async for event in events:
            yield {"data": json.dumps(event)}

    return event_stream(data(), stop)


async def _start_multimodal(handler, body: dict) -> tuple[TextStream, Any]:
    text_request, _ = handler.request_from_generate(body=body)
    return await start_stream(handler, text_request), text_request
