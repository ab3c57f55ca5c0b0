"""Image + text -> text (LLaVA-like, Qwen-VL-like...): AutoModelForImageTextToText + AutoProcessor.

Images come as multipart uploads or base64 on /generate, and as `image_url` content parts
(data URIs) on /v1/chat/completions; answers stream like any text model's.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from llm_runtime.contract import IMAGE_TEXT_TO_TEXT
from llm_runtime.errors import InvalidRequest
from llm_runtime.handlers.base import Handler, TextGeneration, TextStream
from llm_runtime.handlers.media_base import ImageInput
from llm_runtime.loading import (
    load_model,
    remote_code,
    resolve_placement,
)
from llm_runtime.media import decode_image
from llm_runtime.profile import ModelProfile
from llm_runtime.schemas import ChatCompletionBody, GenerateBody
from llm_runtime.text_formats import native_result
from llm_runtime.threaded_stream import GenerationSlot, generate_stream
from llm_runtime.values import Capabilities, LoadSettings, ModelDescription, TextRequest

log = logging.getLogger("llm_runtime")

DEFAULT_MAX_TOKENS = 256
MAX_IMAGES = 8


@dataclasses.dataclass(frozen=True)
class MultimodalRequest(TextRequest):
    """A TextRequest plus the processor-format chat (image parts in place) and its images."""

    chat: tuple[dict, ...] = ()
    images: tuple = ()


class ImageTextToTextHandler(Handler, TextGeneration, ImageInput):
    """One generation at a time on a worker thread, streamed through TextIteratorStreamer."""

    family = IMAGE_TEXT_TO_TEXT

    def load(self, *, profile: ModelProfile, settings: LoadSettings) -> None:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.profile, self.placement = profile, resolve_placement(settings)
        self.processor = AutoProcessor.from_pretrained(profile.model_dir, **remote_code(settings))
        self.tokenizer = self.processor.tokenizer
        self.model, self.adapter = load_model(
            AutoModelForImageTextToText, profile.model_dir, settings, self.placement
        )
        self.slot = GenerationSlot(settings.max_queue)

    def describe(self) -> ModelDescription:
        text_config = self.model.config.get_text_config()
        return ModelDescription(
            family=self.family,
            device=self.placement.device,
            dtype=self.placement.dtype_name,
            adapter=str(self.adapter) if self.adapter else None,
            capabilities=Capabilities(
                supports_streaming=True,
                supports_system_prompt=True,
                max_context_length=getattr(text_config, "max_position_embeddings", None),
                inputs=("text", "image"),
                outputs=("text",),
            ),
            details={
                "architecture": (self.model.config.architectures or [None])[0],
                "processor": type(self.processor).__name__,
                "max_images": MAX_IMAGES,
                "chat_template": bool(getattr(self.processor, "chat_template", None)),
            },
        )

    async def generate(self, *, body: dict[str, Any]) -> dict[str, Any]:
        request, _ = self.request_from_generate(body=body)
        return native_result(await self.start(request=request).result(), request)

    def request_from_generate(self, *, body: dict[str, Any]) -> tuple[TextRequest, bool]:
        images = _images_of(body)
        text_body = {k: v for k, v in body.items() if k not in ("image", "images", "image_url")}
        if "text" in text_body and "prompt" not in text_body and "messages" not in text_body:
            text_body["prompt"] = text_body.pop("text")
        parsed = GenerateBody.model_validate(text_body)
        base = parsed.to_text_request()
        chat = [{"role": m.role, "content": [_text(m.content)]} for m in base.messages or ()]
        if not chat:
            chat = [{"role": "user", "content": [_text(parsed.prompt or "")]}]
            if parsed.system_prompt:
                chat.insert(0, {"role": "system", "content": [_text(parsed.system_prompt)]})
        last_user = next((m for m in reversed(chat) if m["role"] == "user"), None)
        if last_user is None:
            raise InvalidRequest(
                "'messages' needs a message with role 'user': the images go with the last one."
            )
        last_user["content"] = [{"type": "image"} for _ in images] + last_user["content"]
        return _multimodal(base, chat, images), parsed.stream

    def request_from_chat(self, *, body: dict[str, Any]) -> tuple[TextRequest, bool, bool]:
        chat, images, text_messages = [], [], []
        for message in body.get("messages") or []:
            content, found = _chat_parts(message.get("content"))
            images.extend(found)
            chat.append({"role": message.get("role"), "content": content})
            text = "".join(p.get("text", "") for p in content)
            text_messages.append({"role": message.get("role"), "content": text})
        parsed = ChatCompletionBody.model_validate({**body, "messages": text_messages})
        include_usage = bool(parsed.stream_options and parsed.stream_options.include_usage)
        return _multimodal(parsed.to_text_request(), chat, images), parsed.stream, include_usage

    def start(self, *, request: TextRequest) -> TextStream:
        chat = getattr(request, "chat", ()) or _plain_chat(request)
        images = list(getattr(request, "images", ()))
        try:
            inputs = self._inputs(list(chat), images)
        except ValueError as exc:  # e.g. more image tokens in the text than images sent
            raise InvalidRequest(f"The model's processor refused the request: {exc}") from exc
        return generate_stream(
            model=self.model,
            tokenizer=self.tokenizer,
            slot=self.slot,
            inputs=inputs,
            request=request,
            default_max_tokens=DEFAULT_MAX_TOKENS,
            skip_prompt=True,
        )

    def count_tokens(self, *, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def _inputs(self, chat: list[dict], images: list) -> dict:
        if getattr(self.processor, "chat_template", None):
            text = self.processor.apply_chat_template(
                chat, add_generation_prompt=True, tokenize=False
            )
        else:  # no template: image tokens first, then the transcript
            token = getattr(self.processor, "image_token", "<image>")
            lines = [
                f"{m['role']}: " + "".join(p.get("text", "") for p in m["content"]) for m in chat
            ]
            text = token * len(images) + "\n".join(lines) + "\nassistant:"
        inputs = self.processor(images=images or None, text=text, return_tensors="pt")
        return {
            k: v.to(self.placement.device, dtype=self.placement.dtype)
            if k == "pixel_values"
            else v.to(self.placement.device)
            for k, v in inputs.items()
        }


def _multimodal(base: TextRequest, chat: list[dict], images: list) -> MultimodalRequest:
    if len(images) > MAX_IMAGES:
        raise InvalidRequest(f"At most {MAX_IMAGES} images per request.")
    fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(TextRequest)}
    return MultimodalRequest(**fields, chat=tuple(chat), images=tuple(images))


def _plain_chat(request: TextRequest) -> tuple[dict, ...]:
    if request.messages is None:
        return ({"role": "user", "content": [_text(request.prompt or "")]},)
    return tuple({"role": m.role, "content": [_text(m.content)]} for m in request.messages)


def _text(text: str) -> dict:
    return {"type": "text", "text": text}


def _images_of(body: dict[str, Any]) -> list:
    values = body.get("images") or body.get("image") or body.get("image_url") or []
    values = values if isinstance(values, list) else [values]
    return [decode_image(v, f"image {i + 1}") for i, v in enumerate(values)]


def _chat_parts(content: Any) -> tuple[list[dict], list]:
    """Processor-format parts and the decoded images of one OpenAI message content."""
    if content is None or isinstance(content, str):
        return [_text(content or "")], []
    parts, images = [], []
    for part in content:
        kind = part.get("type")
        if kind == "text":
            parts.append(_text(part.get("text", "")))
        elif kind in ("image_url", "input_image"):
            url = part.get("image_url")
            url = url.get("url") if isinstance(url, dict) else url
            images.append(_image_from_url(url or ""))
            parts.append({"type": "image"})
        else:
            raise InvalidRequest(f"Unsupported content part type {kind!r}: use text or image_url.")
    return parts, images


def _image_from_url(url: str):
    if url.startswith(("http://", "https://")):
        raise InvalidRequest(
            "image_url must be a data: URI (base64); the server does not fetch remote images."
        )
    return decode_image(url, "image_url")
