"""GET /docs: the API reference as plain HTML built from the OpenAPI schema (no CDN scripts),
and the schema's error answers as the server gives them (400, not FastAPI's 422)."""

from __future__ import annotations

import html
import json

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from llm_runtime.schemas import GenerateBody

ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "code": {"type": ["string", "null"]},
                "param": {"type": ["string", "null"]},
            },
        }
    },
}
ERRORS = {
    "400": "Invalid request: the message names the field (validation errors are 400, never 422)",
    "401": "Missing or wrong API key (when the server has one)",
    "404": "Not served for the loaded model's family; the message lists what is",
    "413": "The body is larger than --max-body-mb",
    "415": "The body is not application/json (or multipart/form-data on upload routes)",
    "429": "The queue is full; retry after Retry-After seconds",
    "503": "The model is still loading (or failed to load); see GET /health/ready",
}
CSP = "default-src 'none'; style-src 'unsafe-inline'"
# Routes that read their body themselves (JSON or an upload): the JSON shape text models take.
READ_BY_HAND = {("/generate", "post"): GenerateBody}
GENERATE_TEXT = (
    "Text models: exactly one of `prompt` or `messages`, as below; unknown fields are a 400. "
    "Other families take their own fields (GET /info names them), as JSON or multipart uploads."
)
UPLOAD = {"multipart/form-data": {"schema": {"type": "object"}}}


def install(app: FastAPI) -> None:
    """Replace FastAPI's CDN-based /docs with a static page and fix the schema's errors."""
    plain_openapi = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = with_error_answers(plain_openapi())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(render(app.openapi()), headers={"Content-Security-Policy": CSP})


def with_error_answers(schema: dict) -> dict:
    """Every operation answers errors in the runtime's shape; 422 is never sent."""
    schema.setdefault("components", {}).setdefault("schemas", {})["ErrorBody"] = ERROR_SCHEMA
    ref = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    for (path, method), model in READ_BY_HAND.items():
        operation = schema.get("paths", {}).get(path, {}).get(method)
        if operation is not None:
            operation["requestBody"] = _body_of(model, schema)
            operation["description"] = GENERATE_TEXT
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            for status, text in ERRORS.items():
                responses.setdefault(status, {"description": text, "content": ref})
    schemas = schema["components"]["schemas"]
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    return schema


def _body_of(model, schema: dict) -> dict:
    """model's JSON schema as a request body (its $defs into components), uploads allowed."""
    found = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schema["components"]["schemas"].update(found.pop("$defs", {}))
    schema["components"]["schemas"][model.__name__] = found
    json_body = {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
    return {"required": True, "content": {"application/json": json_body, **UPLOAD}}


def render(schema: dict) -> str:
    """One section per path and method: summary, description, request body schema."""
    parts = [
        f"<h1>{html.escape(schema['info']['title'])} {html.escape(schema['info']['version'])}</h1>",
        '<p>The machine-readable schema: <a href="/openapi.json">/openapi.json</a>.</p>',
    ]
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            parts.append(_operation(path, method, operation, schema))
    body = "\n".join(parts)
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>API reference</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:auto;padding:1em}"
        "pre{background:#f4f4f4;padding:.5em;overflow:auto}</style></head>"
        f"<body>{body}</body></html>"
    )


def _operation(path: str, method: str, operation: dict, schema: dict) -> str:
    title = f"<h2><code>{method.upper()} {html.escape(path)}</code></h2>"
    text = operation.get("description") or operation.get("summary") or ""
    request = operation.get("requestBody", {}).get("content", {})
    shown = ""
    for media, content in request.items():
        resolved = _resolve(content.get("schema", {}), schema)
        shown += f"<p>Body ({html.escape(media)}):</p><pre>{html.escape(json.dumps(resolved, indent=2))}</pre>"
    statuses = ", ".join(sorted(operation.get("responses", {})))
    return f"{title}<p>{html.escape(text)}</p>{shown}<p>Answers: {statuses}</p>"


def _resolve(node, schema: dict, depth: int = 0):
    """node with $refs inlined (to a small depth), for reading."""
    if isinstance(node, dict):
        if "$ref" in node and depth < 4:
            name = node["$ref"].rsplit("/", 1)[-1]
            return _resolve(schema["components"]["schemas"].get(name, {}), schema, depth + 1)
        return {k: _resolve(v, schema, depth) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, schema, depth) for v in node]
    return node
