"""The runtime's own parser asked about a serve/train command line before anything starts.

``start -- …`` and ``train -- …`` pass options through to the runtime; a wrong one would only
show up in the container's log. ``llm_runtime.cli.argument_error`` (argparse, no model code, no
torch) says what the runtime would answer, so the host refuses the command line itself.
"""

from __future__ import annotations

from collections.abc import Sequence

from llm_installer.errors import InstallerError
from llm_runtime.cli import argument_error
from llm_runtime.contract import TRANSFORMERS


class RuntimeArgumentError(InstallerError):
    exit_code = 2
    hint = (
        "Fix the options after `--`: `python -m llm_runtime serve --help` lists the server's, "
        "`python -m llm_runtime train --help` the trainer's."
    )


def runtime_argv(command: Sequence[str]) -> list[str]:
    """What follows ``python -m llm_runtime`` in a container or native command."""
    command = list(command)
    return command[command.index("llm_runtime") + 1 :] if "llm_runtime" in command else command


def refuse_unparsable(command: Sequence[str], engine: str | None) -> None:
    """Raise RuntimeArgumentError when the runtime would refuse ``command`` on ``engine``."""
    problem = argument_error(runtime_argv(command), engine or TRANSFORMERS)
    if problem:
        raise RuntimeArgumentError(f"The model's runtime would refuse this command line: {problem}")
