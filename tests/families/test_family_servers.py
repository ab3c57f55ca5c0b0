"""Every media family served from a tiny local folder by a real `llm_runtime serve` process."""

from __future__ import annotations

import base64
import io
import json
import wave

import httpx
import pytest
from PIL import Image
from tiny_media import make_png, make_wav


def _client(media_servers, name: str) -> httpx.Client:
    return media_servers[name].client()


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("t5", "text2text-generation"),
        ("diffusion", "diffusion"),
        ("whisper", "speech-recognition"),
        ("ctc", "speech-recognition"),
        ("vits", "audio-generation"),
        ("vit", "image-classification"),
        ("detr", "object-detection"),
        ("segformer", "image-segmentation"),
        ("clip", "zero-shot-image-classification"),
        ("llava", "image-text-to-text"),
        ("bert-classifier", "text-classification"),
        ("vit-features", "feature-extraction"),
    ],
)
def test_family_is_detected_and_described(media_servers, name, family):
    info = _client(media_servers, name).get("/info").json()
    assert info["family"] == family
    assert "POST /generate" in info["endpoints"]
    assert info["capabilities"]["inputs"]


def test_text2text_generates_and_streams(media_servers):
    with _client(media_servers, "t5") as client:
        body = {"prompt": "hello world", "max_tokens": 6, "temperature": 0}
        answer = client.post("/generate", json=body).json()
        assert answer["usage"]["completion_tokens"] == 6 and isinstance(answer["text"], str)
        with client.stream("POST", "/generate/stream", json=body) as response:
            events = [json.loads(line[5:]) for line in response.iter_lines() if line[:5] == "data:"]
        assert events[-1]["finished"] and any("token" in e for e in events[:-1])
        chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
        assert client.post("/v1/chat/completions", json=chat).json()["object"] == "chat.completion"


def test_unsupported_endpoint_names_the_served_ones(media_servers):
    response = _client(media_servers, "t5").post("/v1/images/generations", json={"prompt": "x"})
    assert response.status_code == 404
    assert "POST /v1/chat/completions" in response.json()["error"]["message"]


def test_diffusion_generate_returns_png(media_servers):
    body = {"prompt": "a red cat", "negative_prompt": "blurry", "steps": 2, "width": 32,
            "height": 32, "seed": 7, "guidance_scale": 5.0, "scheduler": "euler"}  # fmt: skip
    answer = _client(media_servers, "diffusion").post("/generate", json=body).json()
    image = Image.open(io.BytesIO(base64.b64decode(answer["images"][0])))
    assert image.format == "PNG" and image.size == (32, 32) and answer["seed"] == 7


def test_diffusion_image_to_image_upload(media_servers):
    form = {"prompt": "a cat", "steps": "2", "strength": "0.5", "seed": "1"}
    files = {"image": ("in.png", make_png(32, 32), "image/png")}
    answer = _client(media_servers, "diffusion").post("/generate", data=form, files=files).json()
    assert Image.open(io.BytesIO(base64.b64decode(answer["images"][0]))).size == (32, 32)


def test_diffusion_openai_client(media_servers):
    from openai import OpenAI

    client = OpenAI(base_url=media_servers["diffusion"].url + "/v1", api_key="unused")
    result = client.images.generate(
        model="tiny", prompt="a dog", size="32x32", n=1, response_format="b64_json",
        extra_body={"steps": 2},
    )  # fmt: skip
    image = Image.open(io.BytesIO(base64.b64decode(result.data[0].b64_json)))
    assert image.size == (32, 32)


def test_diffusion_websocket_previews_then_result(media_servers):
    from websockets.sync.client import connect

    url = media_servers["diffusion"].url.replace("http", "ws") + "/ws"
    with connect(url) as socket:
        socket.send(json.dumps({"prompt": "a bird", "steps": 3, "width": 32, "height": 32}))
        events = []
        while not events or events[-1].get("type") != "result":
            events.append(json.loads(socket.recv(timeout=60)))
    progress = [e for e in events if e["type"] == "progress"]
    assert [e["step"] for e in progress] == [1, 2, 3]
    assert progress[0]["preview"].startswith("data:image/jpeg;base64,")
    assert events[-1]["images"] and not events[-1]["interrupted"]


def test_diffusion_interrupt_over_websocket(media_servers):
    from websockets.sync.client import connect

    url = media_servers["diffusion"].url.replace("http", "ws") + "/ws"
    with connect(url) as socket:
        socket.send(json.dumps({"prompt": "slow", "steps": 200, "width": 32, "height": 32}))
        assert json.loads(socket.recv(timeout=60))["type"] == "progress"
        socket.send(json.dumps({"type": "interrupt"}))
        events = []
        while not events or events[-1].get("type") != "result":
            events.append(json.loads(socket.recv(timeout=60)))
    assert events[-1]["interrupted"] and events[-1]["images"] == []


@pytest.mark.parametrize("name", ["whisper", "ctc"])
def test_speech_recognition_long_audio_upload(media_servers, name):
    files = {"audio": ("speech.wav", make_wav(35.0), "audio/wav")}  # longer than one chunk
    answer = _client(media_servers, name).post("/generate", files=files).json()
    assert isinstance(answer["text"], str) and answer["duration"] == pytest.approx(35.0, abs=0.01)


def test_transcription_openai_client(media_servers):
    from openai import OpenAI

    client = OpenAI(base_url=media_servers["ctc"].url + "/v1", api_key="unused")
    result = client.audio.transcriptions.create(
        model="tiny", file=("clip.wav", make_wav(2.0), "audio/wav")
    )
    assert isinstance(result.text, str) and result.text


def test_audio_generation_returns_wav(media_servers):
    answer = _client(media_servers, "vits").post("/generate", json={"text": "hello"}).json()
    with wave.open(io.BytesIO(base64.b64decode(answer["audio"]))) as wav:
        assert wav.getnframes() > 0 and wav.getframerate() == answer["sampling_rate"]
    speech = _client(media_servers, "vits").post("/v1/audio/speech", json={"input": "hi"})
    assert speech.headers["content-type"] == "audio/wav" and speech.content[:4] == b"RIFF"


def test_image_classification(media_servers):
    files = {"image": ("x.png", make_png(), "image/png")}
    answer = _client(media_servers, "vit").post("/generate", files=files).json()
    assert {label["label"] for label in answer["labels"]} == {"cat", "dog", "bird"}
    assert sum(label["score"] for label in answer["labels"]) == pytest.approx(1.0, abs=1e-3)


def test_object_detection_boxes_inside_image(media_servers):
    image = "data:image/png;base64," + base64.b64encode(make_png(64, 48)).decode()
    body = {"image": image, "threshold": 0.0}
    answer = _client(media_servers, "detr").post("/generate", json=body).json()
    assert answer["objects"]
    for found in answer["objects"]:
        box = found["box"]
        assert 0 <= box["xmin"] <= box["xmax"] <= 64 and 0 <= box["ymin"] <= box["ymax"] <= 48
        assert found["label"] in {"cat", "dog"} and 0 <= found["score"] <= 1


def test_image_segmentation_masks(media_servers):
    files = {"image": ("x.png", make_png(64, 48), "image/png")}
    answer = _client(media_servers, "segformer").post("/generate", files=files).json()
    mask = Image.open(io.BytesIO(base64.b64decode(answer["segments"][0]["mask"])))
    assert mask.size == (64, 48)


def test_zero_shot_image_classification(media_servers):
    files = {"image": ("x.png", make_png(), "image/png")}
    data = {"candidate_labels": "a cat, a dog, a car"}
    answer = _client(media_servers, "clip").post("/generate", files=files, data=data).json()
    assert {label["label"] for label in answer["labels"]} == {"a cat", "a dog", "a car"}


def test_multimodal_generate_multipart_and_stream(multimodal_server):
    files = {"image": ("x.png", make_png(), "image/png")}
    data = {"prompt": "what is this", "max_tokens": "4", "temperature": "0"}
    with multimodal_server.client() as client:
        answer = client.post("/generate", files=files, data=data).json()
        assert answer["usage"]["completion_tokens"] == 4
        assert answer["usage"]["prompt_tokens"] > 16  # the image's tokens are in the prompt
        data["stream"] = "true"
        with client.stream("POST", "/generate", files=files, data=data) as response:
            events = [json.loads(line[5:]) for line in response.iter_lines() if line[:5] == "data:"]
        assert events[-1]["finished"]
        assert "".join(e.get("token", "") for e in events) == answer["text"]


def test_multimodal_openai_chat_with_data_uri(multimodal_server):
    from openai import OpenAI

    uri = "data:image/png;base64," + base64.b64encode(make_png()).decode()
    client = OpenAI(base_url=multimodal_server.url + "/v1", api_key="unused")
    content = [
        {"type": "text", "text": "describe"},
        {"type": "image_url", "image_url": {"url": uri}},
    ]
    request = {"model": "tiny", "messages": [{"role": "user", "content": content}],
               "max_tokens": 3, "temperature": 0}  # fmt: skip
    reply = client.chat.completions.create(**request)
    assert reply.usage.completion_tokens == 3
    chunks = list(client.chat.completions.create(**request, stream=True))
    assert chunks[-1].choices[0].finish_reason == "length"
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert streamed == reply.choices[0].message.content


def test_pipeline_fallback_task(media_servers):
    with _client(media_servers, "bert-classifier") as client:
        info = client.get("/info").json()
        assert info["details"]["task"] == "text-classification"
        answer = client.post("/generate", json={"inputs": "a fine day"}).json()
    assert answer["result"][0]["label"] in {"negative", "positive"}


def test_image_feature_extraction(media_servers):
    files = {"image": ("x.png", make_png(), "image/png")}
    answer = _client(media_servers, "vit-features").post("/generate", files=files).json()
    assert len(answer["embeddings"][0]) == answer["dimensions"] == 16
