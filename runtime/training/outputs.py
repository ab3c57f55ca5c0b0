"""What a run leaves behind: the adapter (written atomically), best/ and last/, the report,
the history across runs and its plot."""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

CHECKPOINT_PREFIX = "checkpoint-"

ADAPTER_FILES = (
    "adapter_config.json",
    "adapter_model.safetensors",
    "adapter_model.bin",
    "config.json",
    "model.safetensors",
    "trainer_state.json",
    "autolearn_state.json",
    "README.md",
)


def write_json_atomically(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    os.replace(temporary, path)


def replace_directory(build, target: Path) -> None:
    """Build a folder next to `target`, then swap it in; a failed build leaves `target` as it was."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    shutil.rmtree(temporary, ignore_errors=True)
    try:
        temporary.mkdir()
        build(temporary)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    if target.exists():
        os.replace(target, old)
    os.replace(temporary, target)
    shutil.rmtree(old, ignore_errors=True)


def save_adapter(model, target: Path, info: dict, processing=None, check=None) -> None:
    """model.save_pretrained (+ its tokenizer or processor) into a temporary folder with
    adapter_info.json, then swap it in. `check(folder)` inspects the saved files first: it
    raises to keep `target` as it was, or returns facts to add to adapter_info.json."""

    def build(folder: Path) -> None:
        model.save_pretrained(folder)
        if processing is not None:
            processing.save_pretrained(folder)
        checked = check(folder) if check is not None else {}
        write_json_atomically(folder / "adapter_info.json", {**info, **checked})

    replace_directory(build, target)


def copy_checkpoint(checkpoint: Path, target: Path) -> None:
    """best/ and last/: the adapter and state files of a checkpoint (no optimizer state)."""

    def build(folder: Path) -> None:
        for name in ADAPTER_FILES:
            if (checkpoint / name).is_file():
                shutil.copy2(checkpoint / name, folder / name)
        (folder / "source_checkpoint.txt").write_text(checkpoint.name + "\n", encoding="utf-8")

    replace_directory(build, target)


def set_aside_previous_run(checkpoints: Path, earlier: tuple[Path, ...]) -> Path | None:
    """Move an earlier run's checkpoint-N folders (and `earlier`: best/, last/, its plan) into
    checkpoints/previous-<time>/, so a fresh run's rotation, last/ and --resume see only its own.
    Nothing is deleted: the user may still want the old best."""
    found = [p for p in checkpoints.glob(f"{CHECKPOINT_PREFIX}*") if p.is_dir()]
    found += [p for p in earlier if p.exists()]
    if not found:
        return None
    aside = new_folder_name(checkpoints, "previous-")
    aside.mkdir()
    for path in found:
        os.replace(path, aside / path.name)
    return aside


def latest_checkpoint(checkpoints: Path, global_step: int) -> Path | None:
    """This run's checkpoint at its final step, else the highest-numbered one."""
    current = checkpoints / f"{CHECKPOINT_PREFIX}{global_step}"
    if current.is_dir():
        return current
    return max(_numbered(checkpoints), key=_number, default=None)


def latest_complete_checkpoint(checkpoints: Path) -> Path | None:
    """The newest checkpoint-N that was written to the end: the Trainer writes
    trainer_state.json last, then our callback autolearn_state.json. A run killed in between
    leaves a folder whose validation history and patience are missing, so where the run keeps
    that state (any checkpoint has it), a checkpoint without it is not complete."""
    numbered = _numbered(checkpoints)
    kept = any((p / "autolearn_state.json").is_file() for p in numbered)
    complete = [
        p
        for p in numbered
        if (p / "trainer_state.json").is_file()
        and (not kept or (p / "autolearn_state.json").is_file())
    ]
    return max(complete, key=_number, default=None)


def _numbered(checkpoints: Path) -> list[Path]:
    return [p for p in checkpoints.glob(f"{CHECKPOINT_PREFIX}*") if _step(p) is not None]


def _number(checkpoint: Path) -> int:
    return _step(checkpoint) or 0


def _step(checkpoint: Path) -> int | None:
    number = checkpoint.name.removeprefix(CHECKPOINT_PREFIX)
    return int(number) if number.isdigit() else None


def events_folder(logs: Path, resuming: bool) -> Path:
    """logs/<run>/ for TensorBoard, so each run is its own series: a resumed run continues the
    newest folder, a fresh one starts a new folder named after its start time."""
    if resuming:
        runs = sorted(p for p in logs.glob("run-*") if p.is_dir())
        if runs:
            return runs[-1]
    return new_folder_name(logs, "run-")


def new_folder_name(parent: Path, prefix: str) -> Path:
    """parent/<prefix><UTC time>, with -2, -3… when that name is taken (runs a second apart)."""
    name = prefix + datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    folder, number = parent / name, 1
    while folder.exists():
        number += 1
        folder = parent / f"{name}-{number}"
    return folder


def append_history(path: Path, run: dict) -> list:
    history = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []
    history.append(run)
    write_json_atomically(path, history)
    return history


def loss_curves(log_history: list[dict]) -> dict:
    """Train/validation loss and learning rate per step from the Trainer's log history."""
    curves: dict[str, list] = {"train": [], "validation": [], "learning_rate": []}
    for entry in log_history:
        step = entry.get("step")
        if "loss" in entry:
            curves["train"].append((step, entry["loss"]))
        if "eval_loss" in entry:
            curves["validation"].append((step, entry["eval_loss"]))
        if "learning_rate" in entry:
            curves["learning_rate"].append((step, entry["learning_rate"]))
    return curves


def plot_history(log_history: list[dict], path: Path, best_step: int | None = None) -> Path | None:
    """training_history.png: loss curves (and the learning rate) with the best step marked."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    curves = loss_curves(log_history)
    figure, (loss_axis, lr_axis) = plt.subplots(
        2, 1, figsize=(9, 7), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    for name, style in (("train", "-"), ("validation", "o-")):
        if curves[name]:
            steps, values = zip(*curves[name], strict=True)
            loss_axis.plot(steps, values, style, label=f"{name} loss", markersize=3)
    if best_step:
        loss_axis.axvline(
            best_step, color="green", linestyle="--", label=f"best (step {best_step})"
        )
    loss_axis.set_ylabel("loss")
    loss_axis.legend()
    loss_axis.grid(alpha=0.3)
    if curves["learning_rate"]:
        steps, values = zip(*curves["learning_rate"], strict=True)
        lr_axis.plot(steps, values, color="tab:orange")
    lr_axis.set_ylabel("learning rate")
    lr_axis.set_xlabel("step")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
