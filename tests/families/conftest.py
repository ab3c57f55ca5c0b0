"""Tiny random-weight models of every media family and session-scoped servers on them.

The models that need torchvision (timm, Qwen2-VL) are made and served in the side venv.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import side_venv
import tiny_media
import tiny_vision
from runtime_server import Server, serving

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

BUILDERS: dict[str, Callable[[Path], Path]] = {
    "t5": tiny_media.make_tiny_t5,
    "diffusion": tiny_media.make_tiny_diffusion,
    "whisper": tiny_media.make_tiny_whisper,
    "ctc": tiny_media.make_tiny_ctc,
    "vits": tiny_media.make_tiny_vits,
    "vit": tiny_media.make_tiny_vit,
    "detr": tiny_media.make_tiny_detr,
    "segformer": tiny_media.make_tiny_segformer,
    "clip": tiny_media.make_tiny_clip,
    "llava": tiny_media.make_tiny_llava,
    "bert-classifier": tiny_media.make_tiny_bert_classifier,
    "bert-fill-mask": tiny_media.make_tiny_bert_fill_mask,
    "vit-features": lambda path: tiny_media.write_model_info(
        tiny_media.make_tiny_vit(path), "feature-extraction"
    ),
}


@pytest.fixture(scope="session")
def media_models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("media-models")
    return {name: build(root / name) for name, build in BUILDERS.items()}


@pytest.fixture(scope="session")
def media_servers(media_models, tmp_path_factory):
    """name -> ready server; all start together (they load in parallel), stop at the end."""
    with serving(media_models, tmp_path_factory.mktemp("logs")) as ready:
        yield ready


SIDE_MODELS = ("timm", "qwen2-vl")


@pytest.fixture(scope="session")
def side_models(tmp_path_factory) -> tuple[side_venv.SideVenv, Path, dict]:
    """(the side venv, its models' folder, their reference answers for tiny_media.make_png())."""
    venv = side_venv.side_venv(tmp_path_factory.mktemp("side-src"))
    folder = tmp_path_factory.mktemp("side-models")
    (folder / "image.png").write_bytes(tiny_media.make_png())
    output = venv.run(tiny_vision.__file__, str(folder), str(folder / "image.png"))
    return venv, folder, json.loads(output)


@pytest.fixture(scope="session")
def side_servers(side_models, tmp_path_factory):
    """name -> ready server in the side venv (started together), stopped at the end."""
    venv, folder, _ = side_models
    folders = {name: folder / name for name in SIDE_MODELS}
    with serving(folders, tmp_path_factory.mktemp("side-logs"), venv.start_server) as ready:
        yield ready


@pytest.fixture(scope="session")
def side_references(side_models) -> dict:
    return side_models[2]


@pytest.fixture(params=["llava", "qwen2-vl"])
def multimodal_server(request) -> Server:
    """Each image-text-to-text model: llava in the dev venv, Qwen2-VL in the side venv."""
    servers = "side_servers" if request.param in SIDE_MODELS else "media_servers"
    return request.getfixturevalue(servers)[request.param]
