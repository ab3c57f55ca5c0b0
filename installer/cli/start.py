"""``llm-installer start MODEL``: serve an installed model (API + web UI); arguments after -- go to the runtime."""

from __future__ import annotations

import typer

from llm_installer.cli.common import run_command
from llm_installer.cli.options import (
    ApiKeyOpt,
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
