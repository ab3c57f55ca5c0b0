"""Synthetic datasets and subprocess helpers shared by the trainer tests."""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path

COLORS = ["red", "blue", "green", "black", "white", "yellow", "brown", "pink"]
THINGS = [
    "apple",
    "sky",
    "grass",
    "coal",
    "snow",
    "sun",
    "bear",
    "rose",
    "car",
    "boat",
    "tree",
    "fish",
]


def color_qa(count: int, seed: int = 0) -> list[dict]:
    """Learnable QA: each thing always has the same colour."""
    rng = random.Random(seed)
    palette = {t: COLORS[i % len(COLORS)] for i, t in enumerate(THINGS)}
    picks = [rng.choice(THINGS) for _ in range(count)]
    return [
        {"question": f"What is the color of the {t}?", "answer": f"The {t} is {palette[t]}."}
        for t in picks
    ]


def random_qa(count: int, seed: int = 1) -> list[dict]:
    """Unlearnable QA (random answers): a model can only memorise it, so validation loss rises."""
    rng = random.Random(seed)
    words = COLORS + THINGS
    return [
        {"question": " ".join(rng.choices(words, k=3)), "answer": " ".join(rng.choices(words, k=8))}
        for _ in range(count)
    ]


def write_json(path: Path, records) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


def write_jsonl(path: Path, records) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def trainer_env() -> dict:
    """Environment for trainer subprocesses: offline, quiet, small thread count."""
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
    }


def trainer_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "llm_runtime.training", *args]


def train(model: Path, data: Path, out: Path, *extra: str) -> dict:
    """One in-process trainer run that must succeed; returns its training_report.json."""
    from llm_runtime.training.cli import main

    code = main(
        [
            "--model",
            str(model),
            "--data",
            str(data),
            "--output-dir",
            str(out),
            "--no-tensorboard",
            *extra,
        ]
    )
    assert code == 0
    return json.loads((out / "logs" / "training" / "training_report.json").read_text())


def eval_losses(out: Path, checkpoint: str = "last") -> list[tuple[int, float]]:
    state = json.loads((out / "checkpoints" / checkpoint / "trainer_state.json").read_text())
    return [(e["step"], e["eval_loss"]) for e in state["log_history"] if "eval_loss" in e]


def adapter_tensors(folder: Path) -> dict:
    from safetensors.torch import load_file

    return {k: v.tolist() for k, v in load_file(folder / "adapter_model.safetensors").items()}


def autolearn_config(**overrides):
    """An AutoLearnConfig for the decision tests: instruction thresholds, then `overrides`."""
    from llm_runtime.training.params import AutoLearnConfig

    base = {
        "enabled": True,
        "patience": 3,
        "overfitting_threshold": 0.1,
        "min_evaluations": 5,
        "perfect_loss": 0.01,
        "perplexity_limit": None,
        "task_type": "instruction",
    }
    return AutoLearnConfig(**{**base, **overrides})
