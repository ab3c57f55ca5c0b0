"""The web UI: one HTML file (inline CSS and JS, no network dependencies) served at GET /."""

from __future__ import annotations

from functools import cache
from importlib.resources import files


@cache
def index_html() -> str:
    return files(__name__).joinpath("index.html").read_text(encoding="utf-8")
