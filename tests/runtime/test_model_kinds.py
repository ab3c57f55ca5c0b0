"""Reasoning split, MoE and PEFT adapters on tiny random models, through the real server."""

from __future__ import annotations

import json

import httpx
from openai import OpenAI

from llm_runtime.loading import cpu_bf16_native

CHAT = [{"role": "user", "content": "what is two plus two"}]


def post(server, path: str, **body) -> dict:
    response = httpx.post(f"{server.url}{path}", json=body, headers=server.headers, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def test_reasoning_model_is_detected(reasoning_server):
    info = httpx.get(f"{reasoning_server.url}/info").json()
    assert info["capabilities"]["supports_reasoning"] is True
    assert info["dtype"] == ("bfloat16" if cpu_bf16_native() else "float32")  # LLMs' auto dtype
    assert info["details"]["thinking_toggle"] is True


def test_generate_splits_thinking_and_answer_with_counts(reasoning_server):
    out = post(
        reasoning_server,
        "/generate",
        messages=CHAT,
        max_tokens=20,
        max_thinking_tokens=6,
        temperature=0,
    )
    usage = out["usage"]
    assert usage["thinking_tokens"] == 6
    assert usage["answer_tokens"] == 20 - 6 - 1  # the forced </think> counts as generated
    assert out["thinking"] and out["answer"] == out["text"]
    assert "<think>" not in out["text"] and "</think>" not in out["text"]


def test_reasoning_mode_off_and_hidden_thinking(reasoning_server):
    off = post(
        reasoning_server,
        "/generate",
        messages=CHAT,
        max_tokens=12,
        temperature=0,
        reasoning_mode=False,
    )
    assert off["usage"]["thinking_tokens"] == 0 and "thinking" not in off
    assert off["usage"]["answer_tokens"] == 12
    hidden = post(
        reasoning_server,
        "/generate",
        messages=CHAT,
        max_tokens=12,
        max_thinking_tokens=4,
        temperature=0,
        show_thinking=False,
    )
    assert "thinking" not in hidden and hidden["usage"]["thinking_tokens"] == 4


def test_sse_stream_has_thinking_then_answer_parts(reasoning_server):
    body = {"messages": CHAT, "max_tokens": 16, "max_thinking_tokens": 5, "temperature": 0}
    with httpx.stream("POST", f"{reasoning_server.url}/generate/stream", json=body) as response:
        events = [
            json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")
        ]
    kinds = [e["type"] for e in events if not e["finished"]]
    assert kinds[0] == "thinking" and kinds[-1] == "answer"
    assert kinds == sorted(kinds, key=lambda k: k != "thinking")  # all thinking comes first
    final = events[-1]
    assert final["finished"] and final["thinking_tokens"] == 5 and final["answer_tokens"] == 10
    reference = post(reasoning_server, "/generate", **body)
    assert "".join(e["token"] for e in events[:-1] if e["type"] == "answer") == reference["answer"]


def test_openai_stream_carries_reasoning_deltas(reasoning_server):
    client = OpenAI(base_url=f"{reasoning_server.url}/v1", api_key="unused")
    chunks = list(
        client.chat.completions.create(
            model="tiny-reasoner",
            messages=CHAT,
            max_tokens=14,
            temperature=0,
            stream=True,
            extra_body={"max_thinking_tokens": 4},
        )
    )
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    reasoning = [d.model_extra.get("reasoning_content") for d in deltas]
    assert any(reasoning)
    assert [d.model_extra.get("reasoning") for d in deltas] == reasoning
    plain = client.chat.completions.create(
        model="tiny-reasoner",
        messages=CHAT,
        max_tokens=14,
        temperature=0,
        extra_body={"max_thinking_tokens": 4},
    )
    message = plain.choices[0].message
    assert message.model_extra["reasoning_content"] == "".join(r or "" for r in reasoning)
    assert plain.usage.completion_tokens_details.reasoning_tokens == 4
    no_think = client.chat.completions.create(
        model="tiny-reasoner",
        messages=CHAT,
        max_tokens=6,
        temperature=0,
        extra_body={"chat_template_kwargs": {"enable_thinking": False}},
    )
    assert not (no_think.choices[0].message.model_extra or {}).get("reasoning_content")


def test_moe_model_serves_batched_chat(moe_server):
    import concurrent.futures

    info = httpx.get(f"{moe_server.url}/info").json()
    assert info["details"]["is_moe"] is True
    assert info["details"]["architecture"] == "MixtralForCausalLM"
    client = OpenAI(base_url=f"{moe_server.url}/v1", api_key="unused")

    def ask(i: int) -> str:
        reply = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": f"q{i}"}], max_tokens=6, temperature=0
        )
        return reply.choices[0].message.content

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(ask, [0, 1, 0, 1]))
    assert answers[0] == answers[2] and answers[1] == answers[3]


def test_lora_adapter_changes_outputs(llama_server, lora_server, lora_dir):
    info = httpx.get(f"{lora_server.url}/info").json()
    assert info["adapter"] == str(lora_dir)
    body = dict(prompt="hello world", max_tokens=16, temperature=0)
    base = post(llama_server, "/generate", **body)["text"]
    adapted = post(lora_server, "/generate", **body)["text"]
    assert base != adapted
