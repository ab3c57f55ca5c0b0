"""``llm-installer train MODEL``: fine-tune an installed model (LoRA/QLoRA, or --method full)."""

from __future__ import annotations

from typing import Annotated

import typer

from llm_installer.cli.common import run_command
from llm_installer.cli.options import (
    ConfigOpt,
    ForceOpt,
    InstalledModelArg,
    RunDeviceOpt,
)
from llm_installer.run.train_plan import TENSORBOARD_PORT

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
