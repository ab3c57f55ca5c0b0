"""GGUF repos on the llama.cpp engine, installed into real images and served from containers.

A tiny Llama is written as F16 and Q8_0 GGUF files (tests/tiny_gguf.py); the repo has no
config.json. `install --quant Q8_0` fetches only that file from the test Hub; a local folder of
.gguf files installs as it is. The dependency image compiles llama-cpp-python once (a wheel
stage); both installs share it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import jsonschema
import pytest
from tiny_gguf import make_gguf_repo
from tiny_models import make_tiny_llama

pytestmark = [
    pytest.mark.docker,
    pytest.mark.slow,
    pytest.mark.timeout(3600),
]  # the first builds llama.cpp
REPO = "test-org/tiny-llama-gguf"
API_KEY = "sk-gguf-test"


@pytest.fixture(scope="module")
def env(hub_server, docker_client, rootfs_image, tmp_path_factory):
    """A user whose ~/LLM is a temp folder and whose Hub is the test Hub."""
    home = tmp_path_factory.mktemp("llm-home-gguf")
    (home / "config.yaml").write_text("{}\n")
    variables = {
        **os.environ,
        "LLM_INSTALLER_MODELS_DIR": str(home / "models"),
        "LLM_INSTALLER_CACHE_DIR": str(home / "cache"),
        "LLM_INSTALLER_LOGS_DIR": str(home / "logs"),
        "LLM_INSTALLER_CONFIG": str(home / "config.yaml"),
        "LLM_INSTALLER_ROOTFS": "1",
        "HF_ENDPOINT": hub_server.url,
        "HF_HOME": str(home / "hf"),
    }
    for name in ("HF_TOKEN", "HF_HUB_OFFLINE", "LLM_INSTALLER_DEBUG", "LLM_API_KEY"):
        variables.pop(name, None)
    return {"env": variables, "models": home / "models"}


@pytest.fixture(scope="module")
def gguf_repo(hub_server, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("gguf")
    folder = make_gguf_repo(make_tiny_llama(root / "llama"), root / "tiny-llama-gguf")
    hub_server.add_folder(REPO, folder)
    return folder


def installer(env, *args: str, timeout: float = 2400) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "llm_installer", *args]
    return subprocess.run(
        command, env=env["env"], capture_output=True, text=True, timeout=timeout, check=False
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_check_lists_quantizations_and_recommends_the_largest_that_fits(env, gguf_repo):
    result = installer(env, "check", REPO, "--json", timeout=300)
    assert result.returncode == 0, result.stderr
    rows = {row["quantization"]: row for row in json.loads(result.stdout)["quantizations"]}
    assert set(rows) == {"F16", "Q8_0"}
    assert rows["F16"]["size_bytes"] == (gguf_repo / "tiny-llama-F16.gguf").stat().st_size
    assert rows["Q8_0"]["size_bytes"] < rows["F16"]["size_bytes"]
    assert rows["F16"]["memory_cpu_bytes"] > rows["F16"]["size_bytes"] and rows["F16"]["fits"] == [
        "cpu"
    ]
    assert rows["F16"]["recommended"] and not rows["Q8_0"]["recommended"]
    text = installer(env, "check", REPO, timeout=300).stdout
    assert "GGUF quantizations" in text and "Q8_0" in text and "recommended" in text


@pytest.fixture(scope="module")
def installed(env, gguf_repo, hub_server) -> Path:
    """`install --quant q8_0` from the test Hub (the Hub's byte counters start at zero)."""
    hub_server.reset_counters()
    result = installer(env, "install", REPO, "--quant", "q8_0", "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    return env["models"] / "test-org_tiny-llama-gguf"


@pytest.fixture(scope="module")
def served(env, installed) -> Iterator[str]:
    """The installed model started by its start.sh (detached, API key): one container."""
    port = free_port()
    started = subprocess.run(
        [str(installed / "start.sh"), "--no-browser", "--detach", "--port", str(port), "--api-key", API_KEY],
        env=env["env"], capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        installer(env, "stop", str(installed), timeout=120)


def test_install_quant_downloads_one_file(installed, gguf_repo, hub_server):
    assert (
        hub_server.bytes_for(REPO, "tiny-llama-Q8_0.gguf")
        == (gguf_repo / "tiny-llama-Q8_0.gguf").stat().st_size
    )
    assert hub_server.bytes_for(REPO, "tiny-llama-F16.gguf") == 0
    info = json.loads((installed / "model_info.json").read_text())
    assert (info["family"], info["gguf_file"], info["gguf_quantization"]) == (
        "gguf",
        "tiny-llama-Q8_0.gguf",
        "Q8_0",
    )
    assert not (installed / "model" / "tiny-llama-F16.gguf").exists()
    assert info["engine"] == "llama.cpp"  # llm_runtime.contract's engine for GGUF
    assert any(line.startswith("llama_cpp_python==0.3.36") for line in info["pip_freeze"])


def test_serves_our_api(served):
    _exercise_api(served)


def _exercise_api(url: str) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    assert httpx.get(f"{url}/info", timeout=30).status_code == 401
    with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
        info = client.get("/info").json()
        assert info["family"] == "gguf" and info["details"]["engine"] == "llama.cpp"
        assert info["engine"] == "llama.cpp"  # what generates, not the front it runs under
        assert info["details"]["gguf_file"] == "tiny-llama-Q8_0.gguf" and info["dtype"] == "Q8_0"
        chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 6, "temperature": 0}
        answer = client.post("/v1/chat/completions", json=chat).json()
        assert (
            answer["usage"]["completion_tokens"] == 6
            and answer["choices"][0]["finish_reason"] == "length"
        )
        body = {"prompt": "the quick brown", "max_tokens": 5, "temperature": 0}
        plain = client.post("/generate", json=body).json()
        with client.stream("POST", "/generate/stream", json=body) as response:
            events = [
                json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")
            ]
        assert (
            events[-1]["finished"]
            and "".join(e.get("token", "") for e in events[:-1]) == plain["text"]
        )
        # Sampled (the default temperature): a random-weight model may draw its end token
        # first: the count must agree with the finish reason.
        sampled = {"prompt": "hello", "max_tokens": 3}
        completion = client.post("/v1/completions", json=sampled).json()
        used, finish = completion["usage"]["completion_tokens"], completion["choices"][0]
        assert (used, finish["finish_reason"]) == (3, "length") or (
            used < 3 and finish["finish_reason"] == "stop"
        ), completion
        too_long = client.post("/generate", json={"prompt": "hi", "max_tokens": 100_000})
        assert too_long.status_code == 400 and "context" in too_long.json()["error"]["message"]
        assert "prompt_tokens_total" in client.get("/metrics").text
        assert "<html" in client.get("/").text.lower()
    from websockets.sync.client import connect

    with connect(url.replace("http", "ws") + "/ws", additional_headers=headers) as socket_:
        socket_.send(json.dumps(body))
        while not (event := json.loads(socket_.recv())).get("finished"):
            pass
    assert event["usage"]["completion_tokens"] == 5


WEATHER_PARAMS = {
    "type": "object",
    "properties": {
        "city": {"enum": ["Paris", "Rome", "Oslo"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
        "rain": {"type": "boolean"},
    },
    "required": ["city", "days", "rain"],
    "additionalProperties": False,
}
TIME_PARAMS = {
    "type": "object",
    "properties": {"zone": {"enum": ["utc", "cet"]}},
    "required": ["zone"],
    "additionalProperties": False,
}
SCHEMAS = {"get_weather": WEATHER_PARAMS, "get_time": TIME_PARAMS}
TOOLS = [
    {"type": "function", "function": {"name": name, "parameters": schema}}
    for name, schema in SCHEMAS.items()
]
ASK = [{"role": "user", "content": "what is the weather in paris?"}]
NAMED = {"type": "function", "function": {"name": "get_weather"}}


@pytest.fixture(scope="module")
def client(served):
    from openai import OpenAI

    return OpenAI(base_url=f"{served}/v1", api_key=API_KEY, max_retries=0, timeout=120)


def _valid_call(name: str, arguments: str) -> None:
    jsonschema.validate(json.loads(arguments), SCHEMAS[name])
    assert arguments == json.dumps(json.loads(arguments), separators=(",", ":"))  # compact


def test_tool_calls_validate_against_their_schemas(client):
    """Random weights: only the grammar (llguidance over llama.cpp's vocabulary) makes these
    valid. The tiny template has no `tools` support, so the tools go in the system message."""
    for seed in (0, 1):
        named = client.chat.completions.create(
            model="m", messages=ASK, tools=TOOLS, tool_choice=NAMED, seed=seed
        ).choices[0]
        assert named.finish_reason == "tool_calls" and named.message.content is None
        (call,) = named.message.tool_calls
        assert call.function.name == "get_weather" and call.id.startswith("call_")
        _valid_call(call.function.name, call.function.arguments)
    required = client.chat.completions.create(
        model="m", messages=ASK, tools=TOOLS, tool_choice="required", max_tokens=200, seed=2
    ).choices[0]
    assert required.finish_reason == "tool_calls" and 1 <= len(required.message.tool_calls) <= 2
    for call in required.message.tool_calls:
        _valid_call(call.function.name, call.function.arguments)
    auto = client.chat.completions.create(
        model="m", messages=ASK, tools=TOOLS, max_tokens=4, temperature=0
    )
    none = client.chat.completions.create(
        model="m", messages=ASK, tools=TOOLS, tool_choice="none", max_tokens=4, temperature=0
    )
    assert auto.usage.prompt_tokens > none.usage.prompt_tokens  # the tools were shown
    assert none.choices[0].message.tool_calls is None


def test_streamed_tool_call_deltas_reassemble(client):
    for tool_choice in (NAMED, "required"):
        stream = client.chat.completions.create(
            model="m", messages=ASK, tools=TOOLS, tool_choice=tool_choice,
            parallel_tool_calls=False, stream=True, seed=3,
        )  # fmt: skip
        calls: dict[int, dict] = {}
        finish = None
        for chunk in stream:
            finish = chunk.choices[0].finish_reason or finish
            for piece in chunk.choices[0].delta.tool_calls or ():
                call = calls.setdefault(piece.index, {"arguments": ""})
                if piece.id:
                    call.update(id=piece.id, name=piece.function.name)
                call["arguments"] += piece.function.arguments or ""
        assert finish == "tool_calls" and list(calls) == [0]
        _valid_call(calls[0]["name"], calls[0]["arguments"])


def test_response_format_json_schema_and_json_object(client):
    fmt = {"type": "json_schema", "json_schema": {"name": "w", "schema": WEATHER_PARAMS}}
    reply = client.chat.completions.create(
        model="m", messages=ASK, response_format=fmt, n=3, seed=4
    )
    assert len(reply.choices) == 3
    for choice in reply.choices:
        assert choice.finish_reason == "stop"
        jsonschema.validate(json.loads(choice.message.content), WEATHER_PARAMS)
    stream = client.chat.completions.create(
        model="m", messages=ASK, response_format=fmt, stream=True, seed=5
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    jsonschema.validate(json.loads(text), WEATHER_PARAMS)
    anything = client.chat.completions.create(
        model="m", messages=ASK, response_format={"type": "json_object"}, max_tokens=40, seed=6
    ).choices[0]
    assert anything.message.content.startswith("{")
    if anything.finish_reason == "stop":  # else the budget cut an open object
        assert isinstance(json.loads(anything.message.content), dict)


def test_logprobs_in_chat_stream_and_completions(client):
    reply = client.chat.completions.create(
        model="m", messages=ASK, logprobs=True, top_logprobs=3, max_tokens=5, temperature=0
    )
    choice = reply.choices[0]
    entries = choice.logprobs.content
    assert len(entries) == reply.usage.completion_tokens == 5
    assert b"".join(bytes(e.bytes) for e in entries).decode(errors="replace") == (
        choice.message.content
    )
    for entry in entries:
        top = [t.logprob for t in entry.top_logprobs]
        assert len(top) == 3 and top == sorted(top, reverse=True) and top[0] <= 0
        assert entry.logprob == pytest.approx(top[0])  # greedy: the likeliest token
    stream = client.chat.completions.create(
        model="m", messages=ASK, logprobs=True, max_tokens=5, temperature=0, stream=True
    )
    pieces = [c.choices[0] for c in stream if c.choices]
    streamed = [e for p in pieces if p.logprobs and p.logprobs.content for e in p.logprobs.content]
    assert [e.logprob for e in streamed] == pytest.approx([e.logprob for e in entries])
    legacy = client.completions.create(model="m", prompt="hello", logprobs=2, max_tokens=3)
    logprobs = legacy.choices[0].logprobs
    assert len(logprobs.tokens) == len(logprobs.token_logprobs) == 3
    for top in logprobs.top_logprobs:  # keyed by text: two byte tokens may both read "\ufffd"
        assert 1 <= len(top) <= 2 and all(value <= 0 for value in top.values())


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": {"type": "strnig"}}}}, "cannot be enforced"),
        ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "x"}}}, "not in tools"),
        ({"tools": TOOLS, "tool_choice": "required", "response_format": {"type": "json_object"}}, "drop one"),
        ({"logprobs": True, "top_logprobs": 21}, "less than or equal to 20"),
    ],
)  # fmt: skip
def test_what_cannot_be_done_is_a_clear_400(served, body, needle):
    response = httpx.post(
        f"{served}/v1/chat/completions", json={"messages": ASK, **body},
        headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60,
    )  # fmt: skip
    assert response.status_code == 400, response.text
    assert needle in response.json()["error"]["message"]


def test_local_folder_of_gguf_files_installs_and_answers(env, gguf_repo, tmp_path):
    result = installer(env, "install", str(gguf_repo), "--quant", "F16", "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    info = json.loads((env["models"] / "tiny-llama-gguf" / "model_info.json").read_text())
    assert info["gguf_file"] == "tiny-llama-F16.gguf" and info["smoke_test"]["passed"]
    assert info["weights_path"] == str(gguf_repo.resolve())  # mounted where it is, read-only


def test_unknown_quant_names_the_available_ones(env, gguf_repo):
    result = installer(env, "install", REPO, "--quant", "Q2_K", "--yes", timeout=300)
    assert result.returncode == 2
    assert (
        "has no Q2_K quantization" in result.stdout + result.stderr
        and "Q8_0, F16" in result.stdout + result.stderr
    )
