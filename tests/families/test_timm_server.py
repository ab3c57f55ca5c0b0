"""A timm classifier (a Hub-style timm folder) served by a real `llm_runtime serve` process.

It runs in the side venv (side_venv.py): timm needs a torchvision that imports.
"""

from __future__ import annotations

import json
import subprocess

import pytest
import side_venv
import tiny_vision
from tiny_media import make_png

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def timm_setup(tmp_path_factory):
    """(server, timm's own scores for the test image), the server stopped at the end."""
    python = side_venv.side_python()
    scratch = tmp_path_factory.mktemp("timm")
    pythonpath = side_venv.source_path(scratch / "src")
    (scratch / "x.png").write_bytes(make_png())
    model = scratch / "model"
    made = subprocess.run(
        [str(python), tiny_vision.__file__, str(model), str(scratch / "x.png")],
        env=side_venv.environment(pythonpath), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr[-4000:]
    server = side_venv.start_server(python, pythonpath, model, scratch / "logs")
    try:
        yield server.wait_ready(), json.loads(made.stdout)
    finally:
        server.stop()


def test_timm_folder_is_detected_and_described(timm_setup):
    server, _ = timm_setup
    info = server.client().get("/info").json()
    assert info["family"] == "image-classification"
    assert info["details"]["library"] == "timm" and info["details"]["num_labels"] == 3
    assert info["details"]["architecture"] == "test_vit"


def test_timm_scores_match_timm_itself(timm_setup):
    server, expected = timm_setup
    files = {"image": ("x.png", make_png(), "image/png")}
    answer = server.client().post("/generate", files=files).json()
    scores = {label["label"]: label["score"] for label in answer["labels"]}
    assert scores == pytest.approx(expected, abs=1e-4)  # the folder's weights, not a fresh head
    assert [label["label"] for label in answer["labels"]] == sorted(scores, key=scores.get)[::-1]
    top = server.client().post("/generate", files=files, data={"top_k": "1"}).json()
    assert [label["label"] for label in top["labels"]] == [max(expected, key=expected.get)]
