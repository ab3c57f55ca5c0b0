"""The in-process ASGI client our vLLM engine talks through, against a real FastAPI app."""

from __future__ import annotations

import asyncio

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from llm_runtime.engines.asgi_client import AsgiClient


def _app(events: dict) -> FastAPI:
    app = FastAPI()

    @app.post("/echo")
    async def echo(request: Request):
        return JSONResponse({"got": await request.json()}, status_code=201)

    @app.post("/stream")
    async def stream(request: Request):
        async def lines():
            try:
                for index in range(1000):
                    yield f"data: {index}\n\n"
                    events["sent"] = index
                    await events["gate"].wait()  # the test lets each line go
                    events["gate"].clear()
            finally:
                events["stopped"] = True

        return StreamingResponse(lines(), media_type="text/event-stream")

    @app.get("/broken")
    async def broken():
        raise KeyError("no such thing")

    return app


def test_body_status_and_chunks_as_they_are_sent():
    async def main():
        events = {"gate": asyncio.Event()}
        client = AsgiClient(_app(events))
        answer = await client.request("POST", "/echo", b'{"a": 1}')
        assert answer.status == 201 and await answer.read() == b'{"got":{"a":1}}'

        response = await client.request("POST", "/stream", b"{}")
        assert response.status == 200
        lines = response.lines()
        assert await anext(lines) == b"data: 0\n"  # before the app has sent anything more
        assert await anext(lines) == b"\n" and events["sent"] == 0
        events["gate"].set()
        assert [await anext(lines), await anext(lines)] == [b"data: 1\n", b"\n"]
        response.close()  # the client leaves: the app's generator is stopped
        events["gate"].set()
        await asyncio.wait_for(response.task, 5)
        assert events.get("stopped") and events["sent"] < 5

        error = await client.request("GET", "/broken")  # FastAPI's 500, the error logged
        assert error.status == 500

    asyncio.run(main())


def test_an_app_that_fails_before_answering_raises():
    async def app(scope, receive, send):
        raise RuntimeError("engine dead")

    async def main():
        with pytest.raises(RuntimeError, match="engine dead"):
            await AsgiClient(app).request("POST", "/v1/chat/completions", b"{}")

    asyncio.run(main())


def test_call_runs_the_app_with_our_send_and_then_our_receive():
    """The streamed passthrough: the app writes through the caller's send, and after the body
    it reads the caller's receive: our client's leaving stops it."""

    async def main():
        events, leave = {"gate": asyncio.Event()}, asyncio.Event()
        sent = []

        async def outer_receive():
            await leave.wait()
            return {"type": "http.disconnect"}

        async def send(message):
            sent.append(message)
            if message.get("body") == b"data: 0\n\n":
                events["gate"].set()  # the app may send one more line
            elif message.get("body") == b"data: 1\n\n":
                leave.set()  # then our client leaves while the app waits

        await asyncio.wait_for(
            AsgiClient(_app(events)).call("POST", "/stream", b"{}", outer_receive, send), 5
        )
        assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
        assert [m.get("body") for m in sent[1:3]] == [b"data: 0\n\n", b"data: 1\n\n"]
        assert events.get("stopped") and events["sent"] == 1  # its generator was stopped

    asyncio.run(main())
