"""Tiny random-weight models of every media family and session-scoped servers on them."""

from __future__ import annotations

import io
import os
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tiny_media
from media_server import MediaServer, start_media_server

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
    servers: dict[str, MediaServer] = {}
    for name, folder in media_models.items():
        servers[name] = start_media_server(folder, tmp_path_factory.mktemp(f"logs-{name}"))
    try:
        yield {name: server.wait_ready() for name, server in servers.items()}
    finally:
        for server in servers.values():
            server.stop()


def make_png(width: int = 64, height: int = 48) -> bytes:
    from PIL import Image

    pixels = (np.random.default_rng(0).random((height, width, 3)) * 255).astype("uint8")
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def make_wav(seconds: float, rate: int = 22050) -> bytes:
    """A tone with noise at 22.05 kHz (the server resamples it to the model's rate)."""
    t = np.arange(int(seconds * rate)) / rate
    samples = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.random.default_rng(0).standard_normal(
        t.size
    )
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((samples * 32767).astype("<i2").tobytes())
    return buffer.getvalue()
