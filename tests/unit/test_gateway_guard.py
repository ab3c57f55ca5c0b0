"""The stack gateway refuses DNS-rebinding Host names and other sites' Origins with the model
servers' own HostPolicy, on every route (models, /m/<name>/, WebSockets), before any upstream."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from llm_installer.settings import PROJECT_DIR

REBINDING_HOST = "attacker.example.com"


class Upstream(BaseHTTPRequestHandler):
    """A model service that counts what reaches it."""

    seen: list[str] = []

    def _answer(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        Upstream.seen.append(self.path)
        payload = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _answer

    def log_message(self, *args):
        pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    """The gateway as a stack folder holds it (gateway.py + host_policy.py), run by a Python
    without site-packages (-S): the image's case, nothing but the standard library and the file."""
    folder = tmp_path_factory.mktemp("stack")
    shutil.copy(PROJECT_DIR / "compose" / "gateway.py", folder)
    shutil.copy(PROJECT_DIR / "runtime" / "host_policy.py", folder)
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    port = _free_port()
    routes = [
        {"id": "org/chat", "aliases": ["chat"], "url": f"http://127.0.0.1:{upstream.server_port}"}
    ]
    env = {
        "PATH": os.environ.get("PATH", ""),
        "LLM_GATEWAY_ROUTES": json.dumps(routes),
        "LLM_GATEWAY_PORT": str(port),
        "LLM_GATEWAY_ALLOWED_HOSTS": "models.example.org",
        "LLM_GATEWAY_CORS_ORIGINS": "https://app.example.org",
    }
    process = subprocess.Popen([sys.executable, "-S", str(folder / "gateway.py")], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                httpx.get(f"{url}/health", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, "the gateway exited at start"
                time.sleep(0.05)
        yield url, port
    finally:
        process.terminate()
        process.wait(10)
        upstream.shutdown()


CHAT = {"model": "org/chat", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/health"), ("GET", "/v1/models"), ("POST", "/v1/chat/completions"),
     ("GET", "/m/chat/info"), ("POST", "/m/chat/generate")],
)  # fmt: skip
def test_a_rebinding_host_is_refused_before_the_model(gateway, method, path):
    url, port = gateway
    before = len(Upstream.seen)
    answer = httpx.request(
        method, url + path, json=CHAT if method == "POST" else None,
        headers={"Host": f"{REBINDING_HOST}:{port}"},
    )  # fmt: skip
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "host_not_allowed"
    assert "LLM_GATEWAY_ALLOWED_HOSTS" in error["message"] and REBINDING_HOST in error["message"]
    assert len(Upstream.seen) == before


def test_a_rebinding_host_cannot_open_a_websocket(gateway):
    url, port = gateway
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            (
                "GET /m/chat/ws HTTP/1.1\r\n"
                f"Host: {REBINDING_HOST}:{port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        chunks = []
        while chunk := sock.recv(4096):  # headers and body may come in separate reads
            chunks.append(chunk)
        reply = b"".join(chunks).decode("latin-1")
    assert reply.startswith("HTTP/1.0 400") or reply.startswith("HTTP/1.1 400"), reply
    assert "host_not_allowed" in reply


def test_another_sites_page_is_refused_and_the_own_page_and_allowed_names_pass(gateway):
    url, port = gateway
    foreign = httpx.post(
        f"{url}/v1/chat/completions", json=CHAT, headers={"Origin": "https://evil.example"}
    )
    assert foreign.status_code == 403 and foreign.json()["error"]["code"] == "origin_not_allowed"
    own = httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers={"Origin": url})
    assert own.status_code == 200 and own.json() == {"ok": True}
    listed = httpx.post(
        f"{url}/m/chat/generate", json=CHAT, headers={"Origin": "https://app.example.org"}
    )
    assert listed.status_code == 200
    named = httpx.get(f"{url}/v1/models", headers={"Host": f"models.example.org:{port}"})
    assert named.status_code == 200 and named.json()["data"][0]["id"] == "org/chat"
    for local in ("localhost", "127.0.0.1", "gateway"):
        assert httpx.get(f"{url}/health", headers={"Host": f"{local}:{port}"}).status_code == 200
