"""The gateway of a multi-model stack: one OpenAI-style endpoint in front of the model services.

A request goes to the service whose model its JSON ``model`` field names (the Hub id, the
model's folder name or its service name); ``GET /v1/models`` lists every model of the stack.
``GET /`` is one web UI for the stack: a model picker around each model's own UI, which it
reaches under ``/m/<name>/``; every native endpoint of a model is routed there too
(``/m/<name>/info``, ``/generate``, SSE, multipart uploads, the ``/ws`` WebSocket).
Standard library only: it runs in one of the stack's own model images, mounted read-only, and
those images carry no HTTP client library (and registries may be unreachable, so no image pull).

Routes come from LLM_GATEWAY_ROUTES: a JSON list of {"id", "aliases", "url"}. Like the model
servers, it answers only Host names that cannot be a DNS-rebinding attack (localhost, IP
literals, dotless names, LLM_GATEWAY_HOST and LLM_GATEWAY_ALLOWED_HOSTS) and browser Origins of
its own page or LLM_GATEWAY_CORS_ORIGINS (both comma-separated), with the model servers' code.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

try:  # beside this file in a stack folder (`llm-installer compose` copies it there)
    from host_policy import HostPolicy
except ImportError:  # the source tree, or a model image's runtime
    from llm_runtime.host_policy import HostPolicy

PORT = 8080
UPSTREAM_TIMEOUT_S = 600  # a long generation on a CPU may take minutes
FORWARDED_HEADERS = ("authorization", "content-type", "accept")
MODEL_PREFIX = "/m/"  # /m/<name>/<path>: a model's native endpoints and its own web UI
UI_FILE = Path(__file__).with_name("gateway_ui.html")
STARTED_AT = int(time.time())


def load_routes() -> list[dict]:
    routes = json.loads(os.environ.get("LLM_GATEWAY_ROUTES") or "[]")
    if not routes:
        sys.exit("LLM_GATEWAY_ROUTES is empty: regenerate the stack with `llm-installer compose`.")
    return routes


ROUTES = load_routes()


def _names(variable: str) -> list[str]:
    return [n.strip() for n in os.environ.get(variable, "").split(",") if n.strip()]


POLICY = HostPolicy(
    os.environ.get("LLM_GATEWAY_HOST", "127.0.0.1"),
    _names("LLM_GATEWAY_ALLOWED_HOSTS"),
    _names("LLM_GATEWAY_CORS_ORIGINS"),
)


def find_route(model: str) -> dict | None:
    wanted = model.lower()
    for route in ROUTES:
        if wanted in (name.lower() for name in (route["id"], *route["aliases"])):
            return route
    return None


def route_path(route: dict) -> str:
    """Where a model's own UI and endpoints are on the gateway: /m/<its first alias>/."""
    return (
        f"{MODEL_PREFIX}{quote(route['aliases'][0] if route['aliases'] else route['id'], safe='')}/"
    )


def split_model_path(path: str) -> tuple[str, str] | None:
    """'/m/chat/info?x=1' -> ('chat', '/info?x=1'); None outside /m/."""
    if not path.startswith(MODEL_PREFIX):
        return None
    name, _, rest = path[len(MODEL_PREFIX) :].partition("/")
    return unquote(name), "/" + rest


def error_body(message: str, error_type: str, code: str, param: str | None = None) -> dict:
    """OpenAI's error shape, like the model servers', so clients raise the same exceptions."""
    return {"error": {"message": message, "type": error_type, "code": code, "param": param}}


class Gateway(BaseHTTPRequestHandler):
    server_version = "llm-installer-gateway"

    def do_GET(self) -> None:
        if self.refused() or self.to_model():
            return
        path = urlsplit(self.path).path
        if path == "/":
            self.send_page()
        elif path == "/health":
            routes = [{"id": r["id"], "path": route_path(r)} for r in ROUTES]
            self.send_json(
                200, {"status": "ok", "models": [r["id"] for r in ROUTES], "routes": routes}
            )
        elif path == "/v1/models":
            if self.authorized():
                self.send_json(
                    200, {"object": "list", "data": [self.model_card(r) for r in ROUTES]}
                )
        else:
            self.send_json(
                404,
                error_body(
                    f"No route {path} on the gateway. {self.usage()}",
                    "invalid_request_error",
                    "not_found",
                ),
            )

    def do_POST(self) -> None:
        if self.refused() or self.to_model():
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if not self.authorized():
            return
        model = self.requested_model(body)
        if model is None:
            return
        route = find_route(model)
        if route is None:
            available = ", ".join(r["id"] for r in ROUTES)
            message = f"The model {model!r} is not in this stack. Available models: {available}."
            self.send_json(
                404, error_body(message, "invalid_request_error", "model_not_found", "model")
            )
            return
        self.forward(route, body)

    def refused(self) -> bool:
        """Answer 400/403 when the Host or the browser Origin is not allowed (DNS rebinding,
        another site's page); every route, the model routes and WebSockets included."""
        refusal = POLICY.refusal(
            self.headers.get("Host"),
            self.headers.get("Origin"),
            hosts_hint="add {name} to LLM_GATEWAY_ALLOWED_HOSTS in the gateway's environment",
            origins_hint="add it to LLM_GATEWAY_CORS_ORIGINS in the gateway's environment",
        )
        if refusal is None:
            return False
        status, code, message = refusal
        self.send_json(status, error_body(message, "invalid_request_error", code))
        self.close_connection = True
        return True

    def requested_model(self, body: bytes) -> str | None:
        """The request's "model" field; None after answering 400 when there is none."""
        try:
            model = json.loads(body or b"{}").get("model")
        except (ValueError, AttributeError):
            model = None
        if isinstance(model, str) and model:
            return model
        message = f'The gateway needs a JSON body with a "model" field. {self.usage()}'
        self.send_json(400, error_body(message, "invalid_request_error", "model_required", "model"))
        return None

    def to_model(self) -> bool:
        """Route /m/<name>/... to that model (plain requests, or a WebSocket tunnel)."""
        found = split_model_path(self.path)
        if found is None:
            return False
        name, path = found
        route = find_route(name)
        if route is None:
            available = ", ".join(route_path(r) for r in ROUTES)
            self.send_json(
                404,
                error_body(
                    f"No model {name!r} in this stack: {available}.",
                    "invalid_request_error",
                    "model_not_found",
                ),
            )
        elif self.headers.get("Upgrade", "").lower() == "websocket":
            self.tunnel(route, path)
        else:
            body = (
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.command == "POST"
                else None
            )
            self.forward(route, body, path=path)
        return True

    def tunnel(self, route: dict, path: str) -> None:
        """A WebSocket: replay the upgrade request upstream, then relay bytes both ways."""
        upstream = urlsplit(route["url"])
        try:
            remote = socket.create_connection((upstream.hostname, upstream.port), timeout=10)
        except OSError as exc:
            self.send_json(
                503,
                error_body(
                    f"The model {route['id']} does not answer yet ({exc}).",
                    "server_error",
                    "model_unavailable",
                ),
            )
            return
        remote.settimeout(None)
        head = [f"{self.command} {path} HTTP/1.1", f"Host: {upstream.netloc}"]
        head += [
            f"{k}: {v}" for k, v in self.headers.items() if k.lower() not in self.replaced_headers()
        ]
        remote.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        pump = threading.Thread(target=relay, args=(remote, self.connection), daemon=True)
        pump.start()
        relay(self.connection, remote)
        pump.join()
        remote.close()
        self.close_connection = True

    def replaced_headers(self) -> set[str]:
        """Headers the tunnel does not copy: Host (the model's own), and Origin when it is this
        gateway's page (the model checks Origin against its Host; another origin is passed on
        and refused there)."""
        origin = self.headers.get("Origin")
        own = origin and urlsplit(origin).netloc.lower() == (self.headers.get("Host") or "").lower()
        return {"host", "origin"} if own else {"host"}

    def send_page(self) -> None:
        payload = (
            UI_FILE.read_bytes()
            if UI_FILE.is_file()
            else b"<p>gateway_ui.html is missing beside gateway.py</p>"
        )
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def forward(self, route: dict, body: bytes | None, *, path: str | None = None) -> None:
        """Send the request to the model's service; copy the answer back, streamed as it comes."""
        upstream = urlsplit(route["url"])
        connection = http.client.HTTPConnection(
            upstream.hostname, upstream.port, timeout=UPSTREAM_TIMEOUT_S
        )
        headers = {k: v for k, v in self.headers.items() if k.lower() in FORWARDED_HEADERS}
        try:
            connection.request(self.command, path or self.path, body=body, headers=headers)
            answer = connection.getresponse()
        except OSError as exc:
            message = f"The model {route['id']} does not answer yet ({exc}); it may still be loading: try again shortly."
            self.send_json(503, error_body(message, "server_error", "model_unavailable"))
            return
        self.send_response(answer.status)
        for name in ("Content-Type", "Cache-Control"):
            if answer.getheader(name):
                self.send_header(name, answer.getheader(name))
        self.end_headers()  # no Content-Length: the answer ends when the connection closes
        while chunk := answer.read1(65536):
            self.wfile.write(chunk)
            self.wfile.flush()
        connection.close()

    def authorized(self) -> bool:
        key = os.environ.get("LLM_API_KEY")
        if not key or self.headers.get("Authorization") == f"Bearer {key}":
            return True
        message = "Missing or wrong API key: send the header Authorization: Bearer <LLM_API_KEY>."
        self.send_json(401, error_body(message, "invalid_request_error", "invalid_api_key"))
        return False

    @staticmethod
    def model_card(route: dict) -> dict:
        return {
            "id": route["id"],
            "object": "model",
            "created": STARTED_AT,
            "owned_by": "llm-installer",
        }

    @staticmethod
    def usage() -> str:
        return (
            "It serves GET /v1/models and POST /v1/... with a JSON body naming one of: "
            + ", ".join(r["id"] for r in ROUTES)
        )

    def send_json(self, status: int, data: dict) -> None:
        payload = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def relay(source: socket.socket, target: socket.socket) -> None:
    """Copy bytes until source closes, then half-close target (the other side may still talk)."""
    try:
        while chunk := source.recv(65536):
            target.sendall(chunk)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)


def main() -> None:
    server = ThreadingHTTPServer(
        ("0.0.0.0", int(os.environ.get("LLM_GATEWAY_PORT", PORT))), Gateway
    )
    print(f"gateway on :{server.server_port} for {', '.join(r['id'] for r in ROUTES)}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
