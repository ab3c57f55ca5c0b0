"""GGUF models on llama.cpp through llama-cpp-python: our whole text API over one llama context.

Why llama-cpp-python: it is llama.cpp's maintained Python binding (one wheel per dependency set,
CPU or CUDA), it reads the chat template from the GGUF file and it runs in our own FastAPI
process, so the API, UI, metrics and API key are the same as on every other engine.
One generation runs at a time (a llama context is not thread-safe); more wait in a bounded queue.
Tools, response_format, logprobs and n work as on the transformers engine (gguf_stream.py).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from llm_runtime.contract import GGUF
from llm_runtime.errors import InvalidRequest, ModelLoadError
from llm_runtime.handlers.base import Handler, TextGeneration, TextStream
from llm_runtime.handlers.gguf_stream import LlamaGrammars, LlamaStream
from llm_runtime.profile import ModelProfile
from llm_runtime.schemas import GenerateBody
from llm_runtime.structured import JsonConstraint, output_schema
from llm_runtime.text_formats import native_result
from llm_runtime.threaded_stream import GenerationSlot
from llm_runtime.tool_calls import (
    ToolCallStream,
    fallback_system_prompt,
    openai_tool,
    require_tool_rendering,
    template_messages,
    template_supports_tools,
)
from llm_runtime.values import (
    Capabilities,
    LoadSettings,
    ModelDescription,
    OutputSpec,
    TextRequest,
)

log = logging.getLogger("llm_runtime")

DEFAULT_MAX_TOKENS = 512
MAX_DEFAULT_CONTEXT = 4096  # the context check's memory estimate assumes
PROJECTOR_MARKER = "mmproj"


def model_file(profile: ModelProfile) -> Path:
    """The GGUF file to load: model_info's ``gguf_file``, else the folder's only model file
    (the first part of a split one)."""
    named = profile.info.gguf_file
    if named:
        path = profile.model_dir / named
        if not path.is_file():
            raise ModelLoadError(
                f"model_info.json names {named}, which is not in {profile.model_dir}."
            )
        return path
    found = sorted(
        p for p in profile.model_dir.glob("*.gguf") if PROJECTOR_MARKER not in p.name.lower()
    )
    firsts = [p for p in found if "-of-" not in p.name or "-00001-of-" in p.name]
    if len(firsts) != 1:
        names = ", ".join(p.name for p in firsts) or "none"
        raise ModelLoadError(
            f"{profile.model_dir} holds {len(firsts)} GGUF models ({names}); name one as "
            "'gguf_file' in model_info.json (install --quant does)."
        )
    return firsts[0]


class GgufHandler(Handler, TextGeneration):
    """A GGUF model on llama.cpp: chat and completions, streamed token by token."""

    family = GGUF
    openai_features = frozenset({"tools", "response_format", "logprobs", "n"})

    def load(self, *, profile: ModelProfile, settings: LoadSettings) -> None:
        import llama_cpp

        self.profile, self.path = profile, model_file(profile)
        _refuse_unsupported(settings)
        self.device = _device(settings.device, llama_cpp.llama_supports_gpu_offload())
        log.info("Loading %s with llama.cpp on %s", self.path, self.device)
        probe = llama_cpp.Llama(model_path=str(self.path), vocab_only=True, verbose=False)
        self.trained_context = _trained_context(probe.metadata)
        context = min(self.trained_context or MAX_DEFAULT_CONTEXT, MAX_DEFAULT_CONTEXT)
        del probe
        try:
            self.llm = llama_cpp.Llama(
                model_path=str(self.path), n_ctx=context, n_threads=settings.threads,
                n_gpu_layers=-1 if self.device == "cuda" else 0, verbose=False,
            )  # fmt: skip
        except ValueError as exc:
            raise ModelLoadError(f"llama.cpp could not load {self.path.name}: {exc}") from exc
        self.template = self.llm.metadata.get("tokenizer.chat_template") or ""
        self.slot = GenerationSlot(settings.max_queue)
        self.grammars = LlamaGrammars(self.llm)

    def describe(self) -> ModelDescription:
        metadata = self.llm.metadata
        return ModelDescription(
            family=self.family,
            device=self.device,
            dtype=_file_type(metadata),
            capabilities=Capabilities(
                supports_streaming=True,
                supports_system_prompt=self._accepts_system_prompt(),
                max_context_length=self.llm.n_ctx(),
            ),
            details={
                "engine": "llama.cpp",
                "gguf_file": self.path.name,
                "architecture": metadata.get("general.architecture"),
                "chat_template": bool(self.template),
                "context_length_trained": self.trained_context,
                "parameters": self._parameters(),
            },
        )

    async def generate(self, *, body: dict[str, Any]) -> dict[str, Any]:
        request = GenerateBody.model_validate(body).to_text_request()
        return native_result(await self.start(request=request).result(), request)

    def start(self, *, request: TextRequest) -> TextStream:
        constraint = self._constraint(request.output)
        prompt = self._prompt_tokens(request)
        room = self.llm.n_ctx() - len(prompt)
        wanted = request.sampling.max_tokens
        if room <= 0 or (wanted is not None and wanted > room):
            raise InvalidRequest(
                f"This model's context is {self.llm.n_ctx()} tokens; the prompt uses {len(prompt)} "
                f"and max_tokens asks for {wanted or 1} more. Shorten the prompt or lower max_tokens.",
                code="context_length_exceeded",
            )
        max_tokens = wanted if wanted is not None else min(DEFAULT_MAX_TOKENS, room)
        stream = LlamaStream(self, request, prompt, max_tokens, constraint)
        return ToolCallStream(stream, request.output) if request.output.calls_tools else stream

    def _constraint(self, output: OutputSpec) -> JsonConstraint | None:
        schema = output_schema(output)
        return None if schema is None else self.grammars.constraint(schema)

    def count_tokens(self, *, text: str) -> int:
        return len(self.llm.tokenize(text.encode(), add_bos=False, special=True))

    def _parameters(self) -> int:
        import llama_cpp

        return int(llama_cpp.llama_model_n_params(self.llm.model))

    def _prompt_tokens(self, request: TextRequest) -> list[int]:
        if request.messages is None:
            tokens = self.llm.tokenize((request.prompt or "").encode(), add_bos=True)
        else:
            text = self._render_chat(request)
            bos = self.llm.detokenize([self.llm.token_bos()]).decode(errors="ignore")
            starts_with_bos = bool(bos) and text.startswith(bos)
            tokens = self.llm.tokenize(text.encode(), add_bos=not starts_with_bos, special=True)
        if not tokens:
            raise InvalidRequest("The prompt encodes to no tokens.")
        return tokens

    def _render_chat(self, request: TextRequest) -> str:
        output = request.output
        native = template_supports_tools(self.template)
        if output.calls_tools and not native:
            require_tool_rendering(self._accepts_system_prompt())
        messages = template_messages(request.messages or (), native)
        extra = {"tools": [openai_tool(t) for t in output.tools]} if output.calls_tools else {}
        if output.calls_tools and not native:
            messages, extra = fallback_system_prompt(messages, output.tools), {}
        if not self.template:  # no chat template: a plain transcript the model can continue
            lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
            return "\n".join(lines) + "\nAssistant:"
        try:
            return self._formatter()(messages=messages, **extra).prompt
        except Exception as exc:  # a template that rejects these messages (e.g. no system role)
            raise InvalidRequest(
                f"The model's chat template refused these messages: {exc}"
            ) from exc

    def _formatter(self):
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        decode = self.llm.detokenize
        return Jinja2ChatFormatter(
            template=self.template,
            eos_token=decode([self.llm.token_eos()]).decode(errors="ignore"),
            bos_token=decode([self.llm.token_bos()]).decode(errors="ignore"),
        )

    def _accepts_system_prompt(self) -> bool:
        """Whether the chat template renders a system message (some templates raise)."""
        if not self.template:
            return True
        probe = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
        try:
            return "S" in self._formatter()(messages=probe).prompt
        except Exception:
            return False


def _trained_context(metadata: dict[str, str]) -> int:
    """``<architecture>.context_length`` from the GGUF header (0 when absent)."""
    architecture = metadata.get("general.architecture", "")
    try:
        return int(metadata.get(f"{architecture}.context_length", 0))
    except ValueError:
        return 0


def _device(requested: str, gpu_build: bool) -> str:
    if requested in ("auto", "cuda") and gpu_build:
        return "cuda"
    if requested == "cuda":
        raise ModelLoadError(
            "--device cuda: this llama.cpp build has no GPU support (a CPU image)."
        )
    return "cpu"


def _refuse_unsupported(settings: LoadSettings) -> None:
    if settings.quantization:
        raise ModelLoadError(
            f"--load-in-{settings.quantization} is a bitsandbytes option; a GGUF file is quantized "
            "already. Install another quantization instead: llm-installer install MODEL --quant Q4_K_M."
        )
    if settings.lora_dir is not None:
        raise ModelLoadError(
            "--lora loads PEFT adapters on transformers models, not on GGUF files."
        )


def _file_type(metadata: dict[str, str]) -> str:
    """general.file_type as llama.cpp names it (``MOSTLY_Q4_K_M`` → ``Q4_K_M``)."""
    value = metadata.get("general.file_type")
    try:
        from llama_cpp import llama_cpp as raw

        names = {getattr(raw, n): n for n in dir(raw) if n.startswith("LLAMA_FTYPE_MOSTLY_")}
        return names[int(value or "")].removeprefix("LLAMA_FTYPE_MOSTLY_")
    except (KeyError, TypeError, ValueError, ImportError):
        return str(value or "unknown")
