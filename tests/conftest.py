"""Fixtures shared by every test folder."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def llm_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated ~/LLM: models, cache and logs under tmp_path, an empty config file."""
    home = tmp_path / "LLM"
    for name in ("models", "cache", "logs"):
        (home / name).mkdir(parents=True)
        monkeypatch.setenv(f"LLM_INSTALLER_{name.upper()}_DIR", str(home / name))
    config = home / "config.yaml"
    config.write_text("{}\n")
    monkeypatch.setenv("LLM_INSTALLER_CONFIG", str(config))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("LLM_INSTALLER_DEBUG", raising=False)
    return home


_TESTS_DIR = Path(__file__).resolve().parent
if str(_TESTS_DIR) not in sys.path:  # tests/ is not a package: make `import support` work
    sys.path.insert(0, str(_TESTS_DIR))

from support.hub_files import GATED_REPO, HUB_TOKEN, PRIVATE_REPO, REALCONFIGS_DIR  # noqa: E402
from support.hub_patch import patch_huggingface_hub  # noqa: E402
from support.hub_server import HubServer  # noqa: E402

LLAMA_LIKE_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 512,
    "vocab_size": 1000,
    "rms_norm_eps": 1e-06,
    "rope_theta": 10000.0,
    "torch_dtype": "bfloat16",
    "tie_word_embeddings": False,
}


def _small_repo_files() -> dict[str, bytes | int]:
    return {
        "config.json": json.dumps(LLAMA_LIKE_CONFIG, indent=2).encode(),
        "generation_config.json": b'{"bos_token_id": 1, "eos_token_id": 2}',
        "model.safetensors": 1_000_000,  # placeholder weights
    }


@pytest.fixture(scope="session")
def hub_server() -> Iterator[HubServer]:
    """A started :class:`support.hub_server.HubServer` shared by the session.

    Holds every repo of tests/fixtures/realconfigs (e.g. ``meta-llama/Llama-3.2-3B-Instruct``, weights as
    placeholders of their real sizes), plus ``test-org/private-model`` (private) and
    ``test-org/gated-model`` (gated ``"manual"``), each with a small llama-like ``config.json``.
    The valid token is ``HUB_TOKEN`` (``"hf_test_token"``). Tests may add repos of their own (use a
    unique repo id); prefer :func:`hub_env` to get the server with counters reset.
    """
    server = HubServer()
    if REALCONFIGS_DIR.is_dir():
        server.add_realconfigs(REALCONFIGS_DIR)
    server.add_repo(PRIVATE_REPO, _small_repo_files(), private=True, library_name="transformers")
    server.add_repo(GATED_REPO, _small_repo_files(), gated="manual", library_name="transformers")
    server.tokens = {HUB_TOKEN}
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def hub_env(
    hub_server: HubServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[HubServer]:
    """Route the real ``huggingface_hub`` client (in-process and child processes) to ``hub_server``.

    * Environment (for child processes such as ``llm-installer check`` run through ``subprocess``, and
      for code that reads the variables at call time): ``HF_ENDPOINT`` = the server URL, ``HF_HOME`` = a
      fresh ``tmp_path/hf-home`` (so no cache or token leaks between tests), ``HF_HUB_DISABLE_TELEMETRY=1``;
      ``HF_HUB_OFFLINE``, ``TRANSFORMERS_OFFLINE``, ``HF_TOKEN``, ``HUGGING_FACE_HUB_TOKEN``,
      ``HF_HUB_CACHE``, ``HF_TOKEN_PATH`` and friends are unset.
    * In-process: ``huggingface_hub`` copies ``HF_ENDPOINT``/``HF_HOME``/... into
      ``huggingface_hub.constants`` when it is first imported, so changing the environment afterwards has
      no effect on it. :func:`support.hub_patch.patch_huggingface_hub` therefore monkeypatches
      ``constants.ENDPOINT``, ``constants.HUGGINGFACE_CO_URL_TEMPLATE`` (used by ``hf_hub_url``), the
      cache/token paths, ``HF_HUB_OFFLINE``, the module-level ``huggingface_hub.hf_api.api`` instance and
      the few ``from ..constants import X`` copies, plus any module attribute ``ENDPOINT``/``HF_ENDPOINT``
      still holding the old endpoint. Everything is undone by ``monkeypatch`` after the test.
      ``HfApi()`` objects created *before* the fixture ran keep their old ``endpoint``: create them inside
      the test (or pass ``endpoint=hub_env.url``).

    Yields the server with its request log and byte counters reset.
    """
    hf_home = tmp_path / "hf-home"
    hf_home.mkdir()
    for var in (
        "HF_HUB_OFFLINE",
        "TRANSFORMERS_OFFLINE",
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "HF_TOKEN_PATH",
        "HF_HUB_CACHE",
        "HUGGINGFACE_HUB_CACHE",
        "HF_ASSETS_CACHE",
        "HF_XET_CACHE",
        "HF_OIDC_RESOURCE",
        "HUGGINGFACE_CO_STAGING",
        "TRANSFORMERS_CACHE",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", hub_server.url)
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    patch_huggingface_hub(monkeypatch, hub_server.url, hf_home)
    hub_server.reset_counters()
    hub_server.clear_errors()
    yield hub_server
    hub_server.clear_errors()


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A loadable random-weight LlamaForCausalLM saved with save_pretrained (safetensors).

    ``num_parameters.json`` beside it holds the parameter count torch reports.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-llama")
    config = LlamaConfig(
        **{k: v for k, v in LLAMA_LIKE_CONFIG.items() if k not in ("architectures", "model_type")}
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder)
    (folder / "num_parameters.json").write_text(json.dumps(model.num_parameters()))
    return folder
