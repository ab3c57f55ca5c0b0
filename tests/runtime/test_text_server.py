"""The text-generation server on a tiny Llama, over real HTTP, SSE and WebSocket."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from openai import OpenAI
from websockets.sync.client import connect

CHAT = [{"role": "user", "content": "hello world"}]


def sse_events(response: httpx.Response) -> list:
    events = []
    for line in response.iter_lines():
        if line.startswith("data: "):
            data = line[6:]
            events.append(data if data == "[DONE]" else json.loads(data))
    return events


def generate(server, **body) -> dict:
    response = httpx.post(f"{server.url}/generate", json=body, headers=server.headers, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def test_health_is_live_and_ready_was_503_while_loading(llama_server):
    assert httpx.get(f"{llama_server.url}/health").json()["status"] == "ok"
    assert llama_server.ready_statuses[-1] == 200
    assert 503 in llama_server.ready_statuses  # the server listened before the model loaded


def test_info_describes_model_and_capabilities(llama_server):
    info = httpx.get(f"{llama_server.url}/info").json()
    assert info["family"] == "text-generation"
    assert info["device"] == "cpu" and info["dtype"] == "float32"  # as asked (conftest.EXACT)
    caps = info["capabilities"]
    assert caps["supports_streaming"] and not caps["supports_reasoning"]
    assert caps["supports_system_prompt"] and caps["max_context_length"] == 2048
    assert info["details"]["is_moe"] is False and info["adapter"] is None
    assert "POST /v1/chat/completions" in info["endpoints"]


def test_native_generate_prompt_and_messages(llama_server):
    out = generate(llama_server, prompt="hello world", max_tokens=7, temperature=0)
    assert out["usage"]["completion_tokens"] == 7 and out["finish_reason"] == "length"
    assert out["text"]
    chat = generate(llama_server, messages=CHAT, max_tokens=5, temperature=0)
    with_system = generate(
        llama_server, messages=CHAT, system_prompt="be brief", max_tokens=5, temperature=0
    )
    assert with_system["usage"]["prompt_tokens"] > chat["usage"]["prompt_tokens"]


def test_chat_template_is_applied(llama_server, llama_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(llama_dir)
    rendered = tokenizer.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True)
    expected = len(tokenizer.encode(rendered, add_special_tokens=False))
    out = generate(llama_server, messages=CHAT, max_tokens=2, temperature=0)
    assert out["usage"]["prompt_tokens"] == expected


def test_greedy_is_deterministic_and_seed_repeats_sampling(llama_server):
    greedy = [generate(llama_server, prompt="the fox", max_tokens=12, temperature=0) for _ in "ab"]
    assert greedy[0]["text"] == greedy[1]["text"]
    body = dict(prompt="the fox", max_tokens=12, temperature=1.5, top_k=50, top_p=0.95)
    same = [generate(llama_server, seed=7, **body)["text"] for _ in "ab"]
    assert same[0] == same[1]
    others = {generate(llama_server, seed=s, **body)["text"] for s in range(4)}
    assert len(others) > 1


def test_repetition_penalty_changes_greedy_output(llama_server):
    plain = generate(llama_server, prompt="the fox", max_tokens=30, temperature=0)
    penalized = generate(
        llama_server, prompt="the fox", max_tokens=30, temperature=0, repetition_penalty=5.0
    )
    assert plain["text"] != penalized["text"]


def test_stop_sequence_cuts_the_text(llama_server):
    full = generate(llama_server, prompt="the dog", max_tokens=24, temperature=0)["text"]
    stop = full[8:11]
    cut = generate(llama_server, prompt="the dog", max_tokens=24, temperature=0, stop=[stop])
    assert cut["text"] == full[: full.find(stop)]
    assert cut["finish_reason"] == "stop"


def test_sse_stream_post_and_get(llama_server):
    body = {"prompt": "hello world", "max_tokens": 6, "temperature": 0}
    with httpx.stream("POST", f"{llama_server.url}/generate/stream", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response)
    assert events[-1]["finished"] is True and events[-1]["usage"]["completion_tokens"] == 6
    streamed = "".join(e["token"] for e in events[:-1])
    assert streamed == generate(llama_server, **body)["text"]
    params = {"prompt": "hello world", "max_tokens": "6", "temperature": "0"}
    with httpx.stream("GET", f"{llama_server.url}/generate/stream", params=params) as response:
        assert "".join(e.get("token", "") for e in sse_events(response)) == streamed


def test_websocket_streams_tokens(llama_server):
    body = {"prompt": "hello world", "max_tokens": 6, "temperature": 0}
    expected = generate(llama_server, **body)["text"]
    with connect(llama_server.url.replace("http", "ws") + "/ws") as ws:
        for _ in range(2):  # several requests on one socket
            ws.send(json.dumps(body))
            tokens = []
            while not (event := json.loads(ws.recv())).get("finished"):
                tokens.append(event["token"])
            assert "".join(tokens) == expected
        ws.send(json.dumps({"prompt": ""}))
        assert json.loads(ws.recv())["error"]["type"] == "invalid_request_error"


def test_openai_client_chat_completions_models(llama_server):
    client = OpenAI(base_url=f"{llama_server.url}/v1", api_key="unused")
    models = client.models.list()
    model_id = models.data[0].id
    assert model_id == "tiny-llama"
    chat = client.chat.completions.create(
        model=model_id, messages=CHAT, max_tokens=8, temperature=0
    )
    assert chat.choices[0].message.role == "assistant"
    assert chat.choices[0].finish_reason == "length" and chat.usage.completion_tokens == 8
    stream = client.chat.completions.create(
        model=model_id,
        messages=CHAT,
        max_tokens=8,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == chat.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == 8 and not chunks[-1].choices
    completion = client.completions.create(
        model=model_id, prompt="hello world", max_tokens=5, temperature=0
    )
    assert (
        completion.choices[0].text
        == generate(llama_server, prompt="hello world", max_tokens=5, temperature=0)["text"]
    )


def test_streamed_chat_ends_with_done(llama_server):
    body = {"messages": CHAT, "max_tokens": 3, "temperature": 0, "stream": True}
    with httpx.stream("POST", f"{llama_server.url}/v1/chat/completions", json=body) as response:
        events = sse_events(response)
    assert events[-1] == "[DONE]"
    assert events[0]["object"] == "chat.completion.chunk"
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    assert events[-2]["choices"][0]["finish_reason"] == "length"


def test_batched_greedy_matches_single_greedy(llama_server):
    import concurrent.futures

    prompts = ["the fox", "hello world, this is a much longer prompt than the others", "a"]
    alone = [
        generate(llama_server, prompt=p, max_tokens=10, temperature=0)["text"] for p in prompts
    ]
    with concurrent.futures.ThreadPoolExecutor(len(prompts) * 2) as pool:
        together = list(
            pool.map(
                lambda p: generate(llama_server, prompt=p, max_tokens=10, temperature=0)["text"],
                prompts * 2,
            )
        )
    assert together == alone * 2


@pytest.mark.parametrize(
    ("path", "body", "needle"),
    [
        ("/v1/chat/completions", {"messages": []}, "messages"),
        ("/v1/chat/completions", {"messages": CHAT, "temperature": "hot"}, "temperature"),
        ("/v1/chat/completions", {"messages": [{"role": "wizard", "content": "x"}]}, "role"),
        ("/v1/chat/completions", {"messages": CHAT, "max_tokens": 100000}, "context"),
        ("/v1/completions", {"prompt": ""}, "prompt"),
        ("/generate", {"prompt": "x", "messages": CHAT}, "exactly one"),
        ("/generate", {"prompt": "x", "top_p": 3}, "top_p"),
    ],
)
def test_malformed_requests_get_4xx_with_a_useful_message(llama_server, path, body, needle):
    response = httpx.post(f"{llama_server.url}{path}", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert needle in error["message"] and error["type"] == "invalid_request_error"


def test_invalid_json_and_unknown_route(llama_server):
    response = httpx.post(
        f"{llama_server.url}/v1/chat/completions",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400 and "error" in response.json()
    missing = httpx.get(f"{llama_server.url}/v1/nothing")
    assert missing.status_code == 404 and missing.json()["error"]["message"]


def test_unsupported_endpoint_names_supported_ones(llama_server):
    response = httpx.post(f"{llama_server.url}/v1/embeddings", json={"input": "x"})
    assert response.status_code == 404
    message = response.json()["error"]["message"]
    assert "text-generation" in message and "POST /v1/chat/completions" in message


def test_metrics_are_prometheus_text_with_vllm_names(llama_server, read_metric):
    generate(llama_server, prompt="hi", max_tokens=3, temperature=0)
    text = llama_server.metrics()
    for name in (
        "num_requests_running",
        "num_requests_waiting",
        "time_to_first_token_seconds_bucket",
        "e2e_request_latency_seconds_count",
        "generation_tokens_total",
        "prompt_tokens_total",
        "generation_tokens_per_second",
        "process_resident_memory_bytes",
    ):
        assert f"llm_runtime:{name}" in text, name
    assert "# TYPE llm_runtime:time_to_first_token_seconds histogram" in text
    assert read_metric(llama_server, "request_success_total", finished_reason="length") >= 1


def test_server_log_has_the_seed_format(llama_server):
    log = llama_server.log_text()
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d INFO: Starting API server", log, re.M)
    assert "Model loaded successfully" in log
    assert (llama_server.logs_dir / "archive").is_dir()
