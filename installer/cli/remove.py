"""``llm-installer remove MODEL``: delete an installed model, its folder and its image."""

from __future__ import annotations

from llm_installer.cli.common import run_command
from llm_installer.cli.options import (
    AssumeYesOpt,
    ConfigOpt,
    InstalledModelArg,
)


def remove(model: InstalledModelArg, yes: AssumeYesOpt = False, config: ConfigOpt = None) -> None:
    """Delete an installed model: its folder and its image (asks first)."""
    from llm_installer.run.lifecycle import remove_model

    run_command(False, config, lambda s, o: remove_model(model, s, o, yes=yes))
