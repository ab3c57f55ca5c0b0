"""The macOS native path for real, on this Linux machine with a faked macOS host: a tiny model
folder written the way install writes it (check → model_info.json, start.sh), then `start`'s own
code plans the native run, creates the planned virtualenv with the planned pip commands (torch
from PIP_FIND_LINKS, the rest from the index, through pip's cache), starts the server from it and
we chat with it. The venv's versions are the image's pins (dockerfiles/constraints.txt).

What cannot be the same on Linux: PyTorch's macOS wheel (here the local CPU wheel) and Metal; the
host is faked without MPS, so the plan is the CPU one a Mac without Apple Silicon gets.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from packaging.utils import canonicalize_name
from tiny_models import make_tiny_llama

from llm_installer.build.image import dependency_set
from llm_installer.build.install import InstallOptions, finish, model_info
from llm_installer.check.checker import run_check
from llm_installer.console import Output
from llm_installer.run import start
from llm_installer.run.devices import HostRuntime
from llm_installer.run.installed import NATIVE_PID_FILE, running_native
from llm_installer.run.model_folder import ModelPaths
from llm_installer.run.start_plan import StartOptions, model_paths, plan_start
from llm_installer.settings import PROJECT_DIR, load_settings
from llm_runtime.model_info import read_model_info

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

CONSTRAINTS = PROJECT_DIR / "dockerfiles" / "constraints.txt"
MAC = HostRuntime(
    os="darwin", docker_available=False, mps_available=False,
    uid=os.getuid(), gid=os.getgid(), python=sys.executable,
)  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def installed_folder(weights: Path, settings, output: Output) -> Path:
    """A local-folder install's model folder as install writes it, less the image build (the
    native path never uses the image)."""
    profile = run_check(str(weights), revision=None, settings=settings, output=output, save=False)
    paths = ModelPaths.for_model(settings.models_path, profile.profile["model_id"])
    paths.create()
    image = SimpleNamespace(model_tag="llm-installer/model-tiny:native", base_image="", deps_tag="")
    info = model_info(profile.profile, paths, weights, "cpu", image, "cpu", InstallOptions())
    finish(paths, info, output)
    return paths.root


def venv_versions(python: Path) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json;"
        "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"
    )
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    return {canonicalize_name(k): v for k, v in json.loads(out.stdout).items()}


def pins() -> dict[str, str]:
    lines = [line.split("==") for line in CONSTRAINTS.read_text().splitlines() if "==" in line]
    return {canonicalize_name(name): version for name, version in lines}


def greedy_reply(weights: Path, messages: list[dict], max_tokens: int) -> str:
    """The same chat answered by transformers in this interpreter (greedy)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(weights)
    model = AutoModelForCausalLM.from_pretrained(weights, dtype=torch.float32)
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids
    out = model.generate(ids, max_new_tokens=max_tokens, do_sample=False, min_new_tokens=max_tokens)
    return tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)


def test_native_path_makes_the_planned_venv_serves_from_it_and_chats(
    llm_home, tmp_path, monkeypatch, capsys
):
    from openai import OpenAI

    monkeypatch.setenv("PIP_FIND_LINKS", os.environ.get("PIP_FIND_LINKS", "/opt/wheels"))
    monkeypatch.setattr(start, "detect_host_runtime", lambda: MAC)  # what a Mac reports
    settings, output = load_settings(), Output()
    weights = make_tiny_llama(tmp_path / "tiny-llama")
    model_dir = installed_folder(weights, settings, output)
    info = read_model_info(model_dir / "model_info.json")
    port = free_port()
    options = StartOptions(port=port, detach=True, no_browser=True, ready_timeout=600)
    plan = plan_start(info, model_paths(model_dir, info), MAC, options)
    assert plan.kind == "native" and plan.device == "cpu"

    started = time.monotonic()
    try:
        start.start_model(str(model_dir), options, settings, output)  # what start.sh hands to
        print(f"\nvenv made, server ready: {time.monotonic() - started:.0f} s", file=sys.__stderr__)
        pid = int((model_dir / NATIVE_PID_FILE).read_text().split()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
        assert cmdline == list(plan.command)  # the planned command, from the planned venv
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused")
        messages = [{"role": "user", "content": "hello there"}]
        reply = client.chat.completions.create(
            model="tiny", messages=messages, max_tokens=6, temperature=0
        )
        versions = venv_versions(plan.venv / "bin" / "python")
    finally:
        stop_and_remove(model_dir, plan.venv)  # 2 GB: not left in pytest's kept temp folders
    assert reply.usage.completion_tokens == 6 and reply.choices[0].finish_reason == "length"
    assert reply.choices[0].message.content == greedy_reply(weights, messages, 6)
    shown = capsys.readouterr().out.replace("\n", " ")
    assert all(f"Native environment: {line}" in shown for line in plan.differences)
    wanted = {
        canonicalize_name(p)
        for p in (*dependency_set({"requirements": info.requirements}), "torch")
    }
    assert wanted <= set(versions), wanted - set(versions)
    mismatched = {
        name: (versions[name], pin)
        for name, pin in pins().items()
        if name in versions and versions[name].split("+")[0] != pin
    }
    assert not mismatched  # every pinned package at the image's version
    assert "bitsandbytes" not in versions  # CUDA only: the plan says it is left out
    assert any("bitsandbytes" in line for line in plan.differences)


def stop_and_remove(model_dir: Path, venv: Path) -> None:
    """SIGTERM to the server (a child of this process, so reaped here), then the venv goes."""
    native = running_native(model_dir)
    if native:
        pid = int(native.name)
        os.kill(pid, signal.SIGTERM)
        with contextlib.suppress(ChildProcessError):
            for _ in range(300):
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    break
                time.sleep(0.1)
    shutil.rmtree(venv, ignore_errors=True)
