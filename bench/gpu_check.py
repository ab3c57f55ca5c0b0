"""The first-GPU check: the installer's and runtime's GPU code paths on one NVIDIA GPU, in one run.

Run by ``bench/gpu_check.sh`` (which sets up the import path and carried wheels). Every section
runs even when an earlier one failed; a table of results ends the output, and the same results
go to ``$OUT/gpu_check.json`` when OUT is set. No Docker, no network; about 5-8 minutes on an H200.

    python bench/gpu_check.py [--dry-run] [--requests 64] [--work DIR]

``--dry-run`` (CI, CPU): the probes run for real, serving runs a tiny model on the CPU with a few
requests, and every CUDA-only section prints what it would run and counts as skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # tiny_models, tiny_media: the tests' model builders

PROMPT_WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "the",
    "lazy",
    "dog",
    "while",
    "a",
    "model",
    "answers",
    "questions",
]


@dataclass
class Check:
    name: str
    status: str = "ok"  # ok | failed | skipped
    seconds: float = 0.0
    facts: dict = field(default_factory=dict)


@dataclass
class Context:
    dry_run: bool
    work: Path
    requests: int
    checks: list[Check] = field(default_factory=list)
    model_dir: Path | None = None
    adapter: Path | None = None
    only: tuple[str, ...] = ()  # run only the sections whose names hold one of these

    @property
    def device(self) -> str:
        return "cpu" if self.dry_run else "cuda"


def section(
    ctx: Context,
    name: str,
    body: Callable[[Check], None],
    *,
    cuda_only: bool = False,
    plan: str = "",
) -> None:
    """Run one section; a failure is reported and the next section runs."""
    check = Check(name)
    print(f"\n=== {name}", flush=True)
    started = time.perf_counter()
    if ctx.only and not any(part in name for part in ctx.only):
        check.status = "skipped"
        check.facts["would_run"] = "not asked for (--only)"
    elif cuda_only and ctx.dry_run:
        check.status = "skipped"
        check.facts["would_run"] = plan or "needs CUDA"
        print(f"--dry-run: skipped (needs CUDA): {check.facts['would_run']}")
    else:
        try:
            body(check)
        except Exception as exc:
            check.status = "failed"
            check.facts["error"] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc(limit=6)
    check.seconds = round(time.perf_counter() - started, 1)
    for key, value in check.facts.items():
        print(f"  {key}: {value}")
    ctx.checks.append(check)


# ── probes ───────────────────────────────────────────────────────────────────────────────


def probe(ctx: Context, check: Check) -> None:
    """torch, CUDA, driver, compute capability, and the base image the installer would pick."""
    import torch

    from llm_installer.build.base_images import choose_cuda_flavour
    from llm_installer.check.hardware import probe_nvidia

    nvidia = probe_nvidia()
    check.facts.update(
        torch=torch.__version__,
        torch_cuda=torch.version.cuda,
        cuda_available=torch.cuda.is_available(),
    )
    check.facts.update(
        driver=nvidia.driver, driver_cuda=nvidia.cuda, nvml_problems=list(nvidia.problems)
    )
    check.facts["gpus"] = [
        f"{g.name} cc {g.compute_capability} {g.vram_total / 2**30:.0f} GiB {g.uuid}"
        for g in nvidia.gpus
    ]
    capabilities = [g.compute_capability for g in nvidia.gpus if g.compute_capability]
    for kind in ("cuda", "cuda-devel"):
        choice = choose_cuda_flavour(kind, nvidia.driver, capabilities)
        check.facts[f"installer_picks_{kind}"] = (
            choice.flavour.name if choice.flavour else f"none: {choice.reason}"
        )
    if torch.cuda.is_available():
        check.facts["torch_capability"] = torch.cuda.get_device_capability(0)
        check.facts["torch_arch_list"] = torch.cuda.get_arch_list()
        check.facts["bf16_native"] = torch.cuda.is_bf16_supported(including_emulation=False)
    elif not ctx.dry_run:
        raise RuntimeError("torch.cuda.is_available() is False on the GPU machine")


NVML_SNIPPET = (
    "import json, os; from llm_installer.check.hardware import probe_nvidia; n = probe_nvidia(); "
    "print(json.dumps({'uid': os.getuid(), 'driver': n.driver, 'problems': list(n.problems), "
    "'gpus': [(g.name, g.uuid, g.mig_parent) for g in n.gpus]}))"
)


def nvml_users(ctx: Context, check: Check) -> None:
    """The NVML probe as this user and, when root, as an unprivileged one (MIG listing differs)."""
    runs = {"this user": [sys.executable, "-c", NVML_SNIPPET]}
    if os.geteuid() == 0:
        runs["nobody"] = [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            sys.executable,
            "-c",
            NVML_SNIPPET,
        ]
    for who, argv in runs.items():
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=120, env=os.environ | {"HOME": "/tmp"}
        )
        check.facts[who] = result.stdout.strip() or result.stderr.strip()[-300:]
        unreachable = ("Permission denied", "ModuleNotFoundError")
        if result.returncode and who == "nobody" and any(s in result.stderr for s in unreachable):
            # This Python's packages live where an unprivileged user cannot read them (a venv
            # under a root-only folder, as CI's): say so instead of failing the section.
            check.facts[who] = f"not run: {sys.executable}'s packages are not readable by nobody"
        elif result.returncode:
            raise RuntimeError(f"the probe as {who} exited {result.returncode}")


def bitsandbytes_binary(ctx: Context, check: Check) -> None:
    """bitsandbytes' own diagnosis: which CUDA binary it loaded."""
    import bitsandbytes

    check.facts["version"] = bitsandbytes.__version__
    result = subprocess.run(
        [sys.executable, "-m", "bitsandbytes"], capture_output=True, text=True, timeout=180
    )
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    check.facts["diagnosis"] = " | ".join(
        line for line in lines if "CUDA" in line or "binary" in line.lower()
    )[-800:]
    if result.returncode:
        raise RuntimeError(f"python -m bitsandbytes exited {result.returncode}: {lines[-3:]}")


# ── a random ~0.7B Llama, served through the runtime ─────────────────────────────────────


def make_model(ctx: Context, check: Check) -> None:
    """A random Llama (~0.7B on CUDA, tiny in --dry-run) saved as a real model folder."""
    import torch
    from tiny_models import make_tiny_llama, train_tokenizer
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = ctx.work / "llama"
    if ctx.dry_run:
        ctx.model_dir = make_tiny_llama(folder)
        check.facts["parameters"] = "tiny (2 layers, 64 wide)"
        return
    tokenizer = train_tokenizer(thinking=False)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=1536, intermediate_size=4096, num_hidden_layers=28,
        num_attention_heads=12, num_key_value_heads=4, max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False, architectures=["LlamaForCausalLM"],
    )  # fmt: skip
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    with torch.no_grad():  # an EOS logit near 0 among random ones: rarely the largest
        model.lm_head.weight[tokenizer.eos_token_id].fill_(-1.0e-4)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    check.facts["parameters"] = f"{model.num_parameters() / 1e9:.2f}B"
    del model
    torch.cuda.empty_cache()
    ctx.model_dir = folder


def load_text_handler(ctx: Context, quantization: str | None, adapter: Path | None = None):
    from llm_runtime.handlers import handler_class
    from llm_runtime.metrics import Metrics
    from llm_runtime.profile import load_profile
    from llm_runtime.values import LoadSettings

    settings = LoadSettings(
        device=ctx.device, quantization=quantization, lora_dir=adapter,
        max_batch_size=ctx.requests, max_queue=ctx.requests * 2,
    )  # fmt: skip
    profile = load_profile(ctx.model_dir)
    handler = handler_class(profile.family)(metrics=Metrics())
    handler.load(profile=profile, settings=settings)
    return handler


def mixed_requests(count: int, *, sample: bool, small: bool = False) -> list:
    """``count`` prompts of 4 to 400 words with 16 to 128 new tokens (greedy or sampled);
    ``small`` (--dry-run on a CPU): 4 to 40 words, 4 to 16 tokens."""
    from llm_runtime.values import SamplingParams, TextRequest

    rng = random.Random(0)
    longest, most = (40, 13) if small else (400, 113)
    requests = []
    for index in range(count):
        words = " ".join(rng.choice(PROMPT_WORDS) for _ in range(rng.randint(4, longest)))
        sampling = SamplingParams(
            max_tokens=(4 if small else 16) + (index * 37) % most,
            temperature=0.8 if sample else 0.0,
            top_p=0.9 if sample else 1.0,
            top_k=50 if sample else 0,
            repetition_penalty=1.1 if sample else 1.0,
            seed=index if sample else None,
        )
        requests.append(TextRequest(prompt=words, sampling=sampling))
    return requests


def run_requests(handler, requests: list) -> tuple[float, int, list]:
    async def everything():
        streams = [handler.start(request=r) for r in requests]
        return await asyncio.gather(*(s.result() for s in streams))

    started = time.perf_counter()
    results = asyncio.run(everything())
    seconds = time.perf_counter() - started
    return seconds, sum(r.usage.completion_tokens for r in results), results


def serve(ctx: Context, check: Check, quantization: str | None) -> None:
    """The runtime's text handler (continuous batching) under ``requests`` concurrent requests."""
    import torch

    if not ctx.dry_run:
        torch.cuda.reset_peak_memory_stats()
    handler = load_text_handler(ctx, quantization)
    try:
        model = handler.model
        check.facts.update(batching=handler.batching, dtype=str(handler.placement.dtype))
        check.facts["device_map"] = sorted(
            {str(v) for v in (getattr(model, "hf_device_map", None) or {}).values()}
        )
        requests = mixed_requests(ctx.requests, sample=False, small=ctx.dry_run)
        # The first batch pays CUDA's and cuBLAS' start-up (3-6x the warm time on an H200):
        # reported apart, the throughput is the second, warm batch's.
        cold_s, _, _ = run_requests(handler, requests)
        seconds, tokens, results = run_requests(handler, requests)
        check.facts.update(requests=len(results), tokens=tokens, seconds=round(seconds, 2))
        check.facts["cold_first_batch_s"] = round(cold_s, 2)
        check.facts["tokens_per_s"] = round(tokens / seconds, 1)
        if not ctx.dry_run:
            check.facts["peak_gpu_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        if quantization is None:
            sampling_cost(handler, check, ctx)
    finally:
        handler.close()
        del handler
        gc.collect()
        if not ctx.dry_run:
            torch.cuda.empty_cache()


def sampling_cost(handler, check: Check, ctx: Context) -> None:
    """The same batch greedy and sampled (temperature, top-p, top-k, repetition penalty)."""
    requests = mixed_requests(ctx.requests, sample=False, small=ctx.dry_run)
    sampled = mixed_requests(ctx.requests, sample=True, small=ctx.dry_run)
    greedy_s, greedy_tokens, _ = run_requests(handler, requests)
    sampled_s, sampled_tokens, _ = run_requests(handler, sampled)
    steps = max(r.sampling.max_tokens for r in requests)
    check.facts["greedy_ms_per_step"] = round(1000 * greedy_s / steps, 2)
    check.facts["sampled_ms_per_step"] = round(1000 * sampled_s / steps, 2)
    check.facts["sampling_cost_ratio"] = round(sampled_s / greedy_s, 2)
    check.facts["tokens_greedy_sampled"] = (greedy_tokens, sampled_tokens)


def oom(ctx: Context, check: Check) -> None:
    """A real CUDA out-of-memory inside the runtime's translation: a clear error, memory freed."""
    import torch

    from llm_runtime.errors import OutOfMemory
    from llm_runtime.loading import translate_oom

    before = torch.cuda.memory_allocated()
    free, total = torch.cuda.mem_get_info()
    try:
        with translate_oom("generating"):
            torch.empty(int(total * 2), dtype=torch.uint8, device="cuda")
    except OutOfMemory as exc:
        check.facts["message"] = exc.message[:200]
        check.facts["code"] = exc.code
    else:
        raise RuntimeError("allocating twice the GPU's memory did not fail")
    check.facts["memory_back"] = torch.cuda.memory_allocated() == before
    check.facts["free_gib"] = round(torch.cuda.mem_get_info()[0] / 2**30, 1)


# ── training, then serving the adapter ───────────────────────────────────────────────────


def training_data(ctx: Context) -> Path:
    path = ctx.work / "train.jsonl"
    rng = random.Random(1)
    with path.open("w") as out:
        for _ in range(200):
            question = " ".join(rng.choice(PROMPT_WORDS) for _ in range(rng.randint(5, 30)))
            answer = " ".join(rng.choice(PROMPT_WORDS) for _ in range(rng.randint(5, 60)))
            out.write(json.dumps({"instruction": question, "output": answer}) + "\n")
    return path


def train_args(ctx: Context, method: str, optimizer: str, output: Path) -> list[str]:
    return [
        sys.executable, "-m", "llm_runtime.training", "--model", str(ctx.model_dir), "--data", str(training_data(ctx)),
        "--method", method, "--optimizer", optimizer, "--max-steps", "10", "--batch-size", "4",
        "--output-dir", str(output), "--no-tensorboard", "--device", ctx.device,
    ]  # fmt: skip


def train(ctx: Context, check: Check, method: str, optimizer: str) -> None:
    """10 steps of the runtime's trainer; the adapter lands in OUTPUT/lora."""

    output = ctx.work / f"train-{method}-{optimizer}"
    argv = train_args(ctx, method, optimizer, output)
    result = subprocess.run(argv, capture_output=True, text=True, timeout=200)
    tail = (result.stdout + result.stderr).strip().splitlines()[-6:]
    check.facts["tail"] = " | ".join(tail)[-600:]
    if result.returncode:
        raise RuntimeError(f"training exited {result.returncode}")
    adapter = output / "lora"
    check.facts["adapter"] = (adapter / "adapter_config.json").is_file()
    if method == "qlora":
        ctx.adapter = adapter


def serve_adapter(ctx: Context, check: Check) -> None:
    """The 4-bit model with the QLoRA adapter just trained, a few requests."""
    if ctx.adapter is None:
        raise RuntimeError("no adapter: the QLoRA section failed")
    handler = load_text_handler(ctx, "4bit", ctx.adapter)
    try:
        check.facts["adapter"] = str(handler.adapter)
        seconds, tokens, _ = run_requests(handler, mixed_requests(8, sample=False))
        check.facts.update(tokens=tokens, seconds=round(seconds, 2))
    finally:
        handler.close()


# ── media families ───────────────────────────────────────────────────────────────────────


def media(ctx: Context, check: Check, family: str) -> None:
    """A tiny random diffusion pipeline or Whisper, through the runtime's handler on CUDA."""
    from tiny_media import make_tiny_diffusion, make_tiny_whisper

    from llm_installer.build.smoke import silent_wav
    from llm_runtime.contract import DIFFUSION, family_spec
    from llm_runtime.handlers import handler_class
    from llm_runtime.metrics import Metrics
    from llm_runtime.profile import load_profile
    from llm_runtime.values import LoadSettings

    maker = make_tiny_diffusion if family == "diffusion" else make_tiny_whisper
    folder = maker(ctx.work / family)
    profile = load_profile(folder)
    handler = handler_class(profile.family)(metrics=Metrics())
    handler.load(profile=profile, settings=LoadSettings(device=ctx.device))
    body = (
        dict(family_spec(DIFFUSION).smoke.body) if family == DIFFUSION else {"audio": silent_wav()}
    )
    started = time.perf_counter()
    answer = asyncio.run(handler.generate(body=body))
    check.facts["device"] = handler.describe().device
    check.facts["seconds"] = round(time.perf_counter() - started, 2)
    check.facts["answer_keys"] = sorted(answer)


# ── main ─────────────────────────────────────────────────────────────────────────────────


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dry-run", action="store_true", help="CPU: probes and a tiny serve, CUDA parts skipped"
    )
    parser.add_argument(
        "--requests", type=int, default=None, help="concurrent requests (64; 4 in --dry-run)"
    )
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (a temporary one)")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        help="run only sections whose name holds this text (repeatable), e.g. --only 'random Llama'"
        " --only 'serve bf16'",
    )
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="gpu-check-"))
    ctx = Context(
        dry_run=args.dry_run,
        work=work,
        requests=args.requests or (4 if args.dry_run else 64),
        only=tuple(args.only),
    )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    run_sections(ctx)
    return report(ctx)


def run_sections(ctx: Context) -> None:
    section(
        ctx,
        "probe: torch, CUDA, driver, compute capability, installer's flavour",
        lambda c: probe(ctx, c),
    )
    section(ctx, "NVML probe as root and as a non-root user", lambda c: nvml_users(ctx, c))
    section(ctx, "bitsandbytes CUDA binary", lambda c: bitsandbytes_binary(ctx, c), cuda_only=True,
            plan="python -m bitsandbytes")  # fmt: skip
    section(ctx, "random Llama model folder", lambda c: make_model(ctx, c))
    section(ctx, f"serve {'fp32 (CPU)' if ctx.dry_run else 'bf16'}: {ctx.requests} mixed requests + sampling cost",
            lambda c: serve(ctx, c, None))  # fmt: skip
    for mode in ("4bit", "8bit"):
        section(ctx, f"serve {mode}: {ctx.requests} mixed requests", lambda c, m=mode: serve(ctx, c, m),
                cuda_only=True, plan=f"LoadSettings(quantization='{mode}'), {ctx.requests} requests")  # fmt: skip
    section(
        ctx,
        "OOM translation",
        lambda c: oom(ctx, c),
        cuda_only=True,
        plan="allocate 2x the GPU in translate_oom",
    )
    for method, optimizer in (("qlora", "adamw_torch"), ("lora", "paged_adamw_8bit")):
        plan = (
            " ".join(train_args(ctx, method, optimizer, ctx.work / "out")[1:])
            if ctx.model_dir
            else method
        )
        section(ctx, f"train {method} + {optimizer}, 10 steps", lambda c, m=method, o=optimizer: train(ctx, c, m, o),
                cuda_only=True, plan=plan)  # fmt: skip
    section(ctx, "serve 4bit with the trained adapter", lambda c: serve_adapter(ctx, c), cuda_only=True,
            plan="LoadSettings(quantization='4bit', lora_dir=<qlora adapter>)")  # fmt: skip
    for family in ("diffusion", "speech-recognition"):
        section(ctx, f"{family} (tiny, random) on CUDA", lambda c, f=family: media(ctx, c, f), cuda_only=True,
                plan=f"tiny {family} through its handler")  # fmt: skip


def report(ctx: Context) -> int:
    failed = [c for c in ctx.checks if c.status == "failed"]
    print("\n" + "=" * 100)
    print(f"{'check':62} {'status':8} {'s':>6}  key numbers")
    for check in ctx.checks:
        keys = (
            "tokens_per_s",
            "peak_gpu_gib",
            "sampling_cost_ratio",
            "installer_picks_cuda",
            "error",
        )
        numbers = ", ".join(f"{k}={check.facts[k]}" for k in keys if k in check.facts)
        print(f"{check.name[:62]:62} {check.status:8} {check.seconds:6.1f}  {numbers[:140]}")
    print(
        f"{len(ctx.checks) - len(failed)} of {len(ctx.checks)} sections ok or skipped, {len(failed)} failed"
    )
    out = os.environ.get("OUT")
    if out:
        Path(out, "gpu_check.json").write_text(
            json.dumps([c.__dict__ for c in ctx.checks], indent=2, default=str)
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
