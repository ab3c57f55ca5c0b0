"""`--data name:split` through the real `datasets` and `huggingface_hub` clients, served by the
project's Hub-compatible test server (tests/support/): records, slices, a private dataset with
and without a token, and one short trainer run on a Hub dataset."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from support.hub_files import HUB_TOKEN
from support.hub_patch import patch_datasets
from training_helpers import color_qa, trainer_env

from llm_runtime.training.data.loader import load_examples
from llm_runtime.training.errors import HubDatasetError

QA_SET = "owner/set"
PRIVATE_SET = "owner/private-set"
TRAIN = color_qa(16, seed=3)
TEST = color_qa(4, seed=4)


def jsonl(records: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


@pytest.fixture
def hub_datasets(hub_env, monkeypatch):
    """The test Hub holding a QA dataset (train/test splits as files) and a private copy of it;
    `datasets` online and pointed at it, with a fresh cache."""
    files = {"data/train.jsonl": jsonl(TRAIN), "data/test.jsonl": jsonl(TEST)}
    hub_env.add_dataset(QA_SET, files)
    hub_env.add_dataset(PRIVATE_SET, files, private=True)
    hf_home = os.environ["HF_HOME"]  # hub_env's fresh one
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_DATASETS_CACHE", os.path.join(hf_home, "datasets"))
    patch_datasets(monkeypatch, hub_env.url, hf_home)
    return hub_env


def qa_pairs(loaded) -> list[tuple[str, str]]:
    """(user, assistant) text of each QA example, in order."""
    pairs = []
    for example in loaded.examples:
        turns = dict(example.messages)  # (role, text) pairs
        pairs.append((turns["user"], turns["assistant"]))
    return pairs


def expected_pairs(records: list[dict]) -> list[tuple[str, str]]:
    return [(r["question"], r["answer"]) for r in records]


def test_a_hub_split_gives_its_records_with_the_detected_format(hub_datasets):
    loaded = load_examples(f"{QA_SET}:train")
    assert loaded.formats == ("qa",)
    assert [(f.name, f.total) for f in loaded.files] == [(f"{QA_SET}:train", len(TRAIN))]
    assert qa_pairs(loaded) == expected_pairs(TRAIN)
    fetched = hub_datasets.requests_for(QA_SET, method="GET", repo_type="dataset")
    assert "data/train.jsonl" in {r.file for r in fetched}


def test_a_slice_of_a_hub_split_gives_that_share_of_its_records(hub_datasets):
    loaded = load_examples(f"{QA_SET}:train[:50%]")
    assert qa_pairs(loaded) == expected_pairs(TRAIN[: len(TRAIN) // 2])
    assert qa_pairs(load_examples(f"{QA_SET}:test")) == expected_pairs(TEST)


def test_a_private_dataset_without_a_token_says_what_to_do(hub_datasets):
    with pytest.raises(HubDatasetError) as caught:
        load_examples(f"{PRIVATE_SET}:train")
    message = caught.value.render()
    assert message.startswith("Error: Cannot load the Hugging Face dataset")
    assert PRIVATE_SET in message and "cannot be accessed" in message
    assert "--data" in message  # the way out the hint gives
    unauthorised = hub_datasets.requests_for(PRIVATE_SET, repo_type="dataset")
    assert unauthorised and {r.status for r in unauthorised} == {401}
    assert hub_datasets.bytes_for(PRIVATE_SET, "data/train.jsonl") == 0


def test_a_private_dataset_without_a_token_names_the_token_to_set(hub_datasets):
    with pytest.raises(HubDatasetError) as caught:
        load_examples(f"{PRIVATE_SET}:train")
    assert "HF_TOKEN" in caught.value.render()


def test_a_private_dataset_loads_with_a_token(hub_datasets, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", HUB_TOKEN)
    loaded = load_examples(f"{PRIVATE_SET}:train")
    assert qa_pairs(loaded) == expected_pairs(TRAIN)
    assert all(r.token == HUB_TOKEN for r in hub_datasets.requests_for(PRIVATE_SET))


def test_the_trainer_cli_trains_on_a_hub_dataset(hub_datasets, tiny_llama, tmp_path):
    out = tmp_path / "out"
    hub = {k: os.environ[k] for k in ("HF_ENDPOINT", "HF_HOME", "HF_DATASETS_CACHE")}
    env = {**trainer_env(), **hub}
    env.pop("HF_HUB_OFFLINE")  # trainer_env() switches the Hub off; this run needs it
    env.pop("HF_TOKEN", None)
    args = [
        "--model", str(tiny_llama), "--data", f"{QA_SET}:train", "--output-dir", str(out),
        "--no-tensorboard", "--max-steps", "2", "--batch-size", "8", "--eval-steps", "1",
    ]  # fmt: skip
    run = subprocess.run(
        [sys.executable, "-m", "llm_runtime", "train", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert (out / "lora" / "adapter_model.safetensors").is_file()
    info = json.loads((out / "lora" / "adapter_info.json").read_text())
    assert info["dataset_info"]["format"] == "qa"
    fetched = hub_datasets.requests_for(QA_SET, method="GET", file="data/train.jsonl")
    assert fetched and fetched[-1].status == 200
