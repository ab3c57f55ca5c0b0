"""README's exit-code table lists every code the CLI can return, and only those (issue 14)."""

from __future__ import annotations

import importlib
import pkgutil
import re

import llm_installer
from llm_installer.cli.common import UNEXPECTED_EXIT
from llm_installer.errors import InstallerError
from llm_installer.settings import PROJECT_DIR

# Codes that come from no InstallerError: click's usage errors, Ctrl+C, the last-resort net.
OTHER_CODES = {2: "click usage error", 130: "Ctrl+C", UNEXPECTED_EXIT: "unexpected error"}


def defined_codes() -> dict[int, list[str]]:
    """Every exit code an InstallerError subclass carries, with the classes that carry it."""
    for module in pkgutil.walk_packages(llm_installer.__path__, "llm_installer."):
        if not module.name.endswith("__main__"):  # that one runs the CLI
            importlib.import_module(module.name)
    codes: dict[int, list[str]] = {}
    pending = [InstallerError]
    while pending:
        error = pending.pop()
        codes.setdefault(error.exit_code, []).append(error.__name__)
        pending.extend(error.__subclasses__())
    for code, what in OTHER_CODES.items():
        codes.setdefault(code, []).append(what)
    return codes


def readme_codes() -> set[int]:
    """The codes in README's `| exit | error |` table; a row may name a range (30-40)."""
    text = (PROJECT_DIR / "README.md").read_text()
    table = text.split("| exit | error |", 1)[1].split("\n\n", 1)[0]
    codes: set[int] = set()
    for first, last in re.findall(r"^\| (\d+)(?:-(\d+))? \|", table, flags=re.MULTILINE):
        codes.update(range(int(first), int(last or first) + 1))
    return codes


def test_every_exit_code_is_in_the_readme():
    missing = {code: names for code, names in defined_codes().items() if code not in readme_codes()}
    assert not missing, f"exit codes missing from README's table: {missing}"


def test_the_readme_lists_no_code_the_cli_cannot_return():
    stale = readme_codes() - set(defined_codes())
    assert not stale, f"README lists exit codes nothing returns: {sorted(stale)}"
