"""Command line: `python -m llm_runtime serve --model DIR ...` (and `train ...`)."""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, cast

from llm_runtime.contract import FRONT_ENGINES, TRANSFORMERS, VLLM
from llm_runtime.values import (
    DEFAULT_MAX_BODY_MB,
    DEFAULT_PREFIX_CACHE_MB,
    LoadSettings,
    ServeConfig,
)

Engine = Literal["transformers", "vllm"]
Quantization = Literal["8bit", "4bit"] | None
ENGINES = ("transformers", "vllm")

API_KEY_ENV = "LLM_API_KEY"
ALLOWED_HOSTS_ENV = "LLM_ALLOWED_HOSTS"
CORS_ENV = "LLM_CORS_ORIGINS"
log = logging.getLogger("llm_runtime")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m llm_runtime")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("train", help="fine-tune a LoRA/QLoRA adapter (train --help)")
    serve = commands.add_parser("serve", help="serve a model folder over HTTP")
    serve.add_argument("--model", type=Path, default=Path("/model"), help="model folder")
    serve.add_argument("--lora", type=Path, help="PEFT adapter folder (default: /lora if mounted)")
    serve.add_argument("--host", default="127.0.0.1", help="bind address (0.0.0.0 in images)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--dtype", choices=["auto", "float16", "bfloat16", "float32"], default="auto"
    )
    serve.add_argument("--device", choices=["auto", "cuda", "mps", "cpu"], default="auto")
    quant = serve.add_mutually_exclusive_group()
    quant.add_argument("--load-in-8bit", action="store_true", help="bitsandbytes 8-bit (CUDA)")
    quant.add_argument("--load-in-4bit", action="store_true", help="bitsandbytes 4-bit (CUDA)")
    serve.add_argument("--api-key", default=os.environ.get(API_KEY_ENV), help=f"or ${API_KEY_ENV}")
    serve.add_argument("--max-concurrency", type=_positive, default=16, help="largest batch")
    serve.add_argument("--max-queue", type=_positive, default=64, help="waiting requests")
    serve.add_argument(
        "--batch-window-ms",
        type=float,
        default=20.0,
        help="longest wait for the last batch's clients to return (a lone client never waits)",
    )
    serve.add_argument("--threads", type=_positive, help="CPU threads for torch (default: all)")
    serve.add_argument(
        "--batching",
        choices=["auto", "step", "generate"],
        default="auto",
        help="step: requests join the running batch at the next token (plain KV caches); "
        "generate: one transformers generate call per batch (any model); auto: step if possible",
    )
    serve.add_argument(
        "--prefix-cache-mb",
        type=_non_negative,
        default=DEFAULT_PREFIX_CACHE_MB,
        help="KV states of recent prompts kept for prompts that start the same way "
        "(step batching; 0: off)",
    )
    serve.add_argument(
        "--max-body-mb",
        type=_positive,
        default=DEFAULT_MAX_BODY_MB,
        help="largest request body or WebSocket message in MiB (larger ones get 413)",
    )
    serve.add_argument(
        "--allowed-hosts",
        default=os.environ.get(ALLOWED_HOSTS_ENV, ""),
        help="comma-separated extra Host names to answer ('*': any); localhost, IP addresses, "
        f"dotless names and the bound host are always allowed (or ${ALLOWED_HOSTS_ENV})",
    )
    serve.add_argument(
        "--cors-origins",
        default=os.environ.get(CORS_ENV, ""),
        help=f"comma-separated origins allowed to call the API from a browser (or ${CORS_ENV}); "
        "default: none (CORS off)",
    )
    serve.add_argument(
        "--engine",
        choices=["auto", "transformers", "vllm"],
        default="auto",
        help="what generates: auto takes model_info.json's engine (transformers without one)",
    )
    serve.add_argument("--logs-dir", type=Path, default=Path("logs"))
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    return parser


def config_from_args(args: argparse.Namespace, engine_args: list[str] | None = None) -> ServeConfig:
    quantization: Quantization = (
        "8bit" if args.load_in_8bit else "4bit" if args.load_in_4bit else None
    )
    return ServeConfig(
        model_dir=args.model,
        host=args.host,
        port=args.port,
        api_key=args.api_key or None,
        logs_dir=args.logs_dir,
        log_level=args.log_level,
        max_body_bytes=args.max_body_mb * 1024 * 1024,
        allowed_hosts=_names(args.allowed_hosts),
        cors_origins=_names(args.cors_origins),
        load=LoadSettings(
            device=args.device,
            dtype=args.dtype,
            quantization=quantization,
            lora_dir=args.lora,
            max_batch_size=args.max_concurrency,
            max_queue=args.max_queue,
            batch_window_ms=args.batch_window_ms,
            threads=args.threads,
            batching=args.batching,
            prefix_cache_mb=args.prefix_cache_mb,
            engine=resolve_engine(args.model, args.engine),
            engine_args=tuple(engine_args or ()),
            logs_dir=args.logs_dir,
        ),
    )


def resolve_engine(model_dir: Path, requested: str) -> Engine:
    """--engine, else the front engine for model_info.json's ``engine`` (contract.FRONT_ENGINES:
    llama.cpp runs its GGUF handler under the transformers front), else transformers.
    ModelInfoError when that file is unusable or names an engine this runtime does not know."""
    if requested != "auto":
        return cast(Engine, requested)
    from llm_runtime.model_info import ModelInfoError, model_info_path, read_model_info

    path = model_info_path(model_dir) if model_dir.is_dir() else None
    engine = read_model_info(path).engine if path else TRANSFORMERS
    front = FRONT_ENGINES.get(engine)
    if front is None:
        known = ", ".join(FRONT_ENGINES)
        raise ModelInfoError(
            f"{path} names the engine {engine!r}; this llm_runtime runs {known}. "
            "Reinstall the model (`llm-installer install MODEL --yes`) to rewrite it."
        )
    return cast(Engine, front)


def serve(config: ServeConfig) -> None:
    """Run the server until interrupted; the model loads while it already answers /health."""
    import uvicorn

    from llm_runtime.app import create_app
    from llm_runtime.logs import setup_logging

    log_path = setup_logging(config.logs_dir, config.log_level, (config.api_key or "",))
    log.info("Starting API server (logs in %s)", log_path)
    if not config.model_dir.is_dir():
        log.error("Error: model folder %s not found", config.model_dir)
        raise SystemExit(1)
    log.info("Server running on http://%s:%d", config.host, config.port)
    uvicorn.run(
        create_app(config),
        host=config.host,
        port=config.port,
        log_config=None,
        ws="websockets-sansio",
        ws_max_size=config.max_body_bytes,
        timeout_graceful_shutdown=5,
    )


def parse_serve(argv: Sequence[str]) -> ServeConfig:
    """``serve``'s command line as the server reads it (the host's tests parse every argument
    list it writes with this): another engine's flags pass through to vLLM only; anything else
    unknown or ill-typed exits 2 with argparse's message."""
    from llm_runtime.model_info import ModelInfoError

    parser = build_parser()
    args, extra = parser.parse_known_args(list(argv))
    if args.command != "serve":
        parser.error(f"{args.command} takes its own options: python -m llm_runtime train --help")
    try:
        config = config_from_args(args, [a for a in extra if a != "--"])
    except ModelInfoError as exc:  # model_info.json unreadable or of another schema
        parser.exit(2, f"Error: {exc}\n")
    if extra and config.load.engine != VLLM:
        parser.error(f"unrecognized arguments: {' '.join(extra)} (engine flags need --engine vllm)")
    return config


def parse_train(argv: Sequence[str]) -> argparse.Namespace:
    """``train``'s command line, parsed by the trainer's own parser (exits 2 when it is wrong)."""
    from llm_runtime.training.cli import build_parser as train_parser

    return train_parser().parse_args(list(argv))


def argument_error(argv: Sequence[str], engine: str = TRANSFORMERS) -> str | None:
    """What the runtime would answer to this ``serve …``/``train …`` argument list on ``engine``,
    or None when it parses: the host asks before it starts anything (no model is read)."""
    args = list(argv)
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            if args[:1] == ["train"]:
                parse_train(args[1:])
            else:
                front = FRONT_ENGINES.get(engine, engine)  # llama.cpp: the transformers front
                parse_serve([*args[:1], "--engine", front, *args[1:]])
    except SystemExit as exc:
        if exc.code:
            lines = stderr.getvalue().strip().splitlines() or [f"exit code {exc.code}"]
            return lines[-1].split("error: ", 1)[-1]
    return None


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["train"]:  # the trainer owns its options and its error messages
        from llm_runtime.training.cli import main as train

        raise SystemExit(train(argv[1:]))
    serve(parse_serve(argv))


def _at_least(least: int):
    """An argparse type: an integer no smaller than ``least``."""

    def parse(value: str) -> int:
        number = int(value)
        if number < least:
            raise argparse.ArgumentTypeError(f"must be at least {least}")
        return number

    return parse


_positive, _non_negative = _at_least(1), _at_least(0)


def _names(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())
