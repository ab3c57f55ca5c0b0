"""Tiny random-weight vision models beyond tiny_media's: a timm classifier and a Qwen2-VL.

The timm functions run in the side venv (tests/families/side_venv.py), which has timm and
torchvision; nothing here imports them at module level.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

TIMM_LABELS = ("cat", "dog", "bird")


def make_tiny_timm(path: Path) -> Path:
    """A timm `test_vit` saved the way timm's push_to_hf_hub lays out a Hub repo."""
    import timm
    import torch
    from timm.models._hub import save_for_hf

    torch.manual_seed(0)
    model = timm.create_model("test_vit", pretrained=False, num_classes=3, img_size=64)
    with torch.no_grad():  # spread the logits: a wrong load must show in the scores
        model.get_classifier().weight.mul_(20.0)
    save_for_hf(
        model, str(path), model_config={"label_names": list(TIMM_LABELS)},
        data_config={"input_size": (3, 64, 64)}, safe_serialization=True,
    )  # fmt: skip
    return path


def timm_scores(model_dir: Path, image_path: Path) -> dict[str, float]:
    """label -> probability by timm itself, loading the folder as it loads a Hub repo."""
    import timm
    import torch
    from PIL import Image
    from timm.data import create_transform, resolve_data_config

    model = timm.create_model(f"local-dir:{model_dir}", pretrained=True).eval()
    transform = create_transform(**resolve_data_config(model=model))
    pixels = transform(Image.open(image_path).convert("RGB")).unsqueeze(0)
    with torch.no_grad():
        probabilities = model(pixels).softmax(-1)[0].tolist()
    labels = json.loads((model_dir / "config.json").read_text())["label_names"]
    return dict(zip(labels, probabilities, strict=True))


if __name__ == "__main__":  # run by the side venv: `python tiny_vision.py DIR IMAGE`
    folder = make_tiny_timm(Path(sys.argv[1]))
    print(json.dumps(timm_scores(folder, Path(sys.argv[2]))))
