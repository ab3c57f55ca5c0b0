"""The ``llm-installer`` command line: one module per command, all registered here, in one table.

Each command module parses its options and calls one library function of a stage (check/, build/,
run/, deploy/); ``common.run_command`` turns every error into a message and an exit code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from llm_installer import __version__
from llm_installer.cli import (
    base,
    check,
    compose,
    config,
    deploy,
    install,
    list_models,
    remove,
    start,
    stop,
    train,
)
from llm_installer.cli.common import PASS_THROUGH

app = typer.Typer(
    name="llm-installer",
    help="Check, install, serve and fine-tune Hugging Face models in Docker.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: wraps at any width, never cuts option names
)
base_app = typer.Typer(help=base.HELP, no_args_is_help=True)

# (name, function, click context settings), in the order ``--help`` lists them.
COMMANDS: tuple[tuple[str, Callable[..., None], dict[str, Any]], ...] = (
    ("check", check.check, {}),
    ("install", install.install, {}),
    ("list", list_models.list_models, {}),
    ("config", config.show_config, {}),
    ("start", start.start, PASS_THROUGH),
    ("stop", stop.stop, {}),
    ("remove", remove.remove, {}),
    ("train", train.train, PASS_THROUGH),
    ("compose", compose.compose, {}),
    *((name, function, {}) for name, function in deploy.COMMANDS),  # lock … k8s
)
Command = tuple[str, Callable[..., None], dict[str, Any]]
GROUPS: tuple[tuple[str, typer.Typer, tuple[Command, ...]], ...] = (
    ("base", base_app, (("build", base.build, {}),)),
)


def _version(value: bool) -> None:
    if value:
        print(f"llm-installer {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version."
    ),
) -> None:
    """Check, install, serve and fine-tune Hugging Face models in Docker."""


def _register() -> None:
    """Every command and command group, from the tables above: the one place commands are added."""
    for name, function, settings in COMMANDS:
        app.command(name=name, context_settings=settings or None)(function)
    for group, group_app, commands in GROUPS:
        for name, function, settings in commands:
            group_app.command(name=name, context_settings=settings or None)(function)
        app.add_typer(group_app, name=group)


_register()


def main() -> None:
    app(prog_name="llm-installer")


if __name__ == "__main__":
    main()
