"""Commands that run installed models: start, stop, remove (and train, until it lands).

``register`` is called by ``llm_installer.cli``; each command parses, calls a library function
in ``llm_installer.start`` and lets ``run_command`` turn errors into messages.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from llm_installer.config import Settings
from llm_installer.console import Output
from llm_installer.options import (
    ApiKeyOpt,
    AssumeYesOpt,
    ConfigOpt,
    DetachOpt,
    DtypeOpt,
    ForceOpt,
    HostOpt,
    InstalledModelArg,
    LoadIn4bitOpt,
    LoadIn8bitOpt,
    NoBrowserOpt,
    PortOpt,
    RunDeviceOpt,
)

TRAINING_SOON = (
    "Training arrives soon: `llm-installer train` is not built yet. "
    "When it is, ./train.sh --data FILE fine-tunes this model and ./start.sh loads the adapter."
)
PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}

RunCommand = Callable[[bool, "str | None", Callable[[Settings, Output], None]], None]


def register(app: typer.Typer, run_command: RunCommand) -> None:
    """Add start, stop, remove and the hidden train command to ``app``."""

    @app.command(context_settings=PASS_THROUGH)
    def start(
        ctx: typer.Context,
        model: InstalledModelArg,
        port: PortOpt = 8000,
        host: HostOpt = "127.0.0.1",
        dtype: DtypeOpt = None,
        device: RunDeviceOpt = None,
        no_browser: NoBrowserOpt = False,
        load_in_8bit: LoadIn8bitOpt = False,
        load_in_4bit: LoadIn4bitOpt = False,
        api_key: ApiKeyOpt = None,
        detach: DetachOpt = False,
        force: ForceOpt = False,
        config: ConfigOpt = None,
    ) -> None:
        """Serve an installed model (API + web UI); arguments after -- go to the runtime."""
        from llm_installer.runargs import StartOptions
        from llm_installer.start import start_model

        options = StartOptions(
            port=port, host=host, dtype=dtype, device=device, no_browser=no_browser,
            load_in_8bit=load_in_8bit, load_in_4bit=load_in_4bit, api_key=api_key or None,
            detach=detach, force=force, extra_args=tuple(ctx.args),
        )  # fmt: skip
        run_command(False, config, lambda s, o: start_model(model, options, s, o))

    @app.command()
    def stop(model: InstalledModelArg, config: ConfigOpt = None) -> None:
        """Stop a running model (its container, or its native server on macOS)."""
        from llm_installer.start import stop_model

        run_command(False, config, lambda s, o: _ignore(stop_model(model, s, o)))

    @app.command()
    def remove(
        model: InstalledModelArg, yes: AssumeYesOpt = False, config: ConfigOpt = None
    ) -> None:
        """Delete an installed model: its folder and its image (asks first)."""
        from llm_installer.start import remove_model

        run_command(False, config, lambda s, o: remove_model(model, s, o, yes=yes))

    @app.command(hidden=True, context_settings=PASS_THROUGH)
    def train(ctx: typer.Context, model: InstalledModelArg, config: ConfigOpt = None) -> None:
        """Fine-tune an installed model (not built yet)."""
        run_command(False, config, lambda s, o: o.info(TRAINING_SOON))


def _ignore(_: Any) -> None:
    return None
