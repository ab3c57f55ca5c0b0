"""The models that need torchvision, served from the side venv: a timm classifier (a Hub-style
timm folder) and a Qwen2-VL, each checked against its own library's answer."""

from __future__ import annotations

import base64

import pytest
import tiny_vision
from tiny_media import make_png

pytestmark = pytest.mark.slow


def test_timm_folder_is_detected_and_described(side_servers):
    info = side_servers["timm"].client().get("/info").json()
    assert info["family"] == "image-classification"
    assert info["details"]["library"] == "timm" and info["details"]["num_labels"] == 3
    assert info["details"]["architecture"] == "test_vit"


def test_timm_scores_match_timm_itself(side_servers, side_references):
    expected = side_references["timm"]
    files = {"image": ("x.png", make_png(), "image/png")}
    with side_servers["timm"].client() as client:
        answer = client.post("/generate", files=files).json()
        top = client.post("/generate", files=files, data={"top_k": "1"}).json()
    scores = {label["label"]: label["score"] for label in answer["labels"]}
    assert scores == pytest.approx(expected, abs=1e-4)  # the folder's weights, not a fresh head
    assert [label["label"] for label in answer["labels"]] == sorted(scores, key=scores.get)[::-1]
    assert [label["label"] for label in top["labels"]] == [max(expected, key=expected.get)]


def test_qwen2_vl_is_detected_and_described(side_servers):
    info = side_servers["qwen2-vl"].client().get("/info").json()
    assert info["family"] == "image-text-to-text"
    assert info["details"]["architecture"] == "Qwen2VLForConditionalGeneration"
    assert info["details"]["processor"] == "Qwen2VLProcessor" and info["details"]["chat_template"]


def test_qwen2_vl_answer_matches_transformers_generate(side_servers, side_references):
    files = {"image": ("x.png", make_png(), "image/png")}
    data = {"prompt": tiny_vision.QWEN2_VL_PROMPT, "temperature": "0",
            "max_tokens": str(tiny_vision.QWEN2_VL_MAX_TOKENS)}  # fmt: skip
    answer = side_servers["qwen2-vl"].client().post("/generate", files=files, data=data).json()
    assert answer["text"] == side_references["qwen2-vl"]


@pytest.mark.parametrize(("width", "height"), [(64, 48), (32, 32), (200, 120)])
def test_qwen2_vl_image_tokens_follow_the_image_size(side_servers, width, height):
    """Dynamic resolution: 8-pixel patches merged 2x2, each image within 64*64 pixels."""
    body = {"prompt": "what is this", "max_tokens": 1}
    with side_servers["qwen2-vl"].client() as client:
        text_only = client.post("/generate", json=body).json()["usage"]["prompt_tokens"]
        files = {"image": ("x.png", make_png(width, height), "image/png")}
        data = {key: str(value) for key, value in body.items()}
        answer = client.post("/generate", files=files, data=data).json()
    resized = {(64, 48): (64, 48), (32, 32): (32, 32), (200, 120): (80, 48)}[(width, height)]
    image_tokens = (resized[0] // 16) * (resized[1] // 16)
    assert answer["usage"]["prompt_tokens"] - text_only == image_tokens + 2  # + vision start/end


def test_qwen2_vl_chat_with_two_images_and_turns(side_servers):
    from openai import OpenAI

    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,"
             + base64.b64encode(make_png(32, 32)).decode()}}  # fmt: skip
    client = OpenAI(base_url=side_servers["qwen2-vl"].url + "/v1", api_key="unused")

    def reply(*messages):
        return client.chat.completions.create(
            model="tiny", messages=messages, max_tokens=2, temperature=0
        )

    two = {"role": "user", "content": [image, {"type": "text", "text": "and"}, image]}
    one = {"role": "user", "content": [image, {"type": "text", "text": "and"}]}
    extra = reply(two).usage.prompt_tokens - reply(one).usage.prompt_tokens
    assert extra == 2 * 2 + 2  # a 32x32 image: 2x2 merged patches, vision start and end
    turns = reply(
        {"role": "system", "content": "be brief"},
        two,
        {"role": "assistant", "content": "two pictures"},
        {"role": "user", "content": "which is brighter?"},
    )
    assert turns.usage.completion_tokens == 2 and turns.choices[0].finish_reason == "length"
