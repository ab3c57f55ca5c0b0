"""GGUF quantizations: memory per variant, the largest that fits here, and the files of one.

A GGUF file is loaded as it is stored, so its memory is its size + the KV cache of the default
context (when a config.json says the shapes) + the runtime overhead of llm_installer.check.memory.
"""

from __future__ import annotations

from typing import Any

from llm_installer.check.compat import capacity
from llm_installer.check.hardware import Hardware
from llm_installer.check.memory import RUNTIME_OVERHEAD
from llm_installer.errors import InstallerError

CONTEXT = 4096  # the runtime's default llama.cpp context (llm_runtime.handlers.gguf)
KV_BYTES = 2  # llama.cpp keeps the KV cache in f16


class UnknownQuantError(InstallerError):
    exit_code = 2


def quantization_table(profile: dict[str, Any], hardware: Hardware) -> list[dict[str, Any]]:
    """One row per variant, smallest first: size, memory on CPU and GPU, and where it fits."""
    kv = kv_cache_bytes(profile)
    rows = []
    for variant in profile["details"].get("variants") or []:
        memory = {
            device: RUNTIME_OVERHEAD[device].of(variant["size"]) + variant["size"] + kv
            for device in ("cpu", "cuda")
        }
        fits = [
            d
            for d in ("cuda", "cpu")
            if (d == "cpu" or hardware.has_cuda) and memory[d] <= capacity(hardware, d)
        ]
        rows.append(
            {
                "quantization": variant["quantization"],
                "files": variant["files"],
                "size_bytes": variant["size"],
                "memory_cpu_bytes": memory["cpu"],
                "memory_cuda_bytes": memory["cuda"],
                "fits": fits,
                "recommended": False,
            }
        )
    fitting = [row for row in rows if row["fits"]]
    if fitting:
        max(fitting, key=lambda row: row["size_bytes"])["recommended"] = True
    return rows


def kv_cache_bytes(profile: dict[str, Any]) -> int:
    """The KV cache at CONTEXT tokens from the estimate's shapes (0 when the repo has no config)."""
    for row in profile.get("memory", {}).get("inference", []):
        if row.get("kv_cache_bytes"):
            context = profile["memory"].get("context_length") or CONTEXT
            per_token = (
                row["kv_cache_bytes"]
                / context
                / {"fp32": 4, "int8": 1, "int4": 0.5}.get(row["dtype"], 2)
            )
            return int(per_token * KV_BYTES * min(context, CONTEXT))
    return 0


def choose_quantization(profile: dict[str, Any], wanted: str | None) -> dict[str, Any]:
    """The variant ``--quant`` names (any case), else the recommended one, else the smallest."""
    rows = profile.get("quantizations") or []
    if not rows:
        raise UnknownQuantError(f"{profile['model_id']} lists no GGUF quantizations.")
    if wanted is None:
        return next((row for row in rows if row["recommended"]), rows[0])
    found = next((row for row in rows if row["quantization"].upper() == wanted.upper()), None)
    if found is None:
        names = ", ".join(row["quantization"] for row in rows)
        raise UnknownQuantError(
            f"{profile['model_id']} has no {wanted} quantization.",
            hint=f"Pick one of: {names} (--quant NAME).",
        )
    return found
