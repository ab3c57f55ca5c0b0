"""Commands that run installed models: start, train, stop, remove.

``register`` is called by ``llm_installer.cli``; each command parses, calls a library function
in ``llm_installer.run.start``, ``train_run`` or ``lifecycle`` and lets ``run_command`` turn errors
into messages.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from llm_installer.cli.options import (
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
    WeightsOpt,
)
from llm_installer.console import Output
from llm_installer.run.train_plan import TENSORBOARD_PORT
from llm_installer.settings import Settings

PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}

DataOpt = Annotated[
    str | None,
    typer.Option(
        "--data",
        help="Training data: a file, a folder, a quoted glob, a comma list, or name:split.",
    ),
]
TensorBoardHostOpt = Annotated[
    str, typer.Option("--host", help="Address to publish TensorBoard on (0.0.0.0: the network).")
]
TensorBoardPortOpt = Annotated[
    int, typer.Option("--tensorboard-port", help="Port on this machine for TensorBoard.")
]
NoTensorBoardOpt = Annotated[
    bool, typer.Option("--no-tensorboard", help="Do not start TensorBoard beside training.")
]
TensorBoardOnlyOpt = Annotated[
    bool,
    typer.Option(
        "--tensorboard-only", help="Only show past runs' graphs: --tensorboard-only [PORT]."
    ),
]
TrainDetachOpt = Annotated[
    bool,
    typer.Option("--detach", "-d", help="Train in the background; stop (and save) with `stop`."),
]

RunCommand = Callable[[bool, "str | None", Callable[[Settings, Output], None]], None]


def register(app: typer.Typer, run_command: RunCommand) -> None:
    """Add start, train, stop and remove to ``app``."""

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
        weights: WeightsOpt = "auto",
        config: ConfigOpt = None,
    ) -> None:
        """Serve an installed model (API + web UI); arguments after -- go to the runtime."""
        from llm_installer.run.start import start_model
        from llm_installer.run.start_plan import StartOptions

        options = StartOptions(
            port=port, host=host, dtype=dtype, device=device, no_browser=no_browser,
            load_in_8bit=load_in_8bit, load_in_4bit=load_in_4bit, api_key=api_key or None,
            detach=detach, force=force, extra_args=tuple(ctx.args), weights=weights,
        )  # fmt: skip
        run_command(False, config, lambda s, o: start_model(model, options, s, o))

    @app.command()
    def stop(model: InstalledModelArg, config: ConfigOpt = None) -> None:
        """Stop a running model (its container, or its native server on macOS)."""
        from llm_installer.run.lifecycle import stop_model

        run_command(False, config, lambda s, o: _ignore(stop_model(model, s, o)))

    @app.command()
    def remove(
        model: InstalledModelArg, yes: AssumeYesOpt = False, config: ConfigOpt = None
    ) -> None:
        """Delete an installed model: its folder and its image (asks first)."""
        from llm_installer.run.lifecycle import remove_model

        run_command(False, config, lambda s, o: remove_model(model, s, o, yes=yes))

    @app.command(context_settings=PASS_THROUGH)
    def train(
        ctx: typer.Context,
        model: InstalledModelArg,
        data: DataOpt = None,
        device: RunDeviceOpt = None,
        host: TensorBoardHostOpt = "127.0.0.1",
        tensorboard_port: TensorBoardPortOpt = TENSORBOARD_PORT,
        no_tensorboard: NoTensorBoardOpt = False,
        tensorboard_only: TensorBoardOnlyOpt = False,
        detach: TrainDetachOpt = False,
        force: ForceOpt = False,
        config: ConfigOpt = None,
    ) -> None:
        """Fine-tune an installed model (LoRA/QLoRA); the adapter lands in lora/ and start loads it (--method full: the whole model in finetuned/, which start serves).

        Other options go to the trainer, e.g. --epochs 3, --max-steps 100, --method qlora, --mode fast, --resume (all: `python -m llm_runtime train --help` in the model's image).

        Ctrl+C saves a resumable checkpoint first. --tensorboard-only [PORT] shows past runs' graphs without training.
        """
        from llm_installer.run.train import train_model
        from llm_installer.run.train_plan import TrainOptions

        extra = list(ctx.args)
        if tensorboard_only and extra[:1] and extra[0].isdigit():  # --tensorboard-only PORT
            tensorboard_port = int(extra.pop(0))
        options = TrainOptions(
            data=data, device=device, host=host, tensorboard_port=tensorboard_port,
            tensorboard=not no_tensorboard, tensorboard_only=tensorboard_only, detach=detach,
            force=force, extra_args=tuple(extra),
        )  # fmt: skip
        run_command(False, config, lambda s, o: train_model(model, options, s, o))


def _ignore(_: Any) -> None:
    return None
