"""The check profile: one JSON-able dict that the report renders, --json prints and install reuses."""

from __future__ import annotations

import dataclasses
from typing import Any

from llm_installer.check.compat import Compatibility, check_compatibility
from llm_installer.check.estimate import Estimates, estimate
from llm_installer.check.families.base import Detection, Requirements
from llm_installer.check.hardware import Hardware
from llm_installer.check.source import ModelSource
from llm_installer.settings import Settings
from llm_runtime.contract import TEXT_GENERATION, TrainingSupport, training_support

DTYPE_NAMES = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}
DEVICES = ("cuda", "cpu")


def build_profile(
    source: ModelSource,
    detection: Detection,
    requirements: Requirements,
    hardware: Hardware,
    settings: Settings,
) -> dict[str, Any]:
    """Everything check learned, as plain data."""
    estimates = estimate(source)
    cuda = cuda_summary(hardware)
    compat = check_compatibility(
        estimates,
        hardware if cuda is None or cuda["flavour"] else dataclasses.replace(hardware, gpus=()),
        min_disk_gb=settings.min_disk_space_gb,
        warn_disk_gb=settings.warn_disk_space_gb,
        llm=detection.family == TEXT_GENERATION,
    )
    return {
        "model_id": source.model_id,
        "revision": source.revision,
        "sha": source.sha,
        "source": "local" if source.is_local else "hub",
        "local_path": source.local_path,
        **_detection(detection),
        "hub": {
            "tags": list(source.tags),
            "pipeline_tag": source.pipeline_tag,
            "library_name": source.library_name,
            "private": source.private,
            "gated": source.gated,
        },
        "files": _files(source, estimates),
        "requirements": _requirements(requirements),
        "parameters": _parameters(estimates),
        "storage": {
            "model_files_bytes": estimates.disk.model_files,
            "repo_bytes": estimates.disk.repo_total,
            "environment_bytes": estimates.disk.environment,
            "total_bytes": estimates.disk.total,
        },
        "memory": _memory(estimates, detection),
        "hardware": dataclasses.asdict(hardware),
        "cuda": cuda,
        "compatibility": _compatibility(compat, training_support(detection.family)),
        "training_support": _training_support(detection.family),
        "warnings": [*requirements.warnings, *_estimate_warnings(estimates)],
    }


def cuda_summary(hardware: Hardware) -> dict[str, Any] | None:
    """The CUDA build of torch install would pick for these GPUs, or why none runs (None: no GPU)."""
    if not hardware.gpus:
        return None
    from llm_installer.build.base_images import cuda_choice_for

    choice = cuda_choice_for(dataclasses.asdict(hardware))
    row = choice.flavour
    return {
        "flavour": row.name if row else None,
        "cuda": row.cuda if row else None,
        "torch": row.torch_pin if row else None,
        "min_driver": row.min_driver if row else None,
        "reason": choice.reason,
    }


def _estimate_warnings(estimates: Estimates) -> list[str]:
    if not estimates.weights.files:
        return ["No weight files found in the repo: memory and disk estimates cover configs only."]
    return []


def _detection(detection: Detection) -> dict[str, Any]:
    data = dataclasses.asdict(detection)
    data["capabilities"] = list(detection.capabilities)
    data["details"] = dict(detection.details)
    return data


def _files(source: ModelSource, estimates: Estimates) -> dict[str, Any]:
    folders = sorted({f.folder for f in source.files if f.folder})
    return {
        "count": len(source.files),
        "folders": folders,
        "total_bytes": source.total_size,
        "weight_format": estimates.weights.format,
        "weight_files": [{"path": f.path, "size": f.size} for f in estimates.weights.files],
        "all": [{"path": f.path, "size": f.size} for f in source.files],
    }


def _requirements(requirements: Requirements) -> dict[str, list[str]]:
    return {
        "base": [str(r) for r in requirements.base],
        "architecture": [str(r) for r in requirements.architecture],
        "optional": [str(r) for r in requirements.optional],
        "packages": [r.package for r in (*requirements.base, *requirements.architecture)],
    }


def _parameters(estimates: Estimates) -> dict[str, Any]:
    moe = estimates.moe
    return {
        "total": estimates.params.total,
        "active": moe.active if moe else estimates.params.total,
        "source": estimates.params.source,
        "method": estimates.params.method,
        "experts": moe.experts if moe else None,
        "experts_per_token": moe.experts_per_token if moe else None,
        "quantization": estimates.quantization,
    }


def default_dtype(detection: Detection) -> str:
    """The dtype the weights were published in (bf16 when the config does not say)."""
    stored = str(detection.details.get("torch_dtype") or "")
    return DTYPE_NAMES.get(stored, "bf16")


def _memory(estimates: Estimates, detection: Detection) -> dict[str, Any]:
    rows = []
    for item in estimates.inference:
        totals = {f"total_{device}_bytes": item.total_for(device) for device in DEVICES}
        rows.append(
            {
                "dtype": item.dtype,
                "weights_bytes": item.weights,
                "kv_cache_bytes": item.kv_cache,
                "activations_bytes": item.activations,
                **totals,
            }
        )
    training = [
        {
            "method": t.method,
            "dtype": t.dtype,
            "trainable_params": t.trainable_params,
            "total_cuda_bytes": t.total_for("cuda"),
        }
        for t in estimates.training
    ]
    return {
        "context_length": estimates.context_length,
        "default_dtype": default_dtype(detection),
        "inference": rows,
        "training": training,
        "seed_rule_bytes": dict(estimates.seed_rule),
    }


def _training_support(family: str) -> dict[str, Any]:
    """What train.sh does with this family: the same table the trainer refuses from."""
    support = training_support(family)
    return {
        "trainable": support.trainable,
        "trainer": support.trainer,
        "methods": list(support.methods),
        "data": support.data,
        "reason": support.reason,
    }


def _training_note(support: TrainingSupport, method: str, notes: tuple[str, ...]) -> str | None:
    """None when train.sh runs ``method`` for this family, else the Notes cell saying why not."""
    if not support.trainable:
        return "train.sh does not train this family"
    if method not in support.methods:
        return f"{'/'.join(support.methods)} fine-tune only"
    return None


def _compatibility(compat: Compatibility, support: TrainingSupport) -> dict[str, Any]:
    verdict = compat.verdict
    return {
        "inference": [
            {
                "dtype": r.dtype,
                "memory_bytes": r.memory,
                "can_run": r.can_run,
                "device": r.device,
                "notes": r.note,
            }
            for r in compat.rows
        ],
        "training": [_training_row(r, support) for r in compat.training],
        "disk": dataclasses.asdict(compat.disk),
        "verdict": verdict.status,
        "recommended": {"dtype": verdict.dtype, "device": verdict.device}
        if verdict.dtype
        else None,
        "reason": verdict.reason,
    }


def _training_row(row: Any, support: TrainingSupport) -> dict[str, Any]:
    refused = _training_note(support, row.method, row.notes)
    return {
        "method": row.label,
        "memory_bytes": row.memory,
        "cpu": row.cpu_ok and refused is None,
        "gpu": row.gpu_ok and refused is None,
        "device": row.device if refused is None else "-",
        "notes": refused or "; ".join(row.notes),
    }
