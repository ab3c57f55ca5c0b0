"""collect_configs: the seed's search order, side files, and never reading what is not there."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llm_installer.check.config_files import collect_configs, main_config_path
from llm_installer.check.source import RepoFile
from llm_installer.errors import MalformedConfigError


class FakeRepo:
    """Files by path (dict → JSON text); records every read."""

    def __init__(self, files: dict[str, Any]) -> None:
        self.contents = {p: c if isinstance(c, str) else json.dumps(c) for p, c in files.items()}
        self.reads: list[str] = []

    @property
    def files(self) -> list[RepoFile]:
        return [RepoFile(path, len(text)) for path, text in self.contents.items()]

    def read_text(self, path: str) -> str:
        self.reads.append(path)
        return self.contents[path]

    def collect(self) -> tuple[dict[str, Any], dict[str, str]]:
        return collect_configs(self.files, self.read_text)


LLAMA = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": 32000}


def test_model_index_first_then_named_components_only() -> None:
    repo = FakeRepo(
        {
            "model_index.json": {
                "_class_name": "StableDiffusionPipeline",
                "unet": ["diffusers", "UNet2DConditionModel"],
                "scheduler": ["diffusers", "PNDMScheduler"],
                "safety_checker": [None, None],
                "text_encoder": ["transformers", "CLIPTextModel"],
            },
            "config.json": LLAMA,
            "unet/config.json": {"sample_size": 64},
            "unet/diffusion_pytorch_model.safetensors": "weights",
            "scheduler/scheduler_config.json": {"beta_start": 0.00085},
            "safety_checker/config.json": {"x": 1},
            "text_encoder/config.json": {"model_type": "clip_text_model"},
            "vae_decoder/config.json": {"onnx": True},
        }
    )
    configs, texts = repo.collect()
    assert list(configs) == [
        "model_index.json",
        "unet/config.json",
        "scheduler/scheduler_config.json",
        "text_encoder/config.json",
    ]
    assert texts == {}
    assert main_config_path(configs) is None
    assert not any(path.endswith(".safetensors") for path in repo.reads)


def test_config_json_wins_over_alternatives() -> None:
    repo = FakeRepo({"config.json": LLAMA, "llm_config.json": LLAMA, "model_config.json": LLAMA})
    configs, _ = repo.collect()
    assert list(configs) == ["config.json"]
    assert repo.reads == ["config.json"]
    assert main_config_path(configs) == "config.json"


def test_alternatives_preferred_names_then_validated_others() -> None:
    repo = FakeRepo(
        {
            "a_config.json": {"name": "not a model"},
            "model_config.json": {"api_key": "secret", "model_type": "llama", "vocab_size": 1},
            "llm_config.json": {"base_url": "http://x", "hidden_size": 1, "vocab_size": 2},
            "z_config.json": {"model_type": "mistral", "hidden_size": 4096},
            "generation_config.json": {"max_new_tokens": 10},
        }
    )
    configs, _ = repo.collect()
    assert repo.reads[:4] == [
        "llm_config.json",
        "model_config.json",
        "a_config.json",
        "z_config.json",
    ]
    assert main_config_path(configs) == "z_config.json"
    assert configs["z_config.json"]["model_type"] == "mistral"
    assert "llm_config.json" not in configs and "model_config.json" not in configs


def test_nested_service_keys_disqualify_an_alternative() -> None:
    repo = FakeRepo({"llm_config.json": {**LLAMA, "client": {"endpoint": "https://api"}}})
    assert main_config_path(repo.collect()[0]) is None


def test_side_files_and_templates() -> None:
    repo = FakeRepo(
        {
            "config.json": LLAMA,
            "tokenizer_config.json": {"chat_template": "{{ messages }}"},
            "generation_config.json": {"temperature": 0.6},
            "model.safetensors.index.json": {"metadata": {"total_size": 10}, "weight_map": {}},
            "modules.json": [{"idx": 0, "path": ""}, {"idx": 1, "path": "1_Pooling"}],
            "1_Pooling/config.json": {"pooling_mode_mean_tokens": True},
            "params.json": {"dim": 4096},
            "chat_template.jinja": "{% for m in messages %}{% endfor %}",
            "tokenizer.json": {"huge": True},
            "model-00001-of-00002.safetensors": "weights",
        }
    )
    configs, texts = repo.collect()
    assert set(configs) == {
        "config.json",
        "tokenizer_config.json",
        "generation_config.json",
        "model.safetensors.index.json",
        "modules.json",
        "1_Pooling/config.json",
        "params.json",
    }
    assert texts == {"chat_template.jinja": "{% for m in messages %}{% endfor %}"}
    assert "tokenizer.json" not in repo.reads
    assert not any(path.endswith(".safetensors") for path in repo.reads)


def test_only_listed_files_are_read() -> None:
    repo = FakeRepo({"config.json": LLAMA})
    repo.collect()
    assert repo.reads == ["config.json"]


def test_malformed_json_names_the_file_and_position() -> None:
    repo = FakeRepo({"config.json": LLAMA, "tokenizer_config.json": '{"a": 1,,}'})
    with pytest.raises(MalformedConfigError) as error:
        repo.collect()
    assert error.value.message.startswith("tokenizer_config.json is not valid JSON")
    assert "line 1, column 9" in error.value.message


def test_no_configs_at_all() -> None:
    assert FakeRepo({"model.Q4_0.gguf": "x", "README.md": "#"}).collect() == ({}, {})
