"""GET /: the web UI. Public: the page itself asks for the API key when one is set."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from llm_runtime.ui import index_html

router = APIRouter()


@router.get("/", include_in_schema=False)
async def web_ui() -> HTMLResponse:
    return HTMLResponse(index_html(), headers={"Cache-Control": "no-cache"})
