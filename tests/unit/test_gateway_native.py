"""The stack gateway's per-model routes: /health lists where each model is, GET / is the stack's
web UI, and /m/<name>/... reaches that model's native endpoints (query strings, multipart)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from llm_installer.settings import PROJECT_DIR


class Echo(BaseHTTPRequestHandler):
    """Echoes method, path, content type and body size: what the gateway forwarded."""

    def _answer(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        seen = {"method": self.command, "path": self.path, "type": self.headers.get("Content-Type")}
        payload = json.dumps({**seen, "size": len(body)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _answer

    def log_message(self, *args):
        pass


def test_native_paths_and_multipart_uploads_per_model():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    upstream = f"http://127.0.0.1:{server.server_port}"
    routes = [{"id": "org/speech", "aliases": ["speech"], "url": upstream}]
    env = {**os.environ, "LLM_GATEWAY_ROUTES": json.dumps(routes), "LLM_GATEWAY_PORT": str(port)}
    gateway = PROJECT_DIR / "compose" / "gateway.py"
    process = subprocess.Popen([sys.executable, str(gateway)], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        health = None
        for _ in range(200):
            try:
                health = httpx.get(f"{url}/health", timeout=1).json()
                break
            except httpx.TransportError:
                time.sleep(0.05)
        assert health["routes"] == [{"id": "org/speech", "path": "/m/speech/"}]
        page = httpx.get(f"{url}/")
        assert page.status_code == 200 and '<select id="model">' in page.text
        info = httpx.get(f"{url}/m/speech/info?x=1").json()
        assert (info["method"], info["path"]) == ("GET", "/info?x=1")
        audio = {"audio": ("a.wav", b"RIFF" + b"\0" * 996)}
        echoed = httpx.post(f"{url}/m/org%2Fspeech/generate", files=audio).json()
        assert echoed["path"] == "/generate" and echoed["type"].startswith("multipart/form-data")
        assert echoed["size"] > 1000
        missing = httpx.get(f"{url}/m/other/info")
        assert missing.status_code == 404 and "/m/speech/" in missing.text
    finally:
        process.terminate()
        process.wait(10)
        server.shutdown()
