"""Benchmark of ``llm-installer check``: speed, bytes fetched, and how right its memory estimate is.

Part ``hub``: serve fixture repos (the real configs and file listings of shared/realconfigs, weights as
placeholders, plus one real safetensors model) from the test Hub server, time
``llm-installer check <repo> --json`` end to end in a fresh process (HF_ENDPOINT = the server, empty
HF_HOME and HOME), and count the bytes it fetched against the repo's size. Target: no weight byte beyond
the safetensors headers.

Part ``memory``: random-weight models of 100-300M parameters (llama-, bert- and whisper-shaped), saved
with ``save_pretrained`` as safetensors, are loaded on CPU in fp32 in a fresh process each and run one
forward pass at the estimate's stated context (the prefill of generate: logits for the last token
only). Measured: peak RSS above the process's baseline (taken before torch is imported, so the runtime's
own footprint counts, as the estimate's fixed overhead does). Compared with ``estimate()``'s fp32 CPU
total and with the seed's rule (weight file size × 2.0 for fp32). Target: 0.85 ≤ ours/measured ≤ 1.15.

    python bench/check.py                 # both parts
    python bench/check.py --part memory   # or --part rules (real repos, no measurement), --part hub
Prints tables; asserts nothing. torch and transformers are needed for the memory part only.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests"))  # the test Hub server (tests/support/)
GiB = 2**30
MiB = 2**20

# (config class, model class, config kwargs): 235-246M parameters each, fp32 ≈ 0.94-0.98 GB.
MEMORY_FIXTURES = {
    "llama-246M": (
        "LlamaConfig",
        "LlamaForCausalLM",
        dict(vocab_size=32000, hidden_size=1024, intermediate_size=2816, num_hidden_layers=16,
             num_attention_heads=16, num_key_value_heads=4, max_position_embeddings=2048,
             tie_word_embeddings=False),
    ),
    "bert-234M": (
        "BertConfig",
        "BertModel",
        dict(vocab_size=30522, hidden_size=1024, intermediate_size=4096, num_hidden_layers=16,
             num_attention_heads=16),
    ),
    "whisper-242M": (
        "WhisperConfig",
        "WhisperForConditionalGeneration",
        dict(vocab_size=51865, d_model=768, encoder_layers=12, decoder_layers=12, encoder_attention_heads=12,
             decoder_attention_heads=12, encoder_ffn_dim=3072, decoder_ffn_dim=3072),
    ),
}  # fmt: skip

HUB_REPOS = (
    "sentence-transformers/all-MiniLM-L6-v2",
    "openai/whisper-base",
    "meta-llama/Llama-3.2-3B-Instruct",
    "mistralai/Mistral-7B-Instruct-v0.3",
    "mistralai/Mixtral-8x7B-Instruct-v0.1",
    "runwayml/stable-diffusion-v1-5",
    "stabilityai/stable-diffusion-xl-base-1.0",
    "openai/gpt-oss-20b",
    "deepseek-ai/DeepSeek-R1",
)
LOCAL_REPO = "bench/llama-246M"  # a real safetensors file: its header is really parsed


# ---------------------------------------------------------------------------- memory: measuring


def rss_bytes() -> int:
    """This process's resident set size, from /proc (no third-party import before the baseline)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def measure(folder: str, model_class: str, context: int) -> dict[str, int]:
    """In a fresh process: load ``folder`` in fp32 on CPU, run one prefill of ``context`` tokens."""
    baseline = rss_bytes()
    import torch
    import transformers

    imported = rss_bytes() - baseline
    model = getattr(transformers, model_class).from_pretrained(folder, dtype=torch.float32).eval()
    ids = torch.randint(0, model.config.vocab_size, (1, context))
    with torch.inference_mode():
        if model_class == "WhisperForConditionalGeneration":
            features = torch.randn(
                1, model.config.num_mel_bins, 2 * model.config.max_source_positions
            )
            out = model.model(input_features=features, decoder_input_ids=ids, use_cache=True)
            model.proj_out(out.last_hidden_state[:, -1:])
        elif model_class.endswith("ForCausalLM"):
            model(input_ids=ids, use_cache=True, logits_to_keep=1)
        else:
            model(input_ids=ids)
    return {"imported": imported, "peak": peak_rss_bytes() - baseline}


def measure_in_subprocess(folder: Path, model_class: str, context: int) -> dict[str, int]:
    command = [sys.executable, __file__, "--measure", str(folder), model_class, str(context)]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "OMP_NUM_THREADS": "2"},
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def make_fixture(name: str, folder: Path) -> None:
    """Save a random-weight model as safetensors (in a subprocess, so this process stays small)."""
    config_class, model_class, kwargs = MEMORY_FIXTURES[name]
    code = (
        "import sys, json, torch, transformers as T\n"
        "torch.manual_seed(0)\n"
        f"config = T.{config_class}(**json.loads(sys.argv[1]))\n"
        f"T.{model_class}(config).save_pretrained(sys.argv[2], safe_serialization=True)\n"
    )
    subprocess.run(
        [sys.executable, "-c", code, json.dumps(kwargs), str(folder)],
        check=True,
        capture_output=True,
    )


# ---------------------------------------------------------------------------- memory: comparing


@dataclass(frozen=True)
class MemoryRow:
    name: str
    params: int
    file_bytes: int
    context: int
    ours: int
    breakdown: str
    measured: int
    imported: int
    seed: int

    @property
    def ratio(self) -> float:
        return self.ours / self.measured

    @property
    def seed_ratio(self) -> float:
        return self.seed / self.measured


def memory_row(name: str, folder: Path, repeat: int) -> MemoryRow:
    from llm_installer.check.checker import with_local_tensor_params
    from llm_installer.check.estimate import estimate, seed_rule_estimate, seed_weight_bytes
    from llm_installer.check.local_source import load_local_source

    source = with_local_tensor_params(load_local_source(folder))
    found = estimate(source)
    fp32 = found.inference_for("fp32")
    runs = [
        measure_in_subprocess(folder, MEMORY_FIXTURES[name][1], found.context_length)
        for _ in range(repeat)
    ]
    breakdown = (
        f"w {fp32.weights / MiB:.0f} + kv {fp32.kv_cache / MiB:.0f} + act {fp32.activations / MiB:.0f}"
        f" + ovh {fp32.overhead_for('cpu') / MiB:.0f}"
    )
    return MemoryRow(
        name=name,
        params=found.params.total,
        file_bytes=found.weights.size,
        context=found.context_length,
        ours=fp32.total_for("cpu"),
        breakdown=breakdown,
        measured=int(statistics.median(r["peak"] for r in runs)),
        imported=int(statistics.median(r["imported"] for r in runs)),
        seed=seed_rule_estimate(seed_weight_bytes(source))["fp32"],
    )


def run_memory(work: Path, repeat: int) -> list[MemoryRow]:
    rows = []
    for name in MEMORY_FIXTURES:
        folder = work / name
        if not folder.is_dir():
            make_fixture(name, folder)
        rows.append(memory_row(name, folder, repeat))
    return rows


def print_memory(rows: list[MemoryRow]) -> None:
    print(
        "\nInference memory, fp32 on CPU: estimate vs peak RSS above baseline (MiB; median of runs)"
    )
    header = (
        f"{'fixture':14} {'params':>7} {'file':>6} {'ctx':>5} {'ours':>6} {'measured':>8} {'ours/meas':>9}"
        f" {'seed×2.0':>8} {'seed/meas':>9}   our breakdown (torch+transformers import measured)"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r.name:14} {r.params / 1e6:6.0f}M {r.file_bytes / MiB:6.0f} {r.context:5d} {r.ours / MiB:6.0f}"
            f" {r.measured / MiB:8.0f} {r.ratio:9.2f} {r.seed / MiB:8.0f} {r.seed_ratio:9.2f}"
            f"   {r.breakdown} (import {r.imported / MiB:.0f})"
        )
    inside = all(0.85 <= r.ratio <= 1.15 for r in rows)
    print(f"target 0.85-1.15 for every fixture: {'met' if inside else 'NOT met'}")


# ---------------------------------------------------------------------------- rules on real repos


def realconfigs_source(folder: Path):
    """A realconfigs folder read as check reads a repo: files.json's inventory, configs by check's rules."""
    from llm_installer.check.config_files import collect_configs
    from llm_installer.check.source import ModelSource, RepoFile

    listing = json.loads((folder / "files.json").read_text())
    files = tuple(RepoFile(f["path"], f["size"] or 0) for f in listing)

    def read_text(path: str) -> str:  # a few listed side files were not mirrored: read as absent
        on_disk = folder / path
        return on_disk.read_text(errors="replace") if on_disk.is_file() else "null"

    configs, _ = collect_configs(files, read_text)
    return ModelSource(model_id=folder.name.replace("__", "/", 1), files=files, configs=configs)


def print_rules() -> None:
    """Our estimate next to the seed's rule on the real repos (no measurement: shows the gap)."""
    from support.hub_files import REALCONFIGS_DIR

    from llm_installer.check.estimate import estimate, seed_weight_bytes

    print(
        "\nOur estimate vs the seed's rule on real repos (GB; ours on CUDA, context min(max_pos, 4096))"
    )
    header = (
        f"{'repo':44} {'all weights':>11} {'one set':>8} {'params':>8} {'source':>9}"
        f" {'fp16 ours':>9} {'seed':>7} {'int4 ours':>9} {'seed':>7}"
    )
    print(header)
    print("-" * len(header))
    for folder in sorted(p for p in REALCONFIGS_DIR.glob("*__*") if (p / "files.json").is_file()):
        source = realconfigs_source(folder)
        found = estimate(source)
        fp16, int4 = (found.inference_for(d).total_for("cuda") for d in ("fp16", "int4"))
        print(
            f"{source.model_id:44} {seed_weight_bytes(source) / 1e9:11.1f} {found.weights.size / 1e9:8.1f}"
            f" {found.params.total / 1e9:7.2f}B {found.params.source:>9} {fp16 / 1e9:9.1f}"
            f" {found.seed_rule['fp16'] / 1e9:7.1f} {int4 / 1e9:9.1f} {found.seed_rule['int4'] / 1e9:7.1f}"
        )


# ---------------------------------------------------------------------------- hub: speed and bytes


@dataclass(frozen=True)
class HubRow:
    repo: str
    files: int
    repo_bytes: int
    seconds: float
    exit_code: int
    requests: int
    fetched: int
    weight_fetched: int
    beyond_headers: int
    params: str
    error: str = ""


def weight_bytes_beyond_headers(server, repo: str, header_sizes: dict[str, int]) -> tuple[int, int]:
    """(bytes served from weight files, of which beyond 8 + the safetensors header length)."""
    from llm_installer.check.weights import is_weight_path

    fetched = beyond = 0
    for (repo_id, path), n in server.bytes_served.items():
        if repo_id != repo or not is_weight_path(path):
            continue
        fetched += n
        allowed = 8 + header_sizes.get(path, 0) if path.endswith(".safetensors") else 0
        beyond += max(0, n - allowed)
    return fetched, beyond


def safetensors_header_sizes(folder: Path) -> dict[str, int]:
    sizes = {}
    for path in folder.rglob("*.safetensors"):
        with path.open("rb") as handle:
            sizes[path.relative_to(folder).as_posix()] = int.from_bytes(handle.read(8), "little")
    return sizes


def time_check(server, repo: str, home: Path, header_sizes: dict[str, int]) -> HubRow:
    """Run ``llm-installer check REPO --json`` in a fresh process against the test Hub."""
    server.reset_counters()
    env = {**os.environ, "HF_ENDPOINT": server.url, "HF_HOME": str(home / "hf"), "HOME": str(home)}
    env.pop("HF_HUB_OFFLINE", None)
    command = [str(Path(sys.executable).with_name("llm-installer")), "check", repo, "--json"]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    seconds = time.perf_counter() - start
    fetched, beyond = weight_bytes_beyond_headers(server, repo, header_sizes)
    snapshot = server.repos[repo].main
    return HubRow(
        repo=repo,
        files=len(snapshot.files),
        repo_bytes=sum(f.size for f in snapshot.files.values()),
        seconds=seconds,
        exit_code=done.returncode,
        requests=len(server.requests_for(repo)),
        fetched=server.total_bytes_served(repo),
        weight_fetched=fetched,
        beyond_headers=beyond,
        params=_params_of(done.stdout),
        error="" if done.returncode == 0 else _failure(done.stdout, done.stderr),
    )


def _failure(stdout: str, stderr: str) -> str:
    """The error message of --json mode ({"error": {...}}), else stderr's last line."""
    try:
        return str(json.loads(stdout)["error"]["message"])[:90]
    except (ValueError, KeyError, TypeError):
        lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
        return lines[-1][:90] if lines else ""


def _params_of(stdout: str) -> str:
    """The parameter count from the profile JSON, wherever the profile puts it."""
    try:
        profile = json.loads(stdout)
    except ValueError:
        return "?"
    found = _find_key(profile, ("total_params", "parameters", "params"))
    if isinstance(found, dict):
        found = found.get("total")
    return f"{found / 1e9:.2f}B" if isinstance(found, (int, float)) else "?"


def _find_key(value, keys):
    if isinstance(value, dict):
        for key in keys:
            if key in value:
                return value[key]
        for nested in value.values():
            found = _find_key(nested, keys)
            if found is not None:
                return found
    return None


def run_hub(work: Path) -> list[HubRow]:
    from support.hub_files import REALCONFIGS_DIR
    from support.hub_server import HubServer

    local = work / "llama-246M"
    if not local.is_dir():
        make_fixture("llama-246M", local)
    rows = []
    with HubServer() as server:
        server.add_realconfigs(REALCONFIGS_DIR)
        server.add_folder(LOCAL_REPO, local)
        headers = safetensors_header_sizes(local)
        for repo in (LOCAL_REPO, *HUB_REPOS):
            home = Path(tempfile.mkdtemp(prefix="check-home-", dir=work))
            rows.append(time_check(server, repo, home, headers if repo == LOCAL_REPO else {}))
    return rows


def print_hub(rows: list[HubRow]) -> None:
    print(
        "\nllm-installer check --json against the local test Hub (fresh process and cache per repo)"
    )
    header = (
        f"{'repo':42} {'files':>5} {'repo size':>10} {'time s':>6} {'exit':>4} {'reqs':>4} {'fetched':>10}"
        f" {'weights':>8} {'beyond hdr':>10} {'params':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r.repo:42} {r.files:5d} {_size(r.repo_bytes):>10} {r.seconds:6.2f} {r.exit_code:4d} {r.requests:4d}"
            f" {_size(r.fetched):>10} {r.weight_fetched:8d} {r.beyond_headers:10d} {r.params:>8}  {r.error}"
        )
    clean = all(r.beyond_headers == 0 for r in rows)
    print(f"weight bytes beyond safetensors headers: {'none' if clean else 'SOME'}")


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


# ---------------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("all", "memory", "rules", "hub"), default="all")
    parser.add_argument("--repeat", type=int, default=3, help="measurements per memory fixture")
    parser.add_argument("--work", type=Path, help="folder for fixtures (default: a temporary one)")
    parser.add_argument(
        "--measure", nargs=3, metavar=("FOLDER", "CLASS", "CONTEXT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.measure:
        folder, model_class, context = args.measure
        print(json.dumps(measure(folder, model_class, int(context))))
        return
    with tempfile.TemporaryDirectory(prefix="bench-check-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        if args.part in ("all", "memory"):
            print_memory(run_memory(work, args.repeat))
        if args.part in ("all", "rules"):
            print_rules()
        if args.part in ("all", "hub"):
            print_hub(run_hub(work))


if __name__ == "__main__":
    main()
