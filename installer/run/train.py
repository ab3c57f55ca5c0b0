"""Running ``train``: the trainer in the model's image (or the macOS virtualenv).

The plan comes from ``llm_installer.run.train_plan``; the adapter lands in lora/, where ``start``
loads it (a full fine-tune: the whole model in finetuned/, which ``start`` then serves). In the foreground the trainer writes straight to this terminal and Ctrl+C lets it
save a resumable checkpoint; with ``--detach`` the container stays after it ends, for its logs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from llm_installer.console import Output
from llm_installer.errors import DockerUnavailableError, InstallerError
from llm_installer.run.devices import detect_host_runtime
from llm_installer.run.installed import (
    docker_client,
    require_installed,
    require_weights,
    resolve_model_dir,
    running_container,
)
from llm_installer.run.runtime_args import refuse_unparsable
from llm_installer.run.start import (
    STOP_SIGNALS,
    AlreadyRunningError,
    check_port_free,
    foreground_env,
    interrupt_on,
    prepare_dirs,
    prepare_foreground,
    remove_leftovers,
    require_image,
    run_container_detached,
    spawn_native_detached,
)
from llm_installer.run.start_plan import FINETUNED, DockerPlan, NativePlan, StartPlan, model_paths
from llm_installer.run.train_plan import TrainOptions, plan_train
from llm_installer.settings import Settings
from llm_runtime.model_info import ModelInfo

log = logging.getLogger(__name__)

TRAIN_INTERRUPTED_EXIT = 130  # the trainer's exit code after Ctrl+C / SIGTERM


class TrainingFailedError(InstallerError):
    exit_code = 41
    hint = "Read the trainer's messages above; the adapter in lora/ was left as it was."


class TrainingInterruptedError(InstallerError):
    exit_code = TRAIN_INTERRUPTED_EXIT


class FamilyNotTrainableError(InstallerError):
    exit_code = 42


def refuse_untrainable(info: ModelInfo, options: TrainOptions) -> None:
    """The trainer's own per-family table (llm_runtime.contract), asked before any container."""
    from llm_runtime.contract import (
        STATE_SPACE,
        TEXT_GENERATION,
        trainable_families,
        training_support,
    )

    support = training_support(info.family or TEXT_GENERATION)
    if support.trainable or options.tensorboard_only:
        return
    works = ", ".join(name for name in trainable_families() if name != STATE_SPACE)
    raise FamilyNotTrainableError(
        f"train.sh cannot fine-tune {info.model_id or 'this model'}: {support.reason}",
        hint=f"train.sh trains these families: {works}. `llm-installer check` shows the same "
        "in its training table.",
    )


def train_model(model: str, options: TrainOptions, settings: Settings, output: Output) -> None:
    """Resolve MODEL, plan the training run for this host and run it; the adapter lands in
    lora/, where ``start`` loads it. Ctrl+C (or SIGTERM) lets the trainer save a resumable
    checkpoint before it stops."""
    model_dir = resolve_model_dir(model, settings.models_path)
    record = require_installed(model_dir)
    refuse_untrainable(record, options)
    paths = model_paths(model_dir, record)
    require_weights(paths.weights)
    role = "tensorboard" if options.tensorboard_only else "train"
    busy = running_container(model_dir, role=role)
    if busy:
        what = "shows TensorBoard" if options.tensorboard_only else "is training"
        raise AlreadyRunningError(
            f"{record.model_id or model} {what} already ({busy.name})",
            hint=f"Follow it with `docker logs -f {busy.name}`, "
            f"or stop it with `llm-installer stop {model_dir.name}`.",
        )
    options = replace(
        options, hf_token=options.hf_token or settings.token,
        hf_endpoint=options.hf_endpoint or os.environ.get("HF_ENDPOINT"),
    )  # fmt: skip
    plan = plan_train(record, paths, detect_host_runtime(), options)
    refuse_unparsable(
        plan.argv() if isinstance(plan, NativePlan) else plan.container.command, record.engine
    )
    for warning in plan.warnings:
        output.warning(warning)
    if plan.url:
        check_port_free(options.host, options.tensorboard_port)
    if isinstance(plan, DockerPlan):
        require_image(plan.container.image)
        remove_leftovers(docker_client(), plan.container.name)  # an ended --detach run
    prepare_dirs(plan)
    if options.detach:
        _TRAIN_RUNNERS[plan.kind](plan, model_dir, options, output)
        return
    started = time.time()
    code, interrupts = run_training_foreground(
        plan, model_dir, output, board_only=options.tensorboard_only
    )
    _training_result(code, plan, model_dir, options, output, aborted=interrupts > 1, since=started)


def _training_result(
    code: int, plan: StartPlan, model_dir: Path, options: TrainOptions, output: Output,
    *, aborted: bool = False, since: float = 0.0,
) -> None:  # fmt: skip
    if options.tensorboard_only and code in (0, TRAIN_INTERRUPTED_EXIT):
        return
    if code == 0:
        _announce_outputs(plan, model_dir, output, since)
        return
    if code == TRAIN_INTERRUPTED_EXIT and aborted:
        raise TrainingInterruptedError(
            "Training aborted",
            hint="The last checkpoint in checkpoints/ can be resumed with `./train.sh --data … "
            "--resume`; the adapter in lora/ was left unchanged.",
        )
    if code == TRAIN_INTERRUPTED_EXIT:
        raise TrainingInterruptedError(
            "Training stopped before the end; a resumable checkpoint was saved",
            hint=f"Continue with `./train.sh --data … --resume` in {model_dir} "
            "(the adapter in lora/ was left unchanged).",
        )
    if code == 125 and isinstance(plan, DockerPlan):
        raise TrainingFailedError(
            "Docker could not start the training container (see its message above)",
            hint="Check `docker info`; a taken TensorBoard port needs --tensorboard-port.",
        )
    raise TrainingFailedError(f"Training failed (exit code {code})")


def _announce_outputs(plan: StartPlan, model_dir: Path, output: Output, since: float) -> None:
    """Where this run's adapter (lora/) or whole model (finetuned/) is, and how start serves it."""
    start = f"`llm-installer start {model_dir.name}` (./start.sh)"
    if _saved_since(model_dir / FINETUNED / "config.json", since):
        output.info(
            f"[bold green]Fine-tuned model saved[/] in {model_dir / FINETUNED} (the whole "
            f"model, not an adapter); {start} now serves it, as `--weights {FINETUNED}` does; "
            "`--weights base` serves the installed weights again."
        )
    elif _saved_since(model_dir / "lora" / "adapter_config.json", since):
        output.info(f"[bold green]Adapter saved[/] in {model_dir / 'lora'}; {start} loads it.")
    else:
        return
    if isinstance(plan, DockerPlan) and running_container(model_dir):
        output.warning(
            "The model is being served with the weights it had: restart it to serve the new "
            f"ones (`llm-installer stop {model_dir.name}`, then start it)."
        )


def _saved_since(path: Path, since: float) -> bool:
    return path.is_file() and path.stat().st_mtime >= since - 1  # coarse filesystem clocks


def _training_env(plan: StartPlan) -> StartPlan:
    """On a terminal, let the trainer's rich console draw colours at the terminal's width."""
    if not isinstance(plan, DockerPlan) or not sys.stdout.isatty():
        return plan
    env = (
        *plan.container.env,
        ("FORCE_COLOR", "1"),
        ("COLUMNS", str(shutil.get_terminal_size().columns)),
    )
    return replace(plan, container=replace(plan.container, env=env))


def run_training_foreground(
    plan: StartPlan, model_dir: Path, output: Output, *, board_only: bool = False
) -> tuple[int, int]:
    """Run the trainer with its output straight on this terminal; (its exit code, Ctrl+Cs).

    The child runs in its own session, so a Ctrl+C reaches only us and is passed on once:
    the docker CLI proxies SIGINT into the container (``--init`` hands it to the trainer),
    which finishes its step, saves a checkpoint and exits. A second Ctrl+C aborts the
    trainer; a third kills the container.
    """
    plan = _training_env(plan)
    argv = plan.argv()
    prepare_foreground(plan, model_dir, output)
    if plan.url:
        output.info(f"TensorBoard: [link={plan.url}]{plan.url}[/link]")
    log.info("Training: %s", shlex.join(argv))
    child = subprocess.Popen(
        argv, env=foreground_env(plan), stdin=subprocess.DEVNULL, start_new_session=True
    )
    previous = interrupt_on(STOP_SIGNALS)
    interrupts = 0
    try:
        while True:
            try:
                return child.wait(), interrupts
            except KeyboardInterrupt:
                interrupts += 1
                _interrupt_training(child, plan, interrupts + board_only, output)
    finally:
        interrupt_on(STOP_SIGNALS, previous)
        if child.poll() is None:
            _kill_training(child, plan)


def _interrupt_training(
    child: subprocess.Popen, plan: StartPlan, interrupts: int, output: Output
) -> None:
    """1: the trainer saves a checkpoint and stops; 2: it stops at once; 3: kill."""
    messages = {
        1: "Stopping: the trainer saves a checkpoint first (Ctrl+C again to abort)…",
        2: "Stopping (Ctrl+C once more kills it)…",
    }
    output.info(messages.get(interrupts, "Killing it…"))
    if interrupts <= 2:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGINT)
        return
    _kill_training(child, plan)


def _kill_training(child: subprocess.Popen, plan: StartPlan) -> None:
    if isinstance(plan, DockerPlan):
        from docker.errors import APIError, NotFound

        with contextlib.suppress(NotFound, APIError, DockerUnavailableError):
            docker_client().containers.get(plan.container.name).kill()
    child.kill()
    child.wait()


def run_training_detached_container(
    plan: DockerPlan, model_dir: Path, options: TrainOptions, output: Output
) -> None:
    """Start the training container in the background; it stays after it ends, for its logs."""
    container = run_container_detached(
        docker_client(), plan, TrainingFailedError, "training container"
    )
    what = "TensorBoard runs" if options.tensorboard_only else "Training runs"
    output.info(f"{what} in the background in container {container.name}.")
    if plan.url:
        output.info(f"TensorBoard: [link={plan.url}]{plan.url}[/link]")
    output.info(f"Follow it: docker logs -f {container.name}")
    if options.tensorboard_only:
        output.info(f"Stop it: llm-installer stop {model_dir.name}")
    else:
        output.info(
            f"Stop it (a resumable checkpoint is saved): llm-installer stop {model_dir.name}"
        )


def run_training_detached_native(
    plan: NativePlan, model_dir: Path, options: TrainOptions, output: Output
) -> None:
    child, log_path = spawn_native_detached(plan, model_dir, "native-train.log", output)
    output.info(f"Training runs in the background (process {child.pid}); log: {log_path}")
    if plan.url:
        output.info(f"TensorBoard: [link={plan.url}]{plan.url}[/link]")
    output.info(f"Stop it (a resumable checkpoint is saved): kill {child.pid}")


_TRAIN_RUNNERS: dict[str, Callable[..., None]] = {
    "docker": run_training_detached_container,
    "native": run_training_detached_native,
}
