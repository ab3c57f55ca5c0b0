"""Tiny random-weight models of every media family and session-scoped servers on them."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import tiny_media
from runtime_server import Server, start_server

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
    servers: dict[str, Server] = {}
    for name, folder in media_models.items():
        servers[name] = start_server(folder, tmp_path_factory.mktemp(f"logs-{name}"))
    try:
        yield {name: server.wait_ready() for name, server in servers.items()}
    finally:
        for server in servers.values():
            server.stop()
