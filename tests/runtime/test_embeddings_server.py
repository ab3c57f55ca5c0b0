"""Embeddings: the real all-MiniLM-L6-v2 (sentence-transformers) and a plain encoder."""

from __future__ import annotations

import base64

import httpx
import numpy as np
from openai import OpenAI


def cosine(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_openai_client_default_base64_and_similarity(minilm_server):
    client = OpenAI(base_url=f"{minilm_server.url}/v1", api_key="unused")
    texts = ["A man is eating food.", "A man is eating a piece of bread.", "The plane takes off."]
    result = client.embeddings.create(model="all-MiniLM-L6-v2", input=texts)  # base64 by default
    vectors = [item.embedding for item in result.data]
    assert [len(v) for v in vectors] == [384] * 3
    assert abs(np.linalg.norm(vectors[0]) - 1.0) < 1e-4
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]) + 0.2
    assert result.usage.prompt_tokens > 0


def test_float_and_base64_agree_and_big_batches(minilm_server):
    texts = [f"sentence number {i} about cats" for i in range(150)]
    url = f"{minilm_server.url}/v1/embeddings"
    floats = httpx.post(url, json={"input": texts}, timeout=60).json()["data"]
    encoded = httpx.post(url, json={"input": texts, "encoding_format": "base64"}, timeout=60)
    decoded = [
        np.frombuffer(base64.b64decode(item["embedding"]), dtype="<f4")
        for item in encoded.json()["data"]
    ]
    assert len(floats) == len(decoded) == 150
    assert [item["index"] for item in floats] == list(range(150))
    assert np.allclose(floats[42]["embedding"], decoded[42], atol=1e-6)


def test_token_id_arrays_match_text(minilm_server, minilm_dir):
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(minilm_dir / "tokenizer.json"))
    tokenizer.no_padding()  # the file pads to 128 for training
    ids = tokenizer.encode("hello world").ids
    url = f"{minilm_server.url}/v1/embeddings"
    by_text = httpx.post(url, json={"input": "hello world"}).json()["data"][0]["embedding"]
    by_ids = httpx.post(url, json={"input": [ids]}).json()["data"][0]["embedding"]
    single = httpx.post(url, json={"input": ids}).json()["data"][0]["embedding"]
    assert cosine(by_text, by_ids) > 0.999 and cosine(by_ids, single) > 0.9999


def test_dimensions_truncate_and_renormalize(minilm_server):
    body = {"input": "hello", "dimensions": 64}
    vector = httpx.post(f"{minilm_server.url}/v1/embeddings", json=body).json()["data"][0]
    assert len(vector["embedding"]) == 64
    assert abs(np.linalg.norm(vector["embedding"]) - 1.0) < 1e-4


def test_native_generate_embeds_texts(minilm_server):
    out = httpx.post(f"{minilm_server.url}/generate", json={"texts": ["a", "b"]}).json()
    assert out["dimensions"] == 384 and len(out["embeddings"]) == 2
    bad = httpx.post(f"{minilm_server.url}/generate", json={"texts": []})
    assert bad.status_code == 400 and "texts" in bad.json()["error"]["message"]


def test_chat_on_embedding_model_is_404_naming_embeddings(minilm_server):
    body = {"messages": [{"role": "user", "content": "hi"}]}
    response = httpx.post(f"{minilm_server.url}/v1/chat/completions", json=body)
    assert response.status_code == 404
    assert "POST /v1/embeddings" in response.json()["error"]["message"]
    info = httpx.get(f"{minilm_server.url}/info").json()
    assert info["family"] == "embedding" and info["details"]["library"] == "sentence-transformers"


def test_plain_encoder_uses_mean_pooling(encoder_server, encoder_dir):
    import torch
    from transformers import AutoModel, AutoTokenizer

    info = httpx.get(f"{encoder_server.url}/info").json()
    assert info["details"]["pooling"] == "mean"
    body = {"input": ["the quick brown fox", "hello"], "normalize": False}
    served = httpx.post(f"{encoder_server.url}/v1/embeddings", json=body).json()["data"]
    tokenizer, model = (
        AutoTokenizer.from_pretrained(encoder_dir),
        AutoModel.from_pretrained(encoder_dir),
    )
    with torch.no_grad():
        features = tokenizer(body["input"], padding=True, return_tensors="pt")
        hidden = model(**features).last_hidden_state
        mask = features["attention_mask"].unsqueeze(-1).float()
        expected = (hidden * mask).sum(1) / mask.sum(1)
    assert np.allclose(served[1]["embedding"], expected[1].numpy(), atol=1e-4)
    assert np.allclose(served[0]["embedding"], expected[0].numpy(), atol=1e-4)


def test_failed_load_keeps_health_and_explains(serve, broken_dir):
    server = serve("broken", broken_dir, expect_failure=True)
    assert httpx.get(f"{server.url}/health").status_code == 200
    ready = httpx.get(f"{server.url}/health/ready")
    assert ready.status_code == 503 and ready.json()["model_state"] == "failed"
    response = httpx.get(f"{server.url}/v1/models")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "model_load_failed"
    assert "Error:" in server.log_text()
