"""CLI options declared once, as Annotated types shared by the commands."""

from __future__ import annotations

from typing import Annotated

import typer

ModelArg = Annotated[str, typer.Argument(help="Hub model id (owner/name) or a local model folder.")]
RevisionOpt = Annotated[
    str | None, typer.Option("--revision", "-r", help="Branch, tag or commit on the Hub.")
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print machine-readable JSON instead of a report.")
]
ConfigOpt = Annotated[
    str | None,
    typer.Option("--config", help="Path to config.yaml (default: see `llm-installer config`)."),
]
