"""training_report.json and the adapter_info.json / training_history.json entries built from it."""

from __future__ import annotations

import math
from datetime import datetime, timezone

from llm_runtime.training.autolearn import AutoLearnState, perplexity
from llm_runtime.training.data.prepare import PreparedData
from llm_runtime.training.data.vision import VisionData
from llm_runtime.training.params import TrainPlan


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _finite(value):
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


def final_metrics(log_history: list[dict], state: AutoLearnState, task_type: str) -> dict:
    train = next((e["loss"] for e in reversed(log_history) if "loss" in e), None)
    val = next((e["eval_loss"] for e in reversed(log_history) if "eval_loss" in e), None)
    best_epoch = next(
        (
            e.get("epoch")
            for e in log_history
            if e.get("step") == state.best_step and "eval_loss" in e
        ),
        None,
    )
    metrics = {
        "train_loss": train,
        "val_loss": val,
        "best_val_loss": _finite(state.best_val_loss),
        "best_step": state.best_step or None,
        "best_epoch": best_epoch,
        "evaluations": state.evaluations,
    }
    if task_type == "text" and val is not None:
        metrics["perplexity"] = perplexity(val)
    return metrics


def build_report(
    *,
    model_id: str,
    family: str,
    started: str,
    duration_s: float,
    stop_reason: str,
    plan: TrainPlan,
    data: PreparedData | VisionData,
    state: AutoLearnState,
    log_history: list[dict],
    global_step: int,
    epoch: float | None,
    lora_extra: dict,
    paths: dict,
    moe: dict | None,
) -> dict:
    loaded = data.loaded
    report = {
        "model_id": model_id,
        "family": family,
        "training_started": started,
        "training_completed": now_iso(),
        "duration_hours": round(duration_s / 3600, 4),
        "final_metrics": final_metrics(log_history, state, loaded.task_type),
        "stop_reason": stop_reason,
        "method": plan.method,
        "mode": plan.mode,
        "global_step": global_step,
        "epochs_completed": round(epoch, 3) if epoch is not None else None,
        "lora_config": {
            "r": plan.lora_r,
            "alpha": plan.lora_alpha,
            "dropout": plan.lora_dropout,
            **lora_extra,
        },
        "dataset_info": {
            "format": loaded.format_label,
            "task_type": loaded.task_type,
            "train_examples": len(data.train),
            "val_examples": len(data.validation),
            "train_tokens": data.train_tokens,
            "files": {f.name: dict(f.counts) for f in loaded.files},
        },
        "training_parameters": plan.to_dict(),
        "learning_rate_reductions": state.lr_reductions,
        "paths": paths,
    }
    if state.adjustments:
        report["adaptive_adjustments"] = state.adjustments
    if moe:
        report["moe"] = moe
    return report


def history_entry(report: dict) -> dict:
    """One run in training_history.json."""
    keys = (
        "training_started",
        "training_completed",
        "stop_reason",
        "method",
        "mode",
        "global_step",
        "epochs_completed",
        "final_metrics",
        "dataset_info",
    )
    entry = {k: report.get(k) for k in keys}
    entry["dataset_info"] = {k: v for k, v in report["dataset_info"].items() if k != "files"}
    return entry
