"""Bad input to the real CLI in a child process: a message and a documented exit code, never a
traceback or a hang (issue 14, items 7 and 8)."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

LLAMA_LIKE_CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64,
    "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 2, "max_position_embeddings": 512, "vocab_size": 1000,
}  # fmt: skip


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "llm_installer", *args],
        capture_output=True, text=True, env=env, timeout=timeout, check=False,
    )  # fmt: skip


def assert_message(result: subprocess.CompletedProcess, exit_code: int, needle: str) -> None:
    assert "Traceback" not in result.stdout + result.stderr, result.stderr[-3000:]
    assert result.returncode == exit_code, result.stderr[-3000:]
    assert needle in result.stderr
    assert "Hint:" in result.stderr


def model_folder(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(LLAMA_LIKE_CONFIG))
    return folder


def write_safetensors(path: Path, header: bytes) -> None:
    path.write_bytes(struct.pack("<Q", len(header)) + header)


BAD_IDS = {
    "5000-characters": ("a" * 5000, 10, "neither a local model folder nor a Hub model id"),
    "dot-dot": ("a/..", 10, "neither a local model folder nor a Hub model id"),
    "trailing-newline": ("owner/name\n", 10, "neither a local model folder nor a Hub model id"),
    "empty": ("", 2, "The model is empty"),
    "blank": ("  ", 2, "The model is empty"),
}


@pytest.mark.parametrize("case", sorted(BAD_IDS))
def test_bad_model_ids_are_messages(llm_home, case):
    model, exit_code, needle = BAD_IDS[case]
    assert_message(run_cli("check", model), exit_code, needle)


def test_bad_id_on_install_is_a_message(llm_home):
    assert_message(run_cli("install", "a" * 5000), 10, "neither a local model folder")


def test_empty_id_is_not_the_current_folder(llm_home, tmp_path):
    model_folder(tmp_path / "cwd")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "llm_installer", "check", "", "--json"],
        capture_output=True, text=True, env=env, cwd=tmp_path / "cwd", timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert json.loads(result.stdout)["error"]["type"] == "UsageError"


def test_deeply_nested_config_json(llm_home, tmp_path):
    folder = tmp_path / "deep"
    folder.mkdir()
    (folder / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    assert_message(run_cli("check", str(folder)), 15, "config.json is nested deeper than")


def test_nested_but_parseable_config_json(llm_home, tmp_path):
    folder = tmp_path / "deep-800"
    folder.mkdir()
    (folder / "config.json").write_text('{"a": ' + "[" * 800 + "]" * 800 + "}")
    assert_message(run_cli("check", str(folder)), 15, "nested deeper than 64 levels")


@pytest.mark.parametrize(
    "header",
    [
        b'{"w": {"dtype": "F32", "shape": "xyz", "data_offsets": [0, 0]}}',
        b'{"w": {"dtype": "F32", "shape": [2, "3"], "data_offsets": [0, 0]}}',
        b'{"w": {"dtype": ["F32"], "shape": [2], "data_offsets": [0, 0]}}',
        b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    ],
    ids=["shape-string", "shape-mixed", "dtype-list", "nested-100k"],
)
def test_broken_safetensors_headers_are_skipped(llm_home, tmp_path, header):
    folder = model_folder(tmp_path / "model")
    write_safetensors(folder / "model.safetensors", header)
    result = run_cli("check", str(folder), "--json")
    assert "Traceback" not in result.stderr
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout)["family"] == "text-generation"


def test_symlink_loops_end_quickly(llm_home, tmp_path):
    folder = model_folder(tmp_path / "looped")
    (folder / "a").symlink_to(".")
    (folder / "up").symlink_to("..")
    (folder / "sub").mkdir()
    (folder / "sub" / "b").symlink_to("../sub")
    (folder / "sub" / "dangling").symlink_to("missing")
    (folder / "sub" / "self").symlink_to("self")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.bin").write_bytes(b"x" * 10)
    (folder / "out").symlink_to(outside)
    result = run_cli("check", str(folder), "--json", timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    paths = [f["path"] for f in json.loads(result.stdout)["files"]["all"]]
    assert paths == ["config.json"]


def test_linked_files_and_folders_inside_are_read(llm_home, tmp_path):
    """A Hub cache snapshot links its files out to blobs/; a folder link inside stays walked."""
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    (blobs / "abc").write_text(json.dumps(LLAMA_LIKE_CONFIG))
    folder = tmp_path / "snapshot"
    (folder / "real").mkdir(parents=True)
    (folder / "config.json").symlink_to(blobs / "abc")
    (folder / "real" / "notes.txt").write_text("hi")
    (folder / "linked").symlink_to("real")
    result = run_cli("check", str(folder), "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    paths = sorted(f["path"] for f in json.loads(result.stdout)["files"]["all"])
    assert "config.json" in paths and len([p for p in paths if p.endswith("notes.txt")]) == 1


def test_too_deep_folder_is_refused(llm_home, tmp_path):
    folder = model_folder(tmp_path / "deepdirs")
    deep = folder.joinpath(*["d"] * 40)
    deep.mkdir(parents=True)
    assert_message(run_cli("check", str(folder)), 18, "nests folders deeper than")


def fresh_checkpoint(folder: Path) -> Path:
    """What transformers 5's save_pretrained leaves: model.safetensors with mode 0600."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(**{k: v for k, v in LLAMA_LIKE_CONFIG.items() if k != "architectures"})
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


def test_fresh_checkpoint_is_refused_without_a_half_folder(llm_home, tmp_path):
    folder = fresh_checkpoint(tmp_path / "fresh-llama")
    weights = folder / "model.safetensors"
    assert weights.stat().st_mode & 0o777 == 0o600  # what the library writes today
    result = run_cli("install", str(folder))  # no terminal to ask on, no --yes
    assert_message(result, 27, "cannot read 1 path(s)")
    assert "model.safetensors" in result.stderr and "chmod -R a+rX" in result.stderr
    assert "--yes" in result.stderr
    assert weights.stat().st_mode & 0o777 == 0o600  # unchanged without consent
    assert list((llm_home / "models").iterdir()) == []  # nothing half-made


def test_fresh_checkpoint_made_readable_with_yes(llm_home, tmp_path):
    folder = fresh_checkpoint(tmp_path / "fresh-llama")
    (folder / "sub").mkdir(mode=0o700)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"}
    result = subprocess.run(
        [sys.executable, "-m", "llm_installer", "install", str(folder), "--yes"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert "Traceback" not in result.stderr
    assert "Made 2 path(s)" in result.stdout and "model.safetensors" in result.stdout
    assert (folder / "model.safetensors").stat().st_mode & 0o777 == 0o644
    assert (folder / "sub").stat().st_mode & 0o777 == 0o755
    assert result.returncode == 20  # then the (absent) Docker engine: its own documented code


@pytest.mark.parametrize("command", ["start", "stop", "remove", "train", "compose"])
@pytest.mark.parametrize("model", ["a" * 5000, ""], ids=["5000", "empty"])
def test_installed_model_commands_refuse_bad_names(llm_home, tmp_path, command, model):
    (tmp_path / "model_info.json").write_text("{}")  # the current folder looks like a model folder
    result = subprocess.run(
        [sys.executable, "-m", "llm_installer", command, model],
        capture_output=True, text=True, cwd=tmp_path, timeout=60, check=False,
        env={**os.environ, "COLUMNS": "200", "DOCKER_HOST": f"unix://{tmp_path}/none.sock"},
    )  # fmt: skip
    needle = (
        "Not installed in"
        if command == "compose"
        else "not installed"
        if model
        else "The model is empty"
    )
    assert_message(result, 33, needle)
    assert (tmp_path / "model_info.json").exists()


@pytest.mark.parametrize("text", ["[]", '{"image": "x", "family": 3}', "[" * 100_000, "not json"])
def test_list_survives_odd_model_info(llm_home, text):
    folder = llm_home / "models" / "odd"
    folder.mkdir()
    (folder / "model_info.json").write_text(text)
    result = run_cli("list", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)[0]["name"] == "odd"


def run_online(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "llm_installer", *args],
        capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"}, timeout=120, check=False,
    )  # fmt: skip


def test_deep_config_from_the_hub(hub_env, llm_home):
    hub_env.add_repo("test-org/deep", {"config.json": "[" * 100_000 + "]" * 100_000})
    assert_message(run_online("check", "test-org/deep"), 15, "config.json is nested deeper than")


@pytest.mark.parametrize(
    "header",
    [
        b'{"w": {"dtype": "F32", "shape": "xyz", "data_offsets": [0, 0]}}',
        b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    ],
    ids=["shape-string", "nested-100k"],
)
def test_broken_safetensors_header_from_the_hub(hub_env, llm_home, header):
    body = struct.pack("<Q", len(header)) + header
    hub_env.add_repo(
        "test-org/broken-header",
        {"config.json": json.dumps(LLAMA_LIKE_CONFIG), "model.safetensors": body},
    )
    result = run_online("check", "test-org/broken-header", "--json")
    assert "Traceback" not in result.stderr
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout)["family"] == "text-generation"


def test_install_of_a_looped_folder_ends(llm_home, tmp_path):
    folder = model_folder(tmp_path / "looped")
    (folder / "a").symlink_to(".")
    (folder / "b").symlink_to("..")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "DOCKER_HOST": f"unix://{tmp_path}/none.sock"}
    result = subprocess.run(
        [sys.executable, "-m", "llm_installer", "install", str(folder), "--yes"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert "Traceback" not in result.stderr
    assert result.returncode == 20, result.stderr[
        -3000:
    ]  # walked, then stopped at the absent engine
