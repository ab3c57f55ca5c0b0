"""The check report in the seed's sections, rendered with rich (and as plain text for saving)."""

from __future__ import annotations

import io
from typing import Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

RULE = "=" * 72
THIN = "-" * 72
MARK = {True: "[green]✓[/]", False: "[red]✗[/]"}


def gb(value: float | int | None) -> str:
    """Bytes as GB, or MB below 1 GB (small models would all read 0.0 GB)."""
    if value is None:
        return "?"
    return f"{value / 1024**3:.1f} GB" if value >= 1024**3 else f"{value / 1024**2:.0f} MB"


def render_report(profile: dict[str, Any]) -> RenderableType:
    """The whole report as one rich renderable."""
    return Group(*model_section(profile), *hardware_section(profile))


def report_text(profile: dict[str, Any], width: int = 100) -> str:
    """The report as plain text (no colours), as saved to logs/checks/."""
    console = Console(file=io.StringIO(), width=width, color_system=None, record=True)
    console.print(render_report(profile))
    return console.export_text()


def model_section(p: dict[str, Any]) -> list[RenderableType]:
    lines = [
        f"[bold]Model Compatibility Report: {p['model_id']}[/]",
        RULE,
        f"Model Type: {p['family']}" + _flags(p),
        f"Library: {p['library']}",
        f"Architecture: {p.get('architecture') or 'n/a'}"
        + (f" ({p['model_type']})" if p.get("model_type") else ""),
        f"Task: {p['task']}",
        *_adapter_lines(p),
        *_engine_line(p.get("engine")),
        "",
        "Storage Requirements:",
        f"  - Model files: {gb(p['storage']['model_files_bytes'])}"
        + (
            f" (repo total {gb(p['storage']['repo_bytes'])})"
            if p["storage"].get("repo_bytes") != p["storage"]["model_files_bytes"]
            else ""
        ),
        f"  - Docker image (environment): ~{gb(p['storage']['environment_bytes'])}",
        f"  - Total disk space needed: ~{gb(p['storage']['total_bytes'])}",
        "",
        f"Memory Requirements (RAM/VRAM, context {p['memory']['context_length']} tokens):",
        f"  - Parameters: {_params(p['parameters'])}",
        *_memory_lines(p["memory"]),
        *_quantization_lines(p.get("quantizations")),
        "",
        "Model Capabilities:",
        *[f"  - {c}" for c in p["capabilities"] or ["(none declared)"]],
        "",
        "Special Requirements:",
        *_requirement_lines(p["requirements"]),
    ]
    warnings = p.get("warnings") or []
    if warnings:
        lines += ["", "Warnings:", *[f"  [yellow]! {w}[/]" for w in warnings]]
    return [Text.from_markup("\n".join(lines))]


def _adapter_lines(p: dict[str, Any]) -> list[str]:
    """PEFT adapter repos: the adapter and the base model whose figures the report shows."""
    adapter, base = p.get("adapter"), p.get("base_model")
    if not adapter or not base:
        return []
    rank = adapter["details"].get("r")
    return [
        f"Adapter: {adapter.get('peft_type') or 'PEFT'}"
        + (f" r={rank}" if rank else "")
        + f" ({gb(adapter.get('bytes'))})",
        f"Base model: {base['model_id']} ({base['source']}) — sizes, memory and requirements below are its own",
    ]


def _quantization_lines(rows: list[dict[str, Any]] | None) -> list[str]:
    """GGUF repos: one line per quantization (install --quant picks one; default: recommended)."""
    if not rows:
        return []
    lines = ["", "GGUF quantizations (install --quant NAME downloads only that one):"]
    for row in rows:
        where = f"fits on {', '.join(row['fits'])}" if row["fits"] else "does not fit here"
        mark = " [green]← recommended (largest that fits)[/]" if row["recommended"] else ""
        lines.append(
            f"  - {row['quantization']}: {gb(row['size_bytes'])}, memory {gb(row['memory_cpu_bytes'])} CPU / "
            f"{gb(row['memory_cuda_bytes'])} GPU — {where}{mark}"
        )
    return lines


def _engine_line(engine: Any) -> list[str]:
    """The engine install would pick (a dict in checks; installs record only its name)."""
    if isinstance(engine, dict):
        return [f"Engine: {engine['engine']} on {engine['device']} ({escape(engine['reason'])})"]
    return [f"Engine: {engine}"] if engine else []


def _flags(p: dict[str, Any]) -> str:
    flags = [name for name, on in (("MoE", p["is_moe"]), ("reasoning", p["is_reasoning"])) if on]
    return f" ({', '.join(flags)})" if flags else ""


def _params(params: dict[str, Any]) -> str:
    total = params.get("total")
    if not total:
        return "unknown"
    text = f"{total / 1e9:.2f}B" if total >= 1e8 else f"{total / 1e6:.1f}M"
    if params.get("active") and params["active"] != total:
        text += f" total, {params['active'] / 1e9:.2f}B active per token"
    return f"{text} (from {params.get('source', '?')})"


def _memory_lines(memory: dict[str, Any]) -> list[str]:
    lines = []
    for row in memory["inference"]:
        default = " (default configuration)" if row["dtype"] == memory.get("default_dtype") else ""
        lines.append(
            f"  - {row['dtype']}: {gb(row['total_cuda_bytes'])} on GPU, {gb(row['total_cpu_bytes'])} on CPU{default}"
            f" — weights {gb(row['weights_bytes'])}, KV cache {gb(row['kv_cache_bytes'])},"
            f" activations {gb(row['activations_bytes'])}"
        )
    return lines


def _requirement_lines(requirements: dict[str, list[str]]) -> list[str]:
    lines = []
    for title, key in (
        ("Base", "base"),
        ("Architecture-specific", "architecture"),
        ("Optional", "optional"),
    ):
        if requirements.get(key):
            lines += [f"  {title}:", *[f"  - {item}" for item in requirements[key]]]
    return lines


def hardware_section(p: dict[str, Any]) -> list[RenderableType]:
    hw, compat = p["hardware"], p["compatibility"]
    lines = [
        THIN,
        "Hardware Compatibility Check",
        THIN,
        "Your Hardware:",
        *_hardware_lines(hw, p.get("cuda")),
        "",
        "Compatibility Analysis:",
    ]
    training_title = Text("\nTraining Compatibility:")
    verdict = Text.from_markup(_verdict(compat) + "\n" + RULE)
    return [
        Text.from_markup("\n".join(lines)),
        _inference_table(compat["inference"]),
        training_title,
        _training_table(compat["training"]),
        *_training_support(p.get("training_support")),
        verdict,
    ]


def _training_support(support: dict[str, Any] | None) -> list[RenderableType]:
    """Why train.sh refuses this family (or some methods), and what data it takes."""
    if not support or not support["reason"]:
        return []  # the usual case (causal LMs): the table says it all
    lines = [f"train.sh: {support['reason']}."]
    if support["trainable"]:
        lines.append(f"Data: {support['data']}.")
    return [Text("\n".join(lines))]


def _hardware_lines(hw: dict[str, Any], cuda: dict[str, Any] | None = None) -> list[str]:
    model = f" ({hw['cpu_model']})" if hw.get("cpu_model") else ""
    bf16 = ", bf16 instructions" if hw.get("cpu_bf16") else ""
    lines = [
        f"  - CPU: {hw['cpu_cores']} cores, {hw['cpu_threads']} threads{bf16}{model}",
        f"  - RAM: {gb(hw['ram_total'])} total, {gb(hw['ram_available'])} available",
    ]
    if hw["gpus"]:
        lines += _gpu_lines(hw, cuda)
    elif hw.get("apple_silicon"):
        lines.append(
            f"  - GPU: Apple Silicon, unified memory (MPS {'available' if hw.get('mps_available') else 'not available'})"
        )
    else:
        lines.append("  - GPU(s): none found (no NVIDIA driver / NVML)")
    lines.append(f"  - Disk: {gb(hw['disk_free'])} free under {hw['disk_path']}")
    lines.append(_docker_line(hw))
    lines += [f"  [yellow]! {problem}[/]" for problem in hw.get("problems") or ()]
    return lines


def _gpu_lines(hw: dict[str, Any], cuda: dict[str, Any] | None) -> list[str]:
    """The driver, each GPU (MIG instances as their own devices) and the CUDA build install picks."""
    driver = (
        f" (driver {hw['nvidia_driver']}, CUDA {hw['cuda_version']})"
        if hw.get("nvidia_driver")
        else ""
    )
    lines = [f"  - GPU(s):{driver}"]
    for gpu in hw["gpus"]:
        cc = gpu.get("compute_capability")
        extra = f", compute capability {cc[0]}.{cc[1]}" if cc else ""
        mig = (
            f" (MIG instance of GPU {gpu['mig_parent']})"
            if gpu.get("mig_parent") is not None
            else ""
        )
        lines += [
            f"    • {gpu['name']}{mig}",
            f"      VRAM: {gb(gpu['vram_total'])} total, {gb(gpu['vram_free'])} free{extra}",
        ]
    if cuda and cuda.get("flavour"):
        lines.append(
            f"  - CUDA build for install: torch {cuda['torch']} (base image "
            f"{cuda['flavour']}, driver ≥ {cuda['min_driver']})"
        )
    elif cuda:
        lines.append(
            f"  - CUDA build for install: {MARK[False]} none: {cuda['reason']}. These GPUs are not used."
        )
    return lines


def _docker_line(hw: dict[str, Any]) -> str:
    """The engine, and how it gives containers GPUs; the toolkit is not judged without an engine."""
    if not hw.get("docker_available"):
        why = f": {hw['docker_error']}" if hw.get("docker_error") else ""
        return f"  - Docker: engine {MARK[False]} (not reachable{why}); GPU access to containers not checked"
    access = hw.get("gpu_access")
    if access is None and hw.get("nvidia_runtime"):
        access = "runtime"  # a profile saved before gpu_access existed
    how = {
        "runtime": "nvidia runtime, --gpus",
        "hook": "toolkit hook, --gpus",
        "cdi": "CDI, --device nvidia.com/gpu",
    }
    gpus = f"{MARK[True]} ({how.get(access, access)})" if access else MARK[False]
    return f"  - Docker: engine {MARK[True]}, NVIDIA GPUs in containers {gpus}"


def _table(columns: list[str]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column in columns:
        table.add_column(column)
    return table


def _inference_table(rows: list[dict[str, Any]]) -> Table:
    table = _table(["Quantization", "Memory", "Can Run?", "Device", "Notes"])
    for row in rows:
        table.add_row(
            row["dtype"],
            gb(row["memory_bytes"]),
            MARK[row["can_run"]],
            row["device"] or "-",
            row["notes"] or "",
        )
    return table


def _training_table(rows: list[dict[str, Any]]) -> Table:
    table = _table(["Method", "Memory", "CPU", "GPU", "Device", "Notes"])
    for row in rows:
        table.add_row(
            row["method"],
            gb(row["memory_bytes"]),
            MARK[row["cpu"]],
            MARK[row["gpu"]],
            row["device"] or "-",
            row["notes"],
        )
    return table


def _verdict(compat: dict[str, Any]) -> str:
    colours = {"compatible": "green", "limited": "yellow", "incompatible": "red"}
    verdict = compat["verdict"]
    text = f"\nVerdict: [bold {colours.get(verdict, 'white')}]{verdict.upper()}[/]"
    recommended = compat.get("recommended")
    if recommended:
        text += f" — recommended: {recommended['dtype']} on {recommended['device']}"
    if compat.get("reason"):
        text += f"\n{compat['reason']}"
    disk = compat.get("disk")
    if disk and disk.get("message"):
        text += f"\nDisk: {disk['message']}"
    return text
