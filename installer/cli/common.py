"""What every command shares: ``run_command`` (settings, logging, errors as messages) and helpers."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import click
import typer

from llm_installer.console import Output
from llm_installer.errors import InstallerError
from llm_installer.logs import setup_logging
from llm_installer.settings import Settings, load_settings

log = logging.getLogger("llm_installer")
UNEXPECTED_EXIT = 70  # sysexits' EX_SOFTWARE: a bug of ours
UNEXPECTED_HINT = "This is a bug: the traceback is in installer.log (logs_dir); LLM_INSTALLER_DEBUG=1 prints it here."
PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}

RunCommand = Callable[[bool, "str | None", Callable[[Settings, Output], None]], None]


def run_command(
    json_mode: bool, config_path: str | None, body: Callable[[Settings, Output], None]
) -> None:
    """Load settings, set up logging, run ``body``; turn every known error into a message."""
    output = Output(json_mode=json_mode)
    try:
        settings = load_settings(config_path)
        setup_logging(settings)
        body(settings, output)
    except InstallerError as exc:
        log.error("%s: %s", type(exc).__name__, exc.message)
        if os.environ.get("LLM_INSTALLER_DEBUG"):
            raise
        if json_mode:
            output.error_json(exc.message, exc.hint, exc.exit_code, type(exc).__name__)
        else:
            output.error(exc.message, exc.hint)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        output.error("Interrupted.")
        raise typer.Exit(130) from None
    except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
        raise  # typer's own exits and usage errors
    except Exception as exc:  # noqa: BLE001 - the last net: a message, never a traceback
        if os.environ.get("LLM_INSTALLER_DEBUG"):
            raise
        log.exception("Unexpected error")
        message = f"Unexpected error: {type(exc).__name__}: {str(exc)[:500]}"
        if json_mode:
            output.error_json(message, UNEXPECTED_HINT, UNEXPECTED_EXIT, "UnexpectedError")
        else:
            output.error(message, UNEXPECTED_HINT)
        raise typer.Exit(UNEXPECTED_EXIT) from None


def ignore(_: Any) -> None:
    """Drop a library function's return value (a command's body returns nothing)."""
    return None
