"""Text generation on vLLM: vLLM's engine and OpenAI app in our process (engines/vllm_engine.py),
same routes and shapes as the transformers engine.

Native routes (/generate, /generate/stream, /ws) read a `VllmStream`; the OpenAI routes are
forwarded nearly as they are (engines/vllm_routes.py), so tools, response_format, logprobs and
n reach vLLM's own implementation. Admission (429 + Retry-After) is ours: at most
max-concurrency running plus max-queue waiting requests.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from llm_runtime.contract import TEXT_GENERATION
from llm_runtime.engines.asgi_client import AsgiClient
from llm_runtime.engines.vllm_engine import VllmEngine
from llm_runtime.engines.vllm_launch import (
    TOOL_PARSERS,
    VllmLaunch,
    kv_cache_gib,
    lora_rank,
    max_model_len,
)
from llm_runtime.engines.vllm_stream import VllmStream
from llm_runtime.errors import InvalidRequest, ModelLoadError, NotReady, Overloaded
from llm_runtime.handlers.base import Handler, TextGeneration, TextStream
from llm_runtime.loading import adapter_dir, resolve_device
from llm_runtime.profile import ModelProfile
from llm_runtime.reasoning import detect_reasoning
from llm_runtime.schemas import GenerateBody
from llm_runtime.text_formats import native_result
from llm_runtime.values import Capabilities, LoadSettings, ModelDescription, TextRequest

log = logging.getLogger("llm_runtime")
DEFAULT_MAX_TOKENS = 512
BASE_SUFFIX = "-base"  # vLLM's name for the base model when the adapter takes the model's name


class VllmTextHandler(Handler, TextGeneration):
    """Causal LMs served by vLLM's engine."""

    family = TEXT_GENERATION
    engine = "vllm"

    def load(self, *, profile: ModelProfile, settings: LoadSettings) -> None:
        from transformers import AutoTokenizer

        self.profile, self.settings = profile, settings
        self.device = resolve_device(settings.device if settings.device != "mps" else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(profile.model_dir)
        self.think = detect_reasoning(self.tokenizer) if profile.is_reasoning is not False else None
        self.adapter = adapter_dir(settings)
        self.max_context = max_model_len(profile.model_dir, cap=10**9)
        self.limit = settings.max_batch_size + settings.max_queue
        self.in_flight = 0
        if settings.quantization:
            raise ModelLoadError(
                f"--load-in-{settings.quantization} is a transformers-engine option; on vLLM pass "
                "its own flag after `--` (e.g. -- --quantization fp8), or reinstall with "
                "--engine transformers."
            )
        # Answers name the model as start.sh serves it: the adapter when lora/ has one.
        self.served_name = profile.model_id
        self.vllm = VllmEngine(
            self._launch(profile, settings), (settings.logs_dir or Path("logs")) / "vllm.log"
        )
        self.vllm.start()
        self.max_context = self.vllm.max_model_len

    async def started(self) -> None:
        await self.vllm.serve()

    def _launch(self, profile: ModelProfile, settings: LoadSettings) -> VllmLaunch:
        environment = {"VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}
        if self.device == "cpu" and "VLLM_CPU_KVCACHE_SPACE" not in os.environ:
            tokens = min(self.max_context, 8192) * max(1, settings.max_batch_size // 4)
            environment["VLLM_CPU_KVCACHE_SPACE"] = str(
                kv_cache_gib(profile.model_dir, tokens=tokens, available_bytes=_available_memory())
            )
        return VllmLaunch(
            model_dir=profile.model_dir,
            served_name=f"{profile.model_id}{BASE_SUFFIX}" if self.adapter else profile.model_id,
            max_num_seqs=settings.max_batch_size,
            device=self.device,
            dtype=settings.dtype,
            lora=(profile.model_id, self.adapter, lora_rank(self.adapter))
            if self.adapter
            else None,
            reasoning_parser=self._reasoning_parser(),
            tool_parser=self._tool_parser(),
            extra_args=tuple(settings.engine_args),
            environment=environment,
        )

    def _reasoning_parser(self) -> str | None:
        """qwen3 when the template toggles thinking (the prompt may open <think>), else deepseek_r1."""
        if self.think is None:
            return None
        return "qwen3" if self.think.template_toggle else "deepseek_r1"

    def _tool_parser(self) -> str | None:
        template = (
            self.tokenizer.chat_template if isinstance(self.tokenizer.chat_template, str) else ""
        )
        if "tools" not in template:
            return None  # the chat template cannot render tools: vLLM answers tool requests 400
        config = json.loads((self.profile.model_dir / "config.json").read_text())
        return TOOL_PARSERS.get(config.get("model_type", ""), "hermes")

    @property
    def client(self) -> AsgiClient:
        """vLLM's OpenAI app, called in this process."""
        assert self.vllm.client is not None, "started() runs before the handler serves"
        return self.vllm.client

    def describe(self) -> ModelDescription:
        return ModelDescription(
            family=self.family,
            device=self.device,
            dtype=self.settings.dtype,
            adapter=str(self.adapter) if self.adapter else None,
            capabilities=Capabilities(
                supports_reasoning=self.think is not None,
                supports_streaming=True,
                supports_system_prompt=True,
                max_context_length=self.max_context,
            ),
            details={
                "engine": "vllm",
                "engine_version": _vllm_version(),
                "is_moe": self.profile.is_moe,
                "is_reasoning": self.think is not None,
                "chat_template": bool(self.tokenizer.chat_template),
                "thinking_toggle": bool(self.think and self.think.template_toggle),
                "reasoning_parser": self.vllm.launch.reasoning_parser,
                "tool_parser": self.vllm.launch.tool_parser,
            },
        )

    async def generate(self, *, body: dict[str, Any]) -> dict[str, Any]:
        request = GenerateBody.model_validate(body).to_text_request()
        return native_result(await self.start(request=request).result(), request)

    def start(self, *, request: TextRequest) -> TextStream:
        thinking = self.think is not None and request.reasoning.enabled is not False
        path, body = self._request_body(request, thinking)
        split = thinking and request.messages is not None  # vLLM splits chat answers only
        return VllmStream(
            self.client, path, body, reasoning=split, release=self.admit(), gone=self.engine_gone
        )

    def admit(self):
        """Take a slot or raise Overloaded (429); returns the function that frees it."""
        if self.in_flight >= self.limit:
            self.metrics.inc("requests_rejected_total", help="Requests refused with 429")
            raise Overloaded(
                f"The server is busy ({self.in_flight} requests in flight); retry shortly."
            )
        self.in_flight += 1
        self.metrics.set("num_requests_in_flight", self.in_flight, "Requests sent to the engine")
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released, self.in_flight = True, self.in_flight - 1
                self.metrics.set(
                    "num_requests_in_flight", self.in_flight, "Requests sent to the engine"
                )

        return release

    def _request_body(self, request: TextRequest, thinking: bool) -> tuple[str, dict[str, Any]]:
        s = request.sampling
        body: dict[str, Any] = {
            "model": self.served_name, "stream": True, "stream_options": {"include_usage": True},
            "max_tokens": s.max_tokens or DEFAULT_MAX_TOKENS, "temperature": s.temperature,
            "top_p": s.top_p, "repetition_penalty": s.repetition_penalty,
        }  # fmt: skip
        body.update({k: v for k, v in (("top_k", s.top_k), ("seed", s.seed)) if v})
        if request.stop:
            body["stop"] = list(request.stop)
        if request.messages is None:
            if not (request.prompt or "").strip():
                raise InvalidRequest("The prompt is empty.")
            return "/v1/completions", {**body, "prompt": request.prompt}
        body["messages"] = [{"role": m.role, "content": m.content} for m in request.messages]
        if self.think is not None and self.think.template_toggle:
            body["chat_template_kwargs"] = {"enable_thinking": thinking}
        return "/v1/chat/completions", body

    def engine_gone(self) -> NotReady | None:
        """A clear 503 once vLLM's engine core has died."""
        error = self.vllm.dead()
        if error is None:
            return None
        return NotReady(
            f"The vLLM engine stopped ({type(error).__name__}): {self.vllm.last_error()} "
            "Restart the server (start.sh); logs/vllm.log has the details.",
            code="engine_stopped",
        )

    def count_tokens(self, *, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    async def engine_metrics(self) -> str:
        """vLLM's own Prometheus metrics (``vllm:`` names), for our /metrics."""
        if self.vllm.client is None:
            return ""
        async with await self.vllm.client.request("GET", "/metrics") as response:
            return (await response.read()).decode() if response.status == 200 else ""

    def close(self) -> None:
        engine = getattr(self, "vllm", None)
        if engine is not None:
            engine.shutdown()


def _available_memory() -> int:
    import psutil

    return psutil.virtual_memory().available


def _vllm_version() -> str | None:
    from importlib import metadata

    for name in ("vllm", "vllm-cpu"):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None
