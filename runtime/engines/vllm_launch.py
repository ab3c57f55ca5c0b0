"""What vLLM is started with: its server's command-line flags (parsed by vLLM's own parser in
our process, engines/vllm_engine.py; the benchmark starts a standalone vLLM server with the very
same flags), its environment, and sizes taken from the model's config."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

GiB = 1024**3
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
DEFAULT_MAX_MODEL_LEN = 8192
# Compact JSON (no free whitespace) so constrained output validates even from weak models.
STRUCTURED_OUTPUTS = {"backend": "xgrammar", "disable_any_whitespace": True}
# Tool-call parsers by model_type: the chat templates of these families emit these formats.
TOOL_PARSERS = {
    "llama": "llama3_json", "qwen2": "hermes", "qwen2_moe": "hermes", "qwen3": "hermes",
    "qwen3_moe": "hermes", "mistral": "mistral", "mixtral": "mistral", "granite": "granite",
    "internlm2": "internlm", "phi3": "phi4_mini_json", "olmo3": "olmo3", "gpt_oss": "openai",
    "deepseek_v3": "deepseek_v3", "glm4_moe": "glm45", "hunyuan_v1_moe": "hunyuan_a13b",
}  # fmt: skip
COMPILE_FLAGS = frozenset(
    {"--enforce-eager", "--no-enforce-eager", "-O", "-O0", "-O1", "-O2", "-O3",
     "--compilation-config", "--optimization-level"}
)  # fmt: skip


@dataclass(frozen=True)
class VllmLaunch:
    """Everything vLLM is started with."""

    model_dir: Path
    served_name: str
    max_num_seqs: int
    device: str  # "cuda" or "cpu"
    dtype: str = "auto"
    lora: tuple[str, Path, int] | None = None  # (name, folder, rank)
    reasoning_parser: str | None = None
    tool_parser: str | None = None
    extra_args: tuple[str, ...] = ()
    environment: dict[str, str] = field(default_factory=dict)

    def server_command(self, port: int) -> list[str]:
        """A standalone vLLM OpenAI server with these flags (the benchmark's baseline)."""
        return [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server", *self.flags(),
            "--host", "127.0.0.1", "--port", str(port),
            "--disable-uvicorn-access-log", "--uvicorn-log-level", "warning",
        ]  # fmt: skip

    def flags(self) -> list[str]:
        """vLLM's server flags for the engine and its OpenAI layer; the user's come last."""
        args = [
            "--model", str(self.model_dir), "--served-model-name", self.served_name,
            "--max-num-seqs", str(self.max_num_seqs), "--dtype", self.dtype,
            "--structured-outputs-config", json.dumps(STRUCTURED_OUTPUTS),
        ]  # fmt: skip
        if self.lora is not None:
            name, path, rank = self.lora
            module = json.dumps(
                {"name": name, "path": str(path), "base_model_name": self.served_name}
            )
            args += ["--enable-lora", "--lora-modules", module, "--max-lora-rank", str(rank)]
        if self.reasoning_parser:
            args += ["--reasoning-parser", self.reasoning_parser]
        if self.tool_parser:
            args += ["--enable-auto-tool-choice", "--tool-call-parser", self.tool_parser]
        return args + self._defaults() + list(self.extra_args)

    def _defaults(self) -> list[str]:
        """--max-model-len from the model's context (capped), and on CPU --enforce-eager (the
        image has no C++ compiler for torch.compile), unless the user passed their own."""
        given = {a.split("=")[0] for a in self.extra_args}
        defaults = []
        if "--max-model-len" not in given:
            defaults += ["--max-model-len", str(max_model_len(self.model_dir))]
        if self.eager_cpu:
            defaults.append("--enforce-eager")
        return defaults

    @property
    def eager_cpu(self) -> bool:
        """CPU without a compilation choice of the user's: no torch.compile anywhere (the image
        has no C++ compiler; vLLM compiles its logprobs kernel even with --enforce-eager)."""
        given = {a.split("=")[0] for a in self.extra_args}
        return self.device == "cpu" and not given & COMPILE_FLAGS

    def engine_environment(self) -> dict[str, str]:
        """Set before vLLM starts its engine core. ``spawn``: the engine core is a fresh
        process (as `vllm serve` starts it), never a fork of our threaded, OpenMP-initialised
        server."""
        return {
            "VLLM_WORKER_MULTIPROC_METHOD": "spawn",
            **self.environment,
            **({"TORCHDYNAMO_DISABLE": "1"} if self.eager_cpu else {}),
        }


def max_model_len(model_dir: Path, cap: int = DEFAULT_MAX_MODEL_LEN) -> int:
    config = _config(model_dir)
    context = config.get("max_position_embeddings") or config.get("max_seq_len") or cap
    return int(min(context, cap))


def kv_cache_gib(model_dir: Path, *, tokens: int, available_bytes: int) -> int:
    """VLLM_CPU_KVCACHE_SPACE: room for ``tokens`` of KV cache (bf16), within a third of
    what memory the weights leave; at least 1 GiB."""
    config = _config(model_dir)
    layers = config.get("num_hidden_layers") or 1
    heads = config.get("num_attention_heads") or 1
    kv_heads = config.get("num_key_value_heads") or heads
    head_dim = config.get("head_dim") or (config.get("hidden_size") or 64 * heads) // heads
    wanted = 2 * layers * kv_heads * head_dim * 2 * tokens
    weights = sum(p.stat().st_size for p in model_dir.glob("*.safetensors"))
    room = max(available_bytes - weights, 0) // 3
    return max(1, math.ceil(min(wanted, room) / GiB))


def lora_rank(adapter: Path) -> int:
    """The smallest rank vLLM accepts that holds the adapter's ``r``."""
    config = json.loads((adapter / "adapter_config.json").read_text())
    rank = int(config.get("r") or 8)
    return next((r for r in LORA_RANKS if r >= rank), LORA_RANKS[-1])


def _config(model_dir: Path) -> dict:
    path = model_dir / "config.json"
    config = json.loads(path.read_text()) if path.is_file() else {}
    return {**config, **(config.get("text_config") or {})}
