"""Tool calling, structured output, logprobs and n on a real server (transformers engine).

The model is a tiny random-weight Llama whose chat template supports `tools`; the clients are
the real `openai` and `langchain-openai` packages. Random weights say nothing sensible, so every
guarantee checked here comes from constrained decoding: arguments and JSON replies validate
against their schemas because nothing else could be sampled.
"""

from __future__ import annotations

import json

import httpx
import jsonschema
import pytest
from langchain_checks import check_structured_output_and_bound_tools
from openai import OpenAI
from tiny_models import PLAIN_TEMPLATE, TOOLS_TEMPLATE, make_tiny_tool_llama

from llm_runtime.errors import InvalidRequest
from llm_runtime.handlers.text2text import Text2TextHandler
from llm_runtime.metrics import Metrics
from llm_runtime.routes_openai import refuse_unsupported
from llm_runtime.structured import required_calls_schema
from llm_runtime.tool_calls import parse_tool_calls, template_supports_tools
from llm_runtime.values import OutputSpec, ToolSpec

WEATHER_PARAMS = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "enum": ["Paris", "Rome", "Oslo"]},
        "unit": {"enum": ["c", "f"]},
        "rain": {"type": "boolean"},
    },
    "required": ["city", "unit", "rain"],
    "additionalProperties": False,
}
TIME_PARAMS = {
    "type": "object",
    "properties": {"zone": {"enum": ["utc", "cet"]}},
    "required": ["zone"],
    "additionalProperties": False,
}
WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Weather", "parameters": WEATHER_PARAMS},
}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": TIME_PARAMS}}
SCHEMAS = {"get_weather": WEATHER_PARAMS, "get_time": TIME_PARAMS}
ASK = [{"role": "user", "content": "what is the weather in paris?"}]
NAMED = {"type": "function", "function": {"name": "get_weather"}}


@pytest.fixture(scope="module")
def tool_model(models_dir):
    return make_tiny_tool_llama(models_dir / "tiny-tool-llama")


@pytest.fixture(scope="module")
def tools_server(serve, tool_model):
    return serve("tools", tool_model, "--max-concurrency", "8")


@pytest.fixture(scope="module")
def client(tools_server) -> OpenAI:
    return OpenAI(base_url=f"{tools_server.url}/v1", api_key="unused", max_retries=0)


def _valid_call(call) -> dict:
    arguments = json.loads(call.function.arguments)
    jsonschema.validate(arguments, SCHEMAS[call.function.name])
    return arguments


def test_named_tool_choice_returns_arguments_that_validate(client):
    for seed in (0, 1):
        reply = client.chat.completions.create(
            model="m", messages=ASK, tools=[WEATHER, TIME], tool_choice=NAMED, seed=seed
        )
        choice = reply.choices[0]
        assert choice.finish_reason == "tool_calls"
        assert choice.message.content is None
        (call,) = choice.message.tool_calls
        assert call.type == "function" and call.id.startswith("call_")
        assert call.function.name == "get_weather"
        _valid_call(call)
        assert " " not in call.function.arguments  # compact JSON, no free whitespace


def test_required_tool_choice_calls_declared_tools(client):
    reply = client.chat.completions.create(
        model="m", messages=ASK, tools=[WEATHER, TIME], tool_choice="required", max_tokens=300
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert 1 <= len(choice.message.tool_calls) <= 2
    for call in choice.message.tool_calls:
        _valid_call(call)
    single = client.chat.completions.create(
        model="m",
        messages=ASK,
        tools=[WEATHER, TIME],
        tool_choice="required",
        parallel_tool_calls=False,
    )
    assert len(single.choices[0].message.tool_calls) == 1


def test_auto_and_none_answer_in_text_and_history_with_tool_turns_is_accepted(client):
    history = [
        *ASK,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 C"},
    ]
    auto = client.chat.completions.create(
        model="m", messages=history, tools=[WEATHER], max_tokens=5, temperature=0
    )
    none = client.chat.completions.create(
        model="m", messages=history, tools=[WEATHER], tool_choice="none", max_tokens=5
    )
    # The template renders the tools only when they may be called: a longer prompt.
    assert auto.usage.prompt_tokens > none.usage.prompt_tokens
    assert none.choices[0].message.tool_calls is None
    assert auto.choices[0].finish_reason in ("length", "tool_calls")


def test_streamed_tool_call_deltas_reassemble(client):
    for choice_kind in (NAMED, "required"):
        stream = client.chat.completions.create(
            model="m",
            messages=ASK,
            tools=[WEATHER, TIME],
            tool_choice=choice_kind,
            parallel_tool_calls=False,
            stream=True,
        )
        calls: dict[int, dict] = {}
        finish = None
        for chunk in stream:
            choice = chunk.choices[0]
            finish = choice.finish_reason or finish
            for piece in choice.delta.tool_calls or ():
                call = calls.setdefault(piece.index, {"arguments": ""})
                if piece.id:
                    assert "id" not in call and piece.type == "function"
                    call.update(id=piece.id, name=piece.function.name)
                call["arguments"] += piece.function.arguments or ""
        assert finish == "tool_calls"
        assert list(calls) == [0] and calls[0]["id"].startswith("call_")
        jsonschema.validate(json.loads(calls[0]["arguments"]), SCHEMAS[calls[0]["name"]])


def test_json_schema_response_format_validates(client):
    fmt = {
        "type": "json_schema",
        "json_schema": {"name": "weather", "schema": WEATHER_PARAMS, "strict": True},
    }
    for seed in (0, 1, 2):
        reply = client.chat.completions.create(
            model="m", messages=ASK, response_format=fmt, seed=seed
        )
        text = reply.choices[0].message.content
        assert reply.choices[0].finish_reason == "stop"
        jsonschema.validate(json.loads(text), WEATHER_PARAMS)
        assert text == json.dumps(json.loads(text), separators=(",", ":"))  # compact


def test_json_object_is_json_unless_cut_by_max_tokens(client):
    reply = client.chat.completions.create(
        model="m",
        messages=ASK,
        response_format={"type": "json_object"},
        n=4,
        seed=7,
        max_tokens=48,
    )
    for choice in reply.choices:
        text = choice.message.content
        assert text.startswith("{")
        if choice.finish_reason == "stop":
            assert isinstance(json.loads(text), dict)
        else:  # an unbounded object: only the token budget can end it early
            assert choice.finish_reason == "length"
            with pytest.raises(json.JSONDecodeError):
                json.loads(text)


def test_chat_logprobs_are_sorted_and_consistent(client):
    reply = client.chat.completions.create(
        model="m", messages=ASK, logprobs=True, top_logprobs=5, max_tokens=6, temperature=0
    )
    choice = reply.choices[0]
    entries = choice.logprobs.content
    assert len(entries) == reply.usage.completion_tokens == 6
    joined = b"".join(bytes(e.bytes) for e in entries)
    assert joined.decode(errors="replace") == choice.message.content
    for entry in entries:
        assert entry.logprob <= 0
        top = [t.logprob for t in entry.top_logprobs]
        assert len(top) == 5 and top == sorted(top, reverse=True)
        assert entry.logprob == pytest.approx(top[0])  # greedy: the chosen is the likeliest
        assert bytes(entry.bytes).decode(errors="replace") == entry.token


def test_streamed_chat_logprobs_cover_the_text(client):
    stream = client.chat.completions.create(
        model="m", messages=ASK, logprobs=True, max_tokens=5, stream=True
    )
    text, tokens = "", []
    for chunk in stream:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            if choice.logprobs and choice.logprobs.content:
                tokens += [bytes(e.bytes) for e in choice.logprobs.content]
    assert len(tokens) == 5 and b"".join(tokens).decode(errors="replace") == text


def test_completions_legacy_logprobs_and_n(client):
    reply = client.completions.create(
        model="m", prompt=["hello", "the fox"], logprobs=3, max_tokens=4, n=2, seed=1
    )
    assert [c.index for c in reply.choices] == [0, 1, 2, 3]
    for choice in reply.choices:
        lp = choice.logprobs
        assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == 4
        assert len(lp.text_offset) == 4 and lp.text_offset[0] == 0
        assert all(v <= 0 for v in lp.token_logprobs)
        assert all(len(top) <= 3 for top in lp.top_logprobs)


def test_n_gives_n_choices_and_seed_repeats_them(client):
    def ask():
        return client.chat.completions.create(
            model="m", messages=ASK, n=3, seed=11, max_tokens=8, temperature=1.0
        )

    first, again = ask(), ask()
    assert [c.index for c in first.choices] == [0, 1, 2]
    texts = [c.message.content for c in first.choices]
    assert texts == [c.message.content for c in again.choices]
    assert len(set(texts)) > 1  # seed, seed+1, seed+2: different samples
    assert first.usage.completion_tokens == 24


def test_n_choices_stream_side_by_side_with_their_index(client):
    """stream: true with n > 1: each choice's deltas carry its index, the same text as the
    unstreamed answer with the same seed, a finish each, and the usage of all of them."""
    ask = {"model": "m", "messages": ASK, "n": 3, "seed": 11, "max_tokens": 8, "temperature": 1.0}
    whole = client.chat.completions.create(**ask)
    chunks = list(
        client.chat.completions.create(**ask, stream=True, stream_options={"include_usage": True})
    )
    texts, finishes = {}, {}
    for choice in (c for chunk in chunks for c in chunk.choices):
        texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
        if choice.finish_reason:
            finishes[choice.index] = choice.finish_reason
    assert texts == {c.index: c.message.content for c in whole.choices}
    assert finishes == {0: "length", 1: "length", 2: "length"}
    assert chunks[-1].usage.completion_tokens == 24
    pieces = list(
        client.completions.create(model="m", prompt="hello", n=2, max_tokens=4, stream=True)
    )
    assert {c.index for p in pieces for c in p.choices} == {0, 1}
    assert sum(1 for p in pieces for c in p.choices if c.finish_reason) == 2


def test_langchain_structured_output_and_bound_tools(tools_server):
    check_structured_output_and_bound_tools(f"{tools_server.url}/v1")


def test_generate_per_batch_engine_enforces_schemas_too(serve, tool_model):
    server = serve("tools-generate", tool_model, "--batching", "generate")
    client = OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    fmt = {"type": "json_schema", "json_schema": {"name": "w", "schema": WEATHER_PARAMS}}
    reply = client.chat.completions.create(
        model="m", messages=ASK, response_format=fmt, n=2, logprobs=True, seed=5
    )
    for choice in reply.choices:
        jsonschema.validate(json.loads(choice.message.content), WEATHER_PARAMS)
        assert all(e.logprob <= 0 for e in choice.logprobs.content)
    named = client.chat.completions.create(
        model="m", messages=ASK, tools=[WEATHER], tool_choice=NAMED
    )
    _valid_call(named.choices[0].message.tool_calls[0])


def test_tools_on_a_template_without_tools_support_use_the_system_fallback(llama_server):
    client = OpenAI(base_url=f"{llama_server.url}/v1", api_key="unused", max_retries=0)
    reply = client.chat.completions.create(
        model="m", messages=ASK, tools=[WEATHER], tool_choice=NAMED
    )
    _valid_call(reply.choices[0].message.tool_calls[0])


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "x"}}}, "not in tools"),
        ({"tool_choice": "required"}, "needs 'tools'"),
        ({"tools": [WEATHER, WEATHER]}, "unique"),
        ({"logprobs": True, "top_logprobs": 21}, "less than or equal to 20"),
        ({"top_logprobs": 2}, "needs logprobs"),
        ({"n": 17}, "n"),
        ({"response_format": {"type": "json_schema"}}, "json_schema"),
        ({"response_format": {"type": "xml"}}, "response_format"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": {"type": "strnig"}}}},
            "cannot be enforced",
        ),
        (
            {"tools": [WEATHER], "tool_choice": "required", "response_format": {"type": "json_object"}},
            "drop one",
        ),
    ],
)  # fmt: skip
def test_unsupported_combinations_get_a_clear_400(tools_server, body, needle):
    response = httpx.post(
        f"{tools_server.url}/v1/chat/completions", json={"messages": ASK, **body}, timeout=30
    )
    assert response.status_code == 400, response.text
    assert needle in response.json()["error"]["message"]


def test_completions_refuse_logprobs_over_20(tools_server):
    body = {"prompt": "hi", "logprobs": 21}
    response = httpx.post(f"{tools_server.url}/v1/completions", json=body, timeout=30)
    assert response.status_code == 400 and "logprobs" in response.json()["error"]["message"]


def test_engines_without_the_features_refuse_them():
    handler = Text2TextHandler(metrics=Metrics())
    for body in ({"response_format": {"type": "json_object"}}, {"tools": [WEATHER]}, {"n": 2}):
        with pytest.raises(InvalidRequest, match="not supported for text2text-generation"):
            refuse_unsupported(handler, body)
    refuse_unsupported(handler, {"response_format": {"type": "text"}, "tool_choice": "none"})


def test_tool_call_parsing_and_template_detection():
    spec = OutputSpec(tools=(ToolSpec("get_time", parameters=TIME_PARAMS),))
    content, calls = parse_tool_calls(
        'ok <tool_call>{"name": "get_time", "arguments": {"zone": "utc"}}</tool_call>', spec
    )
    assert content == "ok" and calls[0].name == "get_time"
    assert json.loads(calls[0].arguments) == {"zone": "utc"}
    assert parse_tool_calls('{"name": "other", "arguments": {}}', spec)[1] == ()
    assert parse_tool_calls('{"name": "get_time", "parameters": {"zone": "cet"}}', spec)[1]
    assert template_supports_tools(TOOLS_TEMPLATE) and not template_supports_tools(PLAIN_TEMPLATE)
    schema = required_calls_schema(spec.tools, parallel=False)
    jsonschema.validate([{"name": "get_time", "arguments": {"zone": "utc"}}], schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate([{"name": "get_time", "arguments": {"zone": "mars"}}], schema)
