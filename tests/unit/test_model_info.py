"""llm_runtime.model_info: one typed, versioned record; strict reading, migration, one writer."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from llm_runtime.model_info import (
    SCHEMA_VERSION,
    ModelInfo,
    ModelInfoError,
    read_model_info,
    write_model_info,
)


def full(**changes) -> dict:
    return {**ModelInfo.new(model_id="org/m", family="text-generation").to_dict(), **changes}


def test_written_files_hold_every_key_and_read_back_equal(tmp_path):
    path = tmp_path / "model_info.json"
    written = write_model_info(path, {"model_id": "org/m", "family": "gguf", "gguf_file": "a.gguf"})
    data = json.loads(path.read_text())
    assert data["schema_version"] == SCHEMA_VERSION
    assert set(data) == set(ModelInfo.__dataclass_fields__)
    assert read_model_info(path) == written
    assert written.gguf_file == "a.gguf" and written.engine == "transformers"


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (full(extra_key=1), "does not know: extra_key"),
        ({k: v for k, v in full().items() if k != "device"}, "lacks the keys device"),
        (full(is_moe="yes"), "'is_moe' should be bool"),
        (full(capabilities=[1, 2]), "'capabilities' should be a list"),
        (full(model_id=None), "'model_id' should be str"),
        (full(schema_version=SCHEMA_VERSION + 1), "Upgrade llm-installer"),
        ([], "does not hold a JSON object"),
    ],
)
def test_a_bad_file_is_a_clear_error_naming_it_and_what_to_do(tmp_path, data, needle):
    path = tmp_path / "model_info.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ModelInfoError) as raised:
        read_model_info(path)
    assert needle in str(raised.value) and str(path) in str(raised.value)
    assert "install" in str(raised.value)


def test_not_json_is_a_clear_error(tmp_path):
    path = tmp_path / "model_info.json"
    path.write_text("{not json")
    with pytest.raises(ModelInfoError, match="not valid JSON.*Reinstall"):
        read_model_info(path)


def test_unversioned_files_are_migrated(tmp_path):
    """The old key names the runtime used to fall back on, and a hand-written override."""
    path = tmp_path / "model_info.json"
    old = {
        "model_family": "text-generation",
        "model_id": "org/old",
        "capabilities": {"supports_reasoning": True},
        "training": {"target_modules": ["q_proj"]},
        "hardware": {"gpus": []},
    }
    path.write_text(json.dumps(old))
    info = read_model_info(path)
    assert (info.family, info.is_reasoning, info.lora_target_modules) == (
        "text-generation",
        True,
        ("q_proj",),
    )
    assert info.schema_version == SCHEMA_VERSION and info.capabilities == ()
    path.write_text('{"family": "embedding"}')
    assert read_model_info(path).family == "embedding"
    assert read_model_info(path).device == "cpu"
    path.write_text('{"compatibility": {"recommended": {"device": "cuda"}}}')
    assert read_model_info(path).device == "cuda"  # what start fell back on before


def test_the_record_is_frozen_and_typed():
    info = ModelInfo.new(model_id="org/m", family="embedding", capabilities=["Embeddings"])
    assert info.capabilities == ("Embeddings",)
    with pytest.raises(AttributeError):
        info.family = "gguf"  # type: ignore[misc]
    with pytest.raises(ModelInfoError, match="does not know: famly"):
        ModelInfo.new(famly="gguf")


def test_the_module_imports_nothing_heavy():
    code = (
        "import sys, llm_runtime.model_info; "
        "print([m for m in ('torch', 'transformers', 'llm_installer') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_runtime_refuses_a_bad_file_before_serving(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model_info.json").write_text(json.dumps(full(family=7)))
    result = subprocess.run(
        [sys.executable, "-m", "llm_runtime", "serve", "--model", str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "'family' should be str" in result.stderr and "Traceback" not in result.stderr
