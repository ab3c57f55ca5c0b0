"""Dynamic batching, the bounded queue, cancellation on disconnect, and the API key."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from websockets.sync.client import connect

CHAT = [{"role": "user", "content": "count to ten"}]


async def _post_many(server, bodies: list[dict], path: str = "/v1/chat/completions"):
    async with httpx.AsyncClient(base_url=server.url, headers=server.headers, timeout=60) as client:
        return await asyncio.gather(*(client.post(path, json=body) for body in bodies))


def _wait_for(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_sixteen_concurrent_requests_are_batched(llama_server, read_metric):
    batches_before = read_metric(llama_server, "batch_size_count")
    singles_before = read_metric(llama_server, "batch_size_bucket", le="1")
    bodies = [
        {
            "messages": [{"role": "user", "content": f"question {i}"}],
            "max_tokens": 24,
            "temperature": 0,
        }
        for i in range(16)
    ]
    responses = asyncio.run(_post_many(llama_server, bodies))
    assert [r.status_code for r in responses] == [200] * 16
    assert all(r.json()["usage"]["completion_tokens"] == 24 for r in responses)
    batches = read_metric(llama_server, "batch_size_count") - batches_before
    singles = read_metric(llama_server, "batch_size_bucket", le="1") - singles_before
    assert batches - singles >= 1, "no decoding step ran more than one request"


def test_both_batching_engines_give_the_same_greedy_text(llama_server, restricted_server):
    assert httpx.get(f"{llama_server.url}/info").json()["details"]["batching"] == "step"
    info = httpx.get(f"{restricted_server.url}/info", headers=restricted_server.headers).json()
    assert info["details"]["batching"] == "generate"
    body = {"prompt": "the quick brown fox", "max_tokens": 12, "temperature": 0}
    texts = [
        httpx.post(f"{s.url}/generate", json=body, headers=s.headers, timeout=60).json()["text"]
        for s in (llama_server, restricted_server)
    ]
    assert texts[0] == texts[1]


def test_full_queue_answers_429_with_retry_after(restricted_server):
    bodies = [{"messages": CHAT, "max_tokens": 300, "temperature": 0} for _ in range(6)]
    responses = asyncio.run(_post_many(restricted_server, bodies))
    codes = sorted(r.status_code for r in responses)
    assert 200 in codes and 429 in codes, codes
    refused = next(r for r in responses if r.status_code == 429)
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"]["type"] == "rate_limit_error"


def _cancelled(server, read_metric) -> float:
    return read_metric(server, "request_success_total", finished_reason="cancelled")


def test_stream_disconnect_cancels_generation(llama_server, read_metric):
    before = _cancelled(llama_server, read_metric)
    generated_before = read_metric(llama_server, "generation_tokens_total")
    body = {"messages": CHAT, "max_tokens": 1900, "temperature": 0, "stream": True}
    with httpx.stream("POST", f"{llama_server.url}/v1/chat/completions", json=body) as response:
        lines = response.iter_lines()
        for _ in range(6):
            next(lines)
    assert _wait_for(lambda: _cancelled(llama_server, read_metric) == before + 1)
    assert _wait_for(lambda: read_metric(llama_server, "num_requests_running") == 0)
    generated = read_metric(llama_server, "generation_tokens_total") - generated_before
    assert generated < 1900


def test_non_streaming_disconnect_cancels_generation(llama_server, read_metric):
    before = _cancelled(llama_server, read_metric)
    body = {"messages": CHAT, "max_tokens": 1900, "temperature": 0}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{llama_server.url}/v1/chat/completions", json=body, timeout=0.5)
    assert _wait_for(lambda: _cancelled(llama_server, read_metric) == before + 1)


def test_websocket_close_cancels_generation(llama_server, read_metric):
    before = _cancelled(llama_server, read_metric)
    with connect(llama_server.url.replace("http", "ws") + "/ws") as ws:
        ws.send(json.dumps({"prompt": "the fox", "max_tokens": 1900, "temperature": 0}))
        for _ in range(3):
            ws.recv()
    assert _wait_for(lambda: _cancelled(llama_server, read_metric) == before + 1)


def test_api_key_guards_inference_but_not_health(restricted_server):
    url = restricted_server.url
    denied = httpx.post(f"{url}/v1/chat/completions", json={"messages": CHAT, "max_tokens": 2})
    assert denied.status_code == 401
    assert denied.json()["error"]["code"] == "invalid_api_key"
    wrong = httpx.get(f"{url}/info", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert httpx.get(f"{url}/health").status_code == 200
    assert httpx.get(f"{url}/metrics").status_code == 200
    allowed = httpx.post(
        f"{url}/v1/chat/completions",
        json={"messages": CHAT, "max_tokens": 2},
        headers=restricted_server.headers,
    )
    assert allowed.status_code == 200
    with connect(url.replace("http", "ws") + "/ws?api_key=sekret") as ws:
        ws.send(json.dumps({"prompt": "hi", "max_tokens": 2, "temperature": 0}))
        assert "token" in json.loads(ws.recv())


def test_request_joins_a_running_batch_at_the_next_step(llama_server, read_metric):
    short = {"prompt": "a much longer prompt about the lazy dog", "max_tokens": 8, "temperature": 0}
    alone = httpx.post(f"{llama_server.url}/generate", json=short, timeout=60).json()["text"]
    long_body = {"prompt": "the fox", "max_tokens": 1500, "temperature": 0, "stream": True}
    with httpx.stream("POST", f"{llama_server.url}/generate", json=long_body) as response:
        lines = response.iter_lines()
        for _ in range(4):
            next(lines)  # the long generation is running
        joined = httpx.post(f"{llama_server.url}/generate", json=short, timeout=60).json()
        still_running = read_metric(llama_server, "num_requests_running")
        tail = [line for line in lines if line.startswith("data: ")]
    assert joined["text"] == alone  # same greedy text while sharing the batch
    assert still_running >= 1  # the short one finished while the long one kept generating
    assert json.loads(tail[-1][6:])["finished"] is True


def test_prompts_reuse_cached_prefixes_and_answer_as_without_them(
    llama_server, restricted_server, read_metric
):
    """The step engine's prefix cache against the generate engine (no cache): a repeated prompt,
    one extending it, and a new one, sent together so one prefill mixes cached and new rows;
    the log-probabilities of the greedy tokens agree, not just the text."""
    system = "you are a helpful assistant who knows the quick brown fox and the lazy dog well. "
    prompts = [system + "tell me a story", system + "tell me a story about the fox", "a new one"]
    bodies = [
        {"prompt": p, "max_tokens": 10, "temperature": 0, "logprobs": 1, "model": "m"}
        for p in prompts
    ]

    def answer(response: httpx.Response) -> tuple[str, list[float]]:
        choice = response.json()["choices"][0]
        return choice["text"], choice["logprobs"]["token_logprobs"]

    def alone(server, body) -> tuple[str, list[float]]:
        url = f"{server.url}/v1/completions"
        return answer(httpx.post(url, json=body, headers=server.headers, timeout=60))

    expected = [alone(restricted_server, body) for body in bodies]
    hits_before = read_metric(llama_server, "prefix_cache_hits_total")
    first = alone(llama_server, bodies[0])
    assert read_metric(llama_server, "prefix_cache_hits_total") == hits_before  # nothing cached
    together = asyncio.run(_post_many(llama_server, bodies, path="/v1/completions"))
    for (text, logprobs), (want_text, want) in zip(
        [first] + [answer(r) for r in together], expected[:1] + expected, strict=True
    ):
        assert text == want_text
        assert logprobs == pytest.approx(want, abs=1e-4)
    reused = read_metric(llama_server, "prefix_cache_hits_total") - hits_before
    assert reused >= 2 * 16, reused  # both prompts that start with the system text reused it
    assert read_metric(llama_server, "prefix_cache_queries_total") > reused
