"""The CLI's last net: an exception nobody foresaw is a message and exit 70, never a traceback."""

from __future__ import annotations

import json
import logging
from logging.handlers import RotatingFileHandler
from pathlib import Path

import typer
from typer.testing import CliRunner

from llm_installer.cli.common import UNEXPECTED_EXIT, run_command

app = typer.Typer()


@app.command()
def boom(json_mode: bool = typer.Option(False, "--json")) -> None:
    def body(settings, output) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    run_command(json_mode, None, body)


def test_unexpected_error_is_a_message(llm_home):
    result = CliRunner().invoke(app, [])
    assert result.exit_code == UNEXPECTED_EXIT
    assert "Unexpected error: RecursionError" in result.output and "This is a bug" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    handlers = logging.getLogger("llm_installer").handlers  # set up once per process
    log = Path(next(h for h in handlers if isinstance(h, RotatingFileHandler)).baseFilename)
    assert "Traceback" in log.read_text() and "RecursionError" in log.read_text()  # kept in the log


def test_unexpected_error_in_json_mode_is_json(llm_home):
    result = CliRunner().invoke(app, ["--json"])
    assert result.exit_code == UNEXPECTED_EXIT
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "UnexpectedError" and error["exit_code"] == UNEXPECTED_EXIT


def test_debug_variable_shows_the_traceback(llm_home, monkeypatch):
    monkeypatch.setenv("LLM_INSTALLER_DEBUG", "1")
    result = CliRunner().invoke(app, [])
    assert isinstance(result.exception, RecursionError)
