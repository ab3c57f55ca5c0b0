"""``llm-installer base build [FLAVOUR]``: the shared base images (OS + Python + torch)."""

from __future__ import annotations

from typing import Annotated

import typer

from llm_installer.cli.common import run_command
from llm_installer.cli.options import ConfigOpt
from llm_installer.console import Output
from llm_installer.settings import Settings

HELP = "Shared base images (OS + Python + torch)."


def build(
    flavour: Annotated[
        str,
        typer.Argument(
            help="cpu, cuda or cuda-devel (the CUDA line for this host's driver and GPUs), or a row of base-images/table.json."
        ),
    ] = "cpu",
    rootfs: Annotated[
        bool, typer.Option("--rootfs", help="Make the OS layer with debootstrap: no registry.")
    ] = False,
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Build even when the image exists.")
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Build a base image from the table: cpu, cuda or cuda-devel."""
    from llm_installer.build.base_images import ensure_base_image
    from llm_installer.build.base_images import flavour_for_this_host as find_flavour
    from llm_installer.docker_engine import connect

    def body(settings: Settings, output: Output) -> None:
        row = find_flavour(flavour)
        client = connect()
        log_path = settings.logs_path / "base-images.log"
        built = ensure_base_image(
            client, row, rootfs=rootfs, console=output.out, log_path=log_path, rebuild=rebuild
        )
        tag = built if isinstance(built, str) else built.tag
        output.info(f"Base image ready: [bold]{tag}[/] (build log: {log_path})")

    run_command(False, config, body)
