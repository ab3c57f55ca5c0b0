"""``llm-installer stop MODEL``: stop a running model (its container, or its native server)."""

from __future__ import annotations

from llm_installer.cli.common import ignore, run_command
from llm_installer.cli.options import (
    ConfigOpt,
    InstalledModelArg,
)


def stop(model: InstalledModelArg, config: ConfigOpt = None) -> None:
    """Stop a running model (its container, or its native server on macOS)."""
    from llm_installer.run.lifecycle import stop_model

    run_command(False, config, lambda s, o: ignore(stop_model(model, s, o)))
