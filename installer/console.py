"""All CLI output goes through one Output object: human text with rich, or JSON with --json."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console, RenderableType
from rich.table import Table


class Output:
    """Prints results, tables, errors and hints; in JSON mode only the result reaches stdout."""

    def __init__(self, *, json_mode: bool = False) -> None:
        self.json_mode = json_mode
        self.out = Console(highlight=False, soft_wrap=True)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)

    def result(self, data: Any, renderable: RenderableType | None = None) -> None:
        """The command's result: JSON in --json mode, else the renderable (or data as text)."""
        if self.json_mode:
            sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")
        else:
            self.out.print(renderable if renderable is not None else data)

    def info(self, message: str) -> None:
        (self.err if self.json_mode else self.out).print(message)

    def warning(self, message: str) -> None:
        self.err.print(f"[yellow]Warning:[/] {message}")

    def error(self, message: str, hint: str = "") -> None:
        self.err.print(f"[bold red]Error:[/] {message}")
        if hint:
            self.hint(hint)

    def hint(self, message: str) -> None:
        self.err.print(f"[cyan]Hint:[/] {message}")

    def error_json(self, message: str, hint: str, exit_code: int, kind: str) -> None:
        payload = {
            "error": {"type": kind, "message": message, "hint": hint, "exit_code": exit_code}
        }
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")


def simple_table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")  # never cut an id, an image tag or a URL
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    return table
