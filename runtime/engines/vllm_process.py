"""vLLM's OpenAI server as a child process on a private port: its arguments, start, wait, stop.

Our FastAPI front stays the only public server (routes, API key, UI, 429s); vLLM listens on
127.0.0.1 only. Its output goes to ``<logs>/vllm.log``; when it dies while loading, the last
lines of that log become the load error.
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from llm_runtime.errors import ModelLoadError

log = logging.getLogger("llm_runtime")
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
FATAL_MARK = b"Engine core initialization failed"
KEEP_ALIVE_S = 60  # the front closes connections idle this long…
SERVER_KEEP_ALIVE_S = 600  # …well before vLLM would
LOAD_TIMEOUT_S = float(os.environ.get("LLM_VLLM_LOAD_TIMEOUT", "1800"))


@dataclass(frozen=True)
class VllmLaunch:
    """Everything the child process is started with."""

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

    def arguments(self, port: int) -> list[str]:
        args = [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(self.model_dir), "--served-model-name", self.served_name,
            "--host", "127.0.0.1", "--port", str(port),
            "--max-num-seqs", str(self.max_num_seqs), "--dtype", self.dtype,
            "--structured-outputs-config", json.dumps(STRUCTURED_OUTPUTS),
            "--disable-uvicorn-access-log", "--uvicorn-log-level", "warning",
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

    def child_environment(self) -> dict[str, str]:
        """Our front keeps its connections to vLLM open (KEEP_ALIVE_S); vLLM must not close
        them first (its default 5 s would race the front's reuse of an idle one)."""
        keep = {"VLLM_HTTP_TIMEOUT_KEEP_ALIVE": str(SERVER_KEEP_ALIVE_S)}
        return {
            **keep,
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


class VllmProcess:
    """One running vLLM server; ``start`` blocks until it answers /health or has died."""

    def __init__(self, launch: VllmLaunch, log_path: Path) -> None:
        self.launch, self.log_path = launch, log_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        args = self.launch.arguments(self.port)
        log.info("Starting vLLM: %s", " ".join(args[1:]))
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # A process group of its own (stop() signals the whole group), in the front's session:
        # a session of its own would put vLLM in a scheduler autogroup of its own, which cost it
        # 4-5x its tokens/s beside busy clients on a 2-core machine (README, Engines).
        group = {"process_group": 0} if sys.version_info >= (3, 11) else {"preexec_fn": os.setpgrp}
        with self.log_path.open("ab") as sink:
            self.process = subprocess.Popen(
                args, stdout=sink, stderr=subprocess.STDOUT,
                env={**os.environ, **self.launch.child_environment()}, **group,
            )  # fmt: skip
        atexit.register(self.stop)  # also when the server stops while vLLM is still loading
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + LOAD_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._died():
                self.stop()
                raise ModelLoadError(f"vLLM could not load the model: {self.last_error()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise ModelLoadError(
            f"vLLM did not become ready in {LOAD_TIMEOUT_S:.0f} s: {self.last_error()}"
        )

    def _died(self) -> bool:
        """The process exited, or its engine failed (the API server lingers for minutes then)."""
        if self.process is not None and self.process.poll() is not None:
            return True
        try:
            with self.log_path.open("rb") as log_file:
                log_file.seek(max(0, self.log_path.stat().st_size - 4096))
                return FATAL_MARK in log_file.read()
        except OSError:
            return False

    def last_error(self, lines: int = 12) -> str:
        """The end of vLLM's log: the error line when there is one, else the last lines."""
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no vLLM log)"
        errors = [line for line in text if "Error" in line or "error:" in line]
        picked = errors[-3:] if errors else text[-lines:]
        return " | ".join(line.strip() for line in picked)[-2000:]

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is None or not self.alive():
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
