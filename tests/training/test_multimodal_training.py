"""Image+caption fine-tuning of a tiny llava-like model, then serving it with the adapter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from runtime_server import start_server
from tiny_media import make_tiny_llava
from training_helpers import write_json

from llm_runtime.training.cli import main
from llm_runtime.training.errors import DataFormatError

COLORS = {"red": (220, 30, 30), "blue": (30, 30, 220), "green": (30, 200, 30), "black": (0, 0, 0)}


@pytest.fixture(scope="module")
def tiny_llava(tmp_path_factory) -> Path:
    return make_tiny_llava(tmp_path_factory.mktemp("llava") / "model")


def write_images(folder: Path) -> dict[str, Path]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, rgb in COLORS.items():
        paths[name] = folder / f"{name}.png"
        Image.new("RGB", (40, 40), rgb).save(paths[name])
    return paths


def caption_records(repeat: int, *, questions: bool = True) -> list[dict]:
    captions = [{"image": f"images/{c}.png", "caption": f"A {c} square."} for c in COLORS]
    asked = [{"image": f"images/{c}.png", "question": "Which color?", "answer": c} for c in COLORS]
    return (captions + (asked if questions else [])) * repeat


def train_on_captions(model: Path, root: Path, *extra: str) -> tuple[Path, dict]:
    write_images(root / "images")
    data = write_json(root / "captions.json", caption_records(12, questions=False))
    out = root / "out"
    args = ["--model", str(model), "--data", str(data), "--output-dir", str(out)]
    assert main([*args, "--no-tensorboard", "--force-epochs", *extra]) == 0
    return out, json.loads((out / "logs" / "training" / "training_report.json").read_text())


def describe_images(server, out: Path) -> dict[str, str]:
    """The served model's greedy answer for the red and the blue square."""
    data = {"prompt": "Describe this image.", "max_tokens": "8", "temperature": "0"}
    answers = {}
    with server.client() as client:
        for colour in ("red", "blue"):
            png = (out.parent / "images" / f"{colour}.png").read_bytes()
            files = {"image": (f"{colour}.png", png, "image/png")}
            answers[colour] = client.post("/generate", files=files, data=data).json()["text"]
    return answers


def served(model: Path, logs: Path, *extra: str):
    return start_server(model, logs, *extra).wait_ready()


@pytest.fixture(scope="module")
def lora_run(tiny_llava, tmp_path_factory):
    root = tmp_path_factory.mktemp("caption-lora")
    return train_on_captions(
        tiny_llava, root, "--learning-rate", "1e-2", "--lora-r", "16", "--epochs", "10"
    )


def test_image_caption_lora_lowers_validation_loss(lora_run):
    out, report = lora_run
    info = report["dataset_info"]
    assert info["format"] == "image_caption"
    assert (info["train_examples"], info["val_examples"]) == (43, 5)
    assert info["train_tokens"] > 43 * 16  # every example carries its image's 16 tokens
    state = json.loads((out / "checkpoints" / "last" / "trainer_state.json").read_text())
    losses = [e["eval_loss"] for e in state["log_history"] if "eval_loss" in e]
    assert len(losses) >= 3 and losses[-1] < losses[0] - 0.2
    assert (out / "lora" / "adapter_model.safetensors").is_file()
    assert json.loads((out / "lora" / "adapter_config.json").read_text())["peft_type"] == "LORA"


def test_served_with_the_adapter_the_answers_change(lora_run, tiny_llava, tmp_path):
    out, _ = lora_run
    runs = []
    for extra in ((), ("--lora", str(out / "lora"))):
        server = served(tiny_llava, tmp_path / f"logs{len(extra)}", *extra)
        try:
            info = server.client().get("/info").json()
            runs.append((info, describe_images(server, out)))
        finally:
            server.stop()
    (base_info, base), (tuned_info, tuned) = runs
    assert base_info["adapter"] is None
    assert tuned_info["adapter"] == str(out / "lora")
    assert tuned_info["training_report"] is not None
    assert tuned != base


def test_full_fine_tune_is_served_and_answers_with_captions(tiny_llava, tmp_path):
    out, report = train_on_captions(
        tiny_llava, tmp_path, "--method", "full", "--learning-rate", "2e-3", "--epochs", "8"
    )
    assert report["method"] == "full"
    finetuned = out / "finetuned"
    assert (finetuned / "processor_config.json").is_file()  # the processor travels with it
    base, tuned = (served(m, tmp_path / f"logs-{m.name}") for m in (tiny_llava, finetuned))
    try:
        before, after = describe_images(base, out), describe_images(tuned, out)
    finally:
        base.stop(), tuned.stop()
    # A tiny random model learns the captions' shape reliably (the colour only sometimes).
    assert not any(answer.startswith("A ") for answer in before.values()), before
    assert all(answer.startswith("A ") for answer in after.values()), after


def test_text_model_refuses_image_records_and_multimodal_needs_images(tiny_llava, tmp_path):
    from llm_runtime.training.data.loader import load_examples
    from llm_runtime.training.data.vision import check_pairing, prepare

    write_images(tmp_path / "images")
    images = load_examples(str(write_json(tmp_path / "img.json", caption_records(1))))
    assert {e.format for e in images.examples} == {"image_caption"}
    assert {e.prompt for e in images.examples} == {"", "Which color?"}  # captions, questions
    with pytest.raises(DataFormatError, match="is a text model"):
        check_pairing(images, multimodal=False, model_dir=tmp_path)
    texts = [{"question": "q", "answer": "a"}]
    mixed = load_examples(f"{write_json(tmp_path / 'qa.json', texts)},{tmp_path / 'img.json'}")
    with pytest.raises(DataFormatError, match="every record needs an image"):
        check_pairing(mixed, multimodal=True, model_dir=tmp_path)
    missing = [{"image": "images/nowhere.png", "caption": "x"}]
    loaded = load_examples(str(write_json(tmp_path / "missing.json", missing)))
    with pytest.raises(DataFormatError, match="image not found: images/nowhere.png"):
        prepare(loaded, None, validation_split=0)
