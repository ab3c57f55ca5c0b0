"""The web UI authenticates its WebSocket with the API key as a subprotocol, so the key never
appears in a URL or the server log (real headless Chromium, real server)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser
CHROMIUM = os.environ.get("LLM_TEST_CHROMIUM", "/usr/bin/chromium")
KEY = "browser-key-4711"
TIMEOUT_MS = 60_000
# Before the page's scripts: the key as the UI stores it, and every socket the UI opens.
SETUP = f"""
localStorage.setItem("llm.apiKey", JSON.stringify("{KEY}"));
window.__sockets = [];
const RealWebSocket = window.WebSocket;
window.WebSocket = class extends RealWebSocket {{
  constructor(url, protocols) {{ super(url, protocols); window.__sockets.push([url, protocols || []]); }}
}};
"""


@pytest.fixture(scope="module")
def chromium():
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        if os.environ.get("CI") or os.environ.get("LLM_TEST_REQUIRE_BROWSER"):
            pytest.fail(f"CI needs Chromium at {CHROMIUM}: a skipped browser test proves nothing")
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        yield browser
        browser.close()


def test_chat_over_websocket_with_a_key_keeps_it_out_of_urls_and_logs(chromium, serve, llama_dir):
    server = serve("ui-key", llama_dir, api_key=KEY)
    page = chromium.new_page()
    try:
        page.add_init_script(SETUP)
        page.goto(server.url + "/")
        page.wait_for_selector("#panel-chat.active", timeout=TIMEOUT_MS)
        page.select_option("#transport", "ws")
        page.fill("#max-tokens", "8")
        page.fill("#chat-input", "hello there")
        page.click("#send")
        page.wait_for_selector("#send:not([disabled])", timeout=TIMEOUT_MS)
        assert page.locator(".msg.assistant .answer").last.text_content()
        assert not page.locator(".msg.assistant.error").count()
        sockets = page.evaluate("window.__sockets")
    finally:
        page.close()
    assert sockets and all(KEY not in url for url, _ in sockets)
    assert all(protocols[0] == "llm-runtime" for _, protocols in sockets)
    log = server.log_text()
    assert '"WebSocket /ws" [accepted]' in log and KEY not in log
