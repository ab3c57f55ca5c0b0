"""``llm-installer check MODEL``: the family, requirements and fit of a model, without its weights."""

from __future__ import annotations

from typing import Annotated

import typer

from llm_installer.cli.common import run_command
from llm_installer.cli.options import ConfigOpt, JsonOpt, ModelArg, RevisionOpt
from llm_installer.console import Output
from llm_installer.settings import Settings


def check(
    model: ModelArg,
    revision: RevisionOpt = None,
    json: JsonOpt = False,
    config: ConfigOpt = None,
    base: Annotated[
        str | None, typer.Option(help="A PEFT adapter's base model (Hub id or folder).")
    ] = None,
) -> None:
    """Check a model's family, requirements and whether this machine can run it (no weights)."""
    from llm_installer.check.checker import run_check
    from llm_installer.check.report import render_report

    def body(settings: Settings, output: Output) -> None:
        result = run_check(model, revision=revision, settings=settings, output=output, base=base)
        output.result(result.profile, render_report(result.profile))

    run_command(json, config, body)
