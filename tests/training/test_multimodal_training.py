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


def caption_records(repeat: int) -> list[dict]:
    captions = [{"image": f"images/{c}.png", "caption": f"A {c} square."} for c in COLORS]
    questions = [
        {"image": f"images/{c}.png", "question": "Which color?", "answer": c} for c in COLORS
    ]
    return (captions + questions) * repeat


@pytest.fixture(scope="module")
def caption_run(tiny_llava, tmp_path_factory):
    root = tmp_path_factory.mktemp("caption-run")
    write_images(root / "images")
    data = write_json(root / "captions.json", caption_records(6))
    out = root / "out"
    args = ["--model", str(tiny_llava), "--data", str(data), "--output-dir", str(out)]
    args += ["--no-tensorboard", "--learning-rate", "1e-2", "--lora-r", "16", "--epochs", "12", "--force-epochs"]
    assert main(args) == 0
    report = json.loads((out / "logs" / "training" / "training_report.json").read_text())
    return out, report


def test_image_caption_training_lowers_validation_loss(caption_run, capsys):
    out, report = caption_run
    info = report["dataset_info"]
    assert info["format"] == "image_caption"
    assert (info["train_examples"], info["val_examples"]) == (43, 5)
    assert info["train_tokens"] > 43 * 16  # every example carries its image's 16 tokens
    state = json.loads((out / "checkpoints" / "last" / "trainer_state.json").read_text())
    losses = [e["eval_loss"] for e in state["log_history"] if "eval_loss" in e]
    assert len(losses) >= 3 and losses[-1] < 0.9 * losses[0]
    assert (out / "lora" / "adapter_model.safetensors").is_file()
    adapter = json.loads((out / "lora" / "adapter_config.json").read_text())
    assert adapter["peft_type"] == "LORA"


def test_served_with_the_adapter_it_names_the_colour(caption_run, tiny_llava, tmp_path):
    out, _ = caption_run
    data = {"prompt": "Describe this image.", "max_tokens": "8", "temperature": "0"}
    answers, infos = {}, []
    for extra in ((), ("--lora", str(out / "lora"))):
        server = start_server(tiny_llava, tmp_path / f"logs{len(extra)}", *extra).wait_ready()
        try:
            with server.client() as client:
                infos.append(client.get("/info").json())
                for colour in ("red", "blue"):
                    png = (out.parent / "images" / f"{colour}.png").read_bytes()
                    files = {"image": (f"{colour}.png", png, "image/png")}
                    reply = client.post("/generate", files=files, data=data).json()
                    answers[len(extra), colour] = reply["text"]
        finally:
            server.stop()
    assert infos[0]["adapter"] is None
    assert infos[1]["adapter"] == str(out / "lora")
    assert infos[1]["training_report"] is not None
    # The random base model says nothing sensible; with the adapter each image gets its colour.
    assert "red" not in answers[0, "red"] and "blue" not in answers[0, "blue"]
    assert "red" in answers[2, "red"] and "blue" in answers[2, "blue"], answers


def test_text_model_refuses_image_records_and_multimodal_needs_images(tiny_llava, tmp_path):
    from llm_runtime.training.data.loader import load_examples
    from llm_runtime.training.data.vision import check_pairing, prepare

    write_images(tmp_path / "images")
    images = load_examples(str(write_json(tmp_path / "img.json", caption_records(1))))
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
