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
        ("bert-fill-mask", "fill-mask"),
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
            events = list(_sse_events(response))
        assert events[-1]["finished"] and any("token" in e for e in events[:-1])
        chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
        assert client.post("/v1/chat/completions", json=chat).json()["object"] == "chat.completion"


def test_text2text_over_websocket(media_servers):
    from websockets.sync.client import connect

    body = {"prompt": "hello world", "max_tokens": 5, "temperature": 0}
    url = media_servers["t5"].url.replace("http", "ws") + "/ws"
    with connect(url) as socket:
        socket.send(json.dumps(body))
        events = _until(socket, lambda event: event.get("finished"))
    answer = _client(media_servers, "t5").post("/generate", json=body).json()
    assert events[-1]["usage"]["completion_tokens"] == 5
    assert "".join(e.get("token", "") for e in events) == answer["text"]


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


def test_diffusion_failure_arrives_over_websocket(media_servers):
    """PNDM cannot run a single step (diffusers raises in the pipeline): the socket says so
    instead of leaving the client waiting, and serves the next request."""
    from websockets.sync.client import connect

    failing = {"prompt": "x", "steps": 1, "width": 32, "height": 32, "scheduler": "pndm"}
    url = media_servers["diffusion"].url.replace("http", "ws") + "/ws"
    with connect(url) as socket:
        socket.send(json.dumps(failing))
        error = _until(socket, lambda event: "error" in event or event.get("type") == "result")
        socket.send(json.dumps({**failing, "scheduler": "euler"}))
        after = _until(socket, lambda event: event.get("type") == "result")
    assert error[-1]["error"]["type"] == "server_error"
    message = error[-1]["error"]["message"]  # what failed and an id; the details in the log
    assert "Image generation failed (error id" in message and "ValueError" not in message
    assert after[-1]["images"]


def test_diffusion_schedulers_fit_the_pipeline(media_servers):
    with _client(media_servers, "diffusion") as client:
        schedulers = client.get("/info").json()["details"]["schedulers"]
        body = {"prompt": "x", "steps": 1, "width": 32, "height": 32, "scheduler": "flow_euler"}
        refused = client.post("/generate", json=body)
    assert "euler" in schedulers and "ddim" in schedulers
    assert "flow_euler" not in schedulers  # flow matching does not fit a DDIM-family pipeline
    assert refused.status_code == 400
    assert "choose one of ddim," in refused.json()["error"]["message"]


def test_diffusion_sse_progress_then_result(media_servers):
    body = {"prompt": "a fish", "steps": 3, "width": 32, "height": 32, "stream": True}
    with (
        _client(media_servers, "diffusion") as client,
        client.stream("POST", "/generate", json=body) as response,
    ):
        events = list(_sse_events(response))
    assert [e["step"] for e in events if e["type"] == "progress"] == [1, 2, 3]
    assert events[0]["preview"].startswith("data:image/jpeg;base64,")
    assert events[-1]["type"] == "result" and len(events[-1]["images"]) == 1


def test_diffusion_interrupt_over_http(media_servers):
    body = {"prompt": "slow", "steps": 200, "width": 32, "height": 32, "stream": True}
    with (
        _client(media_servers, "diffusion") as client,
        client.stream("POST", "/generate", json=body) as response,
    ):
        events = _sse_events(response)
        assert next(events)["type"] == "progress"  # it is running
        stopped = client.post("/interrupt", json={}).json()
        events = list(events)
    assert stopped["interrupted"] == 1
    assert events[-1]["type"] == "result" and events[-1]["interrupted"]
    assert events[-1]["images"] == [] and len(events) < 200


@pytest.mark.parametrize("name", ["whisper", "ctc"])
def test_speech_recognition_long_audio_upload(media_servers, name):
    # Longer than one 30 s window: whisper refuses such audio unless it is cut into chunks.
    files = {"audio": ("speech.wav", make_wav(35.0), "audio/wav")}
    answer = _client(media_servers, name).post("/generate", files=files).json()
    assert isinstance(answer["text"], str) and answer["duration"] == pytest.approx(35.0, abs=0.01)


def test_long_audio_is_transcribed_in_chunks(media_servers, media_models):
    """The CTC server's text is transformers' chunked transcription, not the one-pass one."""
    import torch
    from transformers import pipeline

    from llm_runtime.media import decode_audio

    torch.set_num_threads(1)  # as the server runs: the same arithmetic, the same argmax
    wav = make_wav(35.0)
    answer = _client(media_servers, "ctc").post("/generate", files={"audio": ("a.wav", wav)})
    reference = pipeline("automatic-speech-recognition", model=str(media_models["ctc"]))
    rate = reference.feature_extractor.sampling_rate
    audio = {"raw": decode_audio(wav, rate), "sampling_rate": rate}
    chunked = reference(dict(audio), chunk_length_s=30.0, batch_size=4)["text"].strip()
    one_pass = reference(dict(audio))["text"].strip()
    assert chunked != one_pass, "the audio must tell the two apart"
    assert answer.json()["text"] == chunked


@pytest.mark.parametrize("name", ["whisper", "ctc"])
def test_transcription_openai_client(media_servers, name):
    from openai import OpenAI

    wav = make_wav(2.0)
    client = OpenAI(base_url=media_servers[name].url + "/v1", api_key="unused")
    result = client.audio.transcriptions.create(model="tiny", file=("clip.wav", wav, "audio/wav"))
    native = _client(media_servers, name).post("/generate", files={"audio": ("c.wav", wav)})
    assert result.text and result.text == native.json()["text"]
    if name == "ctc":  # the tiny whisper has no timestamp tokens
        verbose = client.audio.transcriptions.create(
            model="tiny", file=("clip.wav", wav, "audio/wav"), response_format="verbose_json"
        )
        assert verbose.duration == pytest.approx(2.0, abs=0.01)
        assert verbose.segments and 0 <= verbose.segments[0].start <= verbose.segments[-1].end


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
    data = {"candidate_labels": "a cat, a dog, a car,"}  # a trailing comma adds no label
    answer = _client(media_servers, "clip").post("/generate", files=files, data=data).json()
    assert {label["label"] for label in answer["labels"]} == {"a cat", "a dog", "a car"}
    empty = _client(media_servers, "clip").post(
        "/generate", files=files, data={"candidate_labels": " , "}
    )
    assert empty.status_code == 400 and "candidate label" in empty.json()["error"]["message"]


def test_multimodal_generate_multipart_and_stream(multimodal_server):
    files = {"image": ("x.png", make_png(), "image/png")}
    data = {"prompt": "what is this", "max_tokens": "4", "temperature": "0"}
    with multimodal_server.client() as client:
        answer = client.post("/generate", files=files, data=data).json()
        assert answer["usage"]["completion_tokens"] == 4
        assert answer["usage"]["prompt_tokens"] > 16  # the image's tokens are in the prompt
        data["stream"] = "true"
        with client.stream("POST", "/generate", files=files, data=data) as response:
            events = list(_sse_events(response))
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


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({"messages": [{"role": "system", "content": "be brief"}]}, "role 'user'"),
        ({"prompt": "look <image> <image> here"}, "processor refused"),  # 2 image tokens, 1 image
    ],
)
def test_multimodal_bad_request(media_servers, bad, reason):
    """400 over HTTP, an error event over /ws, and the socket goes on serving."""
    from websockets.sync.client import connect

    image = "data:image/png;base64," + base64.b64encode(make_png()).decode()
    body = {**bad, "image": image, "max_tokens": 3}
    answer = _client(media_servers, "llava").post("/generate", json=body)
    assert answer.status_code == 400 and reason in answer.json()["error"]["message"]
    url = media_servers["llava"].url.replace("http", "ws") + "/ws"
    with connect(url) as socket:
        socket.send(json.dumps(body))
        error = json.loads(socket.recv(timeout=60))
        socket.send("[1, 2]")
        not_an_object = json.loads(socket.recv(timeout=60))
        greedy = {"prompt": "what is it", "image": image, "max_tokens": 3, "temperature": 0}
        socket.send(json.dumps(greedy))
        events = _until(socket, lambda event: event.get("finished"))
    assert error["error"]["type"] == "invalid_request_error" and reason in error["error"]["message"]
    assert not_an_object["error"]["type"] == "invalid_request_error"
    assert events[-1]["usage"]["completion_tokens"] == 3


def test_pipeline_fallback_task(media_servers):
    with _client(media_servers, "bert-classifier") as client:
        info = client.get("/info").json()
        assert info["details"]["task"] == "text-classification"
        answer = client.post("/generate", json={"inputs": "a fine day"}).json()
    assert answer["result"][0]["label"] in {"negative", "positive"}


def test_fill_mask_through_transformers_task_table(media_servers):
    with _client(media_servers, "bert-fill-mask") as client:
        info = client.get("/info").json()
        body = {"inputs": "a b [MASK] d", "parameters": {"top_k": 3}}
        answer = client.post("/generate", json=body).json()
        bad = client.post("/generate", json={"inputs": "no mask here"})
    assert info["details"]["task"] == "fill-mask" and info["details"]["pipeline"]
    assert info["capabilities"]["inputs"] == ["text"] and "top_k" in info["details"]["parameters"]
    found = answer["result"]
    assert answer["task"] == "fill-mask" and len(found) == 3
    assert [f["score"] for f in found] == sorted((f["score"] for f in found), reverse=True)
    assert all(f["sequence"].startswith("a b") for f in found)
    assert bad.status_code == 400 and "mask" in bad.json()["error"]["message"].lower()


def test_image_feature_extraction(media_servers):
    files = {"image": ("x.png", make_png(), "image/png")}
    answer = _client(media_servers, "vit-features").post("/generate", files=files).json()
    assert len(answer["embeddings"][0]) == answer["dimensions"] == 16


def _until(socket, last, timeout: float = 60) -> list[dict]:
    """Events received on socket up to and including the first one `last` accepts."""
    events: list[dict] = []
    while not events or not last(events[-1]):
        events.append(json.loads(socket.recv(timeout=timeout)))
    return events


def _sse_events(response):
    """The JSON events of an SSE response, as they arrive."""
    return (json.loads(line[5:]) for line in response.iter_lines() if line[:5] == "data:")
