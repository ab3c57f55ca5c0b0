"""Running installed models: ``start`` (wait until ready, open the browser), ``stop``, ``remove``.

The plan (what to run) comes from ``llm_installer.runargs``; this module carries it out.
Containers carry the label ``org.llm-installer.model-dir=<folder>``, which is how ``stop``,
``remove`` and ``list`` find them again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import webbrowser
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llm_installer.config import Settings
from llm_installer.console import Output
from llm_installer.errors import DockerUnavailableError, InstallerError
from llm_installer.runargs import (
    LABEL_MODEL_DIR,
    LABEL_PREFIX,
    DockerPlan,
    NativePlan,
    StartOptions,
    StartPlan,
    TrainOptions,
    detect_host_runtime,
    docker_py_kwargs,
    model_paths,
    plan_start,
    plan_train,
)

log = logging.getLogger(__name__)

COMPLETE_MARKER = ".install_complete"
NATIVE_PID_FILE = ".native.pid"
NATIVE_READY_MARKER = ".llm-installer-ready"
LOG_TAIL_LINES = 30
POLL_S = 0.5
STOP_TIMEOUT_S = 10
TRAIN_STOP_TIMEOUT_S = 300  # a stopped trainer finishes its step and saves a checkpoint first
TRAIN_INTERRUPTED_EXIT = 130  # the trainer's exit code after Ctrl+C / SIGTERM
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)


# ── errors ──────────────────────────────────────────────────────────────────────────────


class ModelNotInstalledError(InstallerError):
    exit_code = 33
    hint = "See what is installed with `llm-installer list`, or install it with `llm-installer install MODEL`."


class IncompleteInstallError(InstallerError):
    exit_code = 34
    hint = "Run `llm-installer install MODEL` again: it cleans up and starts fresh."


class AlreadyRunningError(InstallerError):
    exit_code = 35


class PortInUseError(InstallerError):
    exit_code = 36


class StartFailedError(InstallerError):
    exit_code = 37
    hint = "Read the log lines above and logs/ in the model folder; `--device cpu` or a smaller dtype may help."


class ModelRunningError(InstallerError):
    exit_code = 38


class ImageMissingError(InstallerError):
    exit_code = 39
    hint = "Rebuild it with `llm-installer install MODEL --yes`."


class RemoveError(InstallerError):
    exit_code = 40


class TrainingFailedError(InstallerError):
    exit_code = 41
    hint = "Read the trainer's messages above; the adapter in lora/ was left as it was."


class TrainingInterruptedError(InstallerError):
    exit_code = TRAIN_INTERRUPTED_EXIT


# ── finding models and what runs ──────────────────────────────────────────────────────


def read_model_info(model_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((model_dir / "model_info.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def resolve_model_dir(model: str, models_dir: Path) -> Path:
    """MODEL as a path, a folder name under models_dir, or a Hub id (owner/name)."""
    from llm_installer.check import check_file_stem

    candidates = [Path(model).expanduser(), models_dir / model, models_dir / check_file_stem(model)]
    for folder in candidates:
        if (folder / "model_info.json").is_file() or (folder / COMPLETE_MARKER).exists():
            return folder.resolve()
    for folder in _model_folders(models_dir):
        if str(read_model_info(folder).get("model_id", "")).lower() == model.lower():
            return folder.resolve()
    inside = [f for f in candidates[1:] if f.is_dir() and f.parent == models_dir]
    if inside:  # a folder without model_info.json: an interrupted install (stop/remove still work)
        return inside[0].resolve()
    raise ModelNotInstalledError(f"{model} is not installed in {models_dir}")


def _model_folders(models_dir: Path) -> list[Path]:
    return sorted(f for f in models_dir.iterdir() if f.is_dir()) if models_dir.is_dir() else []


def require_complete(model_dir: Path) -> dict[str, Any]:
    info = read_model_info(model_dir)
    if not (model_dir / COMPLETE_MARKER).exists() or not info:
        raise IncompleteInstallError(f"The installation in {model_dir} is incomplete")
    return info


@dataclass(frozen=True)
class RunningModel:
    """A model that serves (or trains) right now."""

    model_dir: str
    kind: str  # "docker" | "native"
    name: str  # container name, or the process id
    role: str
    port: int | None

    @property
    def url(self) -> str | None:
        return f"http://localhost:{self.port}" if self.port else None


def _docker_client():
    from llm_installer.docker_engine import connect

    return connect()


def _containers(
    client, model_dir: Path | None = None, *, all_states: bool = False, role: str | None = None
) -> list:
    labels = [f"{LABEL_MODEL_DIR}={model_dir}" if model_dir else LABEL_MODEL_DIR]
    labels += [f"{LABEL_PREFIX}.role={role}"] if role else []
    return client.containers.list(all=all_states, filters={"label": labels})


def _as_running(container) -> RunningModel:
    labels = container.labels or {}
    port = labels.get(f"{LABEL_PREFIX}.port", "")
    return RunningModel(
        model_dir=labels.get(LABEL_MODEL_DIR, ""),
        kind="docker",
        name=container.name,
        role=labels.get(f"{LABEL_PREFIX}.role", "serve"),
        port=int(port) if port.isdigit() else None,
    )


def running_container(
    model_dir: Path, client=None, role: str | None = "serve"
) -> RunningModel | None:
    """The running container of this model folder, found by its label; None if there is none."""
    try:
        client = client or _docker_client()
    except DockerUnavailableError:
        return None
    found = _containers(client, Path(model_dir).resolve(), role=role)
    return _as_running(found[0]) if found else None


def running_native(model_dir: Path) -> RunningModel | None:
    """The native (macOS) server started with --detach, from its pid file, if still alive."""
    pid_file = Path(model_dir) / NATIVE_PID_FILE
    try:
        pid, port = (int(x) for x in pid_file.read_text().split()[:2])
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return RunningModel(str(Path(model_dir).resolve()), "native", str(pid), "serve", port)


def running_model(model_dir: Path) -> RunningModel | None:
    return running_container(model_dir) or running_native(model_dir)


def running_models(models_dir: Path) -> dict[str, RunningModel]:
    """Every running model under models_dir keyed by folder path: one engine query for ``list``."""
    found: dict[str, RunningModel] = {}
    try:
        client = _docker_client()
        found.update({r.model_dir: r for r in map(_as_running, _containers(client))})
    except DockerUnavailableError:
        pass
    for folder in _model_folders(models_dir):
        native = running_native(folder)
        if native:
            found[native.model_dir] = native
    return found


# ── start ──────────────────────────────────────────────────────────────────────────────


def start_model(model: str, options: StartOptions, settings: Settings, output: Output) -> None:
    """Resolve MODEL, plan the run for this host, start it and wait until it answers."""
    model_dir = resolve_model_dir(model, settings.models_path)
    info = require_complete(model_dir)
    paths = model_paths(model_dir, info)
    _require_weights(paths.weights)
    already = running_model(model_dir)
    if already:
        raise AlreadyRunningError(
            f"{info.get('model_id', model)} is already running at {already.url} ({already.name})",
            hint=f"Stop it first: `llm-installer stop {model_dir.name}`.",
        )
    plan = plan_start(info, paths, detect_host_runtime(), options)
    for warning in plan.warnings:
        output.warning(warning)
    check_port_free(options.host, options.port)
    if isinstance(plan, DockerPlan):
        require_image(plan.container.image)
    prepare_dirs(plan)
    runner = _RUNNERS[(plan.kind, options.detach)]
    runner(plan, model_dir, options, output)


def _require_weights(weights: Path) -> None:
    if not weights.is_dir():
        raise ModelNotInstalledError(
            f"The weights folder {weights} is missing",
            hint="Restore it, or reinstall with `llm-installer install MODEL --yes`.",
        )


def require_image(tag: str) -> None:
    """The engine answers and holds the model's image (never pulled: it was built here)."""
    from llm_installer.docker_engine import image_exists

    if not image_exists(_docker_client(), tag):
        raise ImageMissingError(f"The model's image {tag} is not in Docker")


def check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no owner
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise PortInUseError(
                f"Port {port} on {host} is taken ({exc.strerror})",
                hint=f"Choose another one, e.g. --port {port + 1}.",
            ) from exc


def prepare_dirs(plan: StartPlan) -> None:
    """Create the read-write folders; on a root host hand them to the image's user."""
    chown = getattr(plan, "chown_to", None)
    for root in getattr(plan, "owned_roots", ()):
        os.chown(root, *chown, follow_symlinks=False)
    for folder in plan.writable_dirs:
        folder.mkdir(parents=True, exist_ok=True)
        if chown:
            for path in [folder, *folder.rglob("*")]:
                os.chown(path, *chown, follow_symlinks=False)


def readable_by_all(folder: Path) -> None:
    for path in [folder, *folder.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | (0o555 if path.is_dir() else 0o444))


def probe_url(plan: StartPlan, options: StartOptions) -> str:
    host = "127.0.0.1" if options.host in ("0.0.0.0", "localhost", "::") else options.host
    return f"http://{host}:{options.port}/health/ready"


def readiness(url: str, api_key: str | None = None) -> tuple[str, str | None]:
    """('ready' | 'loading' | 'failed', the load error) from GET /health/ready."""
    request = urllib.request.Request(url)
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return ("ready" if response.status == 200 else "loading"), None
    except urllib.error.HTTPError as exc:
        body = _json_or_empty(exc.read())
        failed = body.get("model_state") == "failed"
        return ("failed" if failed else "loading"), body.get("error")
    except (urllib.error.URLError, OSError):
        return "loading", None


def _json_or_empty(data: bytes) -> dict[str, Any]:
    try:
        body = json.loads(data)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def wait_until_ready(
    url: str, alive: Callable[[], bool], options: StartOptions, output: Output
) -> str:
    """'ready', 'died' or 'timeout' (a failed load raises), with a spinner and the time taken."""
    started = time.monotonic()
    with output.out.status("Starting…") as status:
        while (elapsed := time.monotonic() - started) < options.ready_timeout:
            status.update(f"Loading the model… {elapsed:.0f}s (waiting for {url})")
            state, error = readiness(url, options.api_key)
            if state == "failed":
                raise StartFailedError(f"The model failed to load: {error}")
            if state == "ready":
                return "ready"
            if not alive():
                return "died"
            time.sleep(POLL_S)
    return "timeout"


def announce(plan: StartPlan, model_dir: Path, options: StartOptions, output: Output) -> None:
    output.info(f"[bold green]Ready[/] on {plan.device}: [link={plan.url}]{plan.url}[/link]")
    output.info(f"API docs: {plan.url}/docs   OpenAI-compatible API: {plan.url}/v1")
    if options.detach:
        output.info(f"Stop it with: llm-installer stop {model_dir.name}")
    else:
        output.info("Press Ctrl+C to stop.")
    if not options.no_browser:
        webbrowser.open(plan.url)


def _timeout_warning(output: Output, options: StartOptions, where: str) -> None:
    output.warning(
        f"Not ready after {options.ready_timeout:.0f}s; it keeps loading. Follow it with {where}."
    )


# ── foreground: a child process whose output is relayed; Ctrl+C stops it ────────────────


class _Relay(threading.Thread):
    """Prints the child's output (above the spinner) and keeps its last lines."""

    def __init__(self, stream: Iterable[str], output: Output) -> None:
        super().__init__(daemon=True)
        self.stream, self.output = stream, output
        self.tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)

    def run(self) -> None:
        for line in self.stream:
            self.tail.append(line.rstrip("\n"))
            self.output.out.print(line.rstrip("\n"), markup=False, highlight=False)


def _foreground_env(plan: StartPlan) -> dict[str, str]:
    return {**os.environ, **dict(getattr(plan, "env", ())), **plan.secrets}


def run_foreground(plan: StartPlan, model_dir: Path, options: StartOptions, output: Output) -> None:
    argv = plan.argv()
    if plan.kind == "docker" and shutil.which("docker") is None:
        raise DockerUnavailableError(
            "The docker command is not installed", hint="Install the Docker CLI, or use --detach."
        )
    if plan.kind == "native":
        ensure_native_venv(plan, model_dir, output)
    log.info("Starting: %s", shlex.join(argv))
    child = subprocess.Popen(
        argv, env=_foreground_env(plan), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, text=True, bufsize=1, errors="replace",
    )  # fmt: skip
    relay = _Relay(child.stdout, output)
    relay.start()
    previous = _interrupt_on(STOP_SIGNALS)
    try:
        _supervise(child, relay, plan, model_dir, options, output)
    except KeyboardInterrupt:
        output.info("Stopping…")
    finally:
        _interrupt_on(STOP_SIGNALS, previous)
        _stop_child(child, plan)
        relay.join(timeout=2)


def _interrupt_on(signals: tuple[int, ...], handlers: dict | None = None) -> dict:
    """Treat SIGTERM and SIGHUP (a closed terminal) like Ctrl+C, so the container stops too;
    with ``handlers``, put those back instead. Returns the handlers replaced."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    if handlers is None:
        return {sig: signal.signal(sig, interrupt) for sig in signals}
    return {sig: signal.signal(sig, handlers.get(sig) or signal.SIG_DFL) for sig in handlers}


def _supervise(child, relay, plan, model_dir, options, output) -> None:
    state = wait_until_ready(
        probe_url(plan, options), lambda: child.poll() is None, options, output
    )
    if state == "died":
        child.wait()
        relay.join(timeout=2)
        raise StartFailedError(
            f"The server exited with code {child.returncode} before it was ready"
        )
    if state == "ready":
        announce(plan, model_dir, options, output)
    else:
        _timeout_warning(output, options, "the log lines here")
    child.wait()


def _stop_child(child: subprocess.Popen, plan: StartPlan) -> None:
    if child.poll() is not None:
        return
    if isinstance(plan, DockerPlan):
        _stop_container_named(plan.container.name)
    else:
        child.send_signal(signal.SIGINT)
    try:
        child.wait(timeout=STOP_TIMEOUT_S + 5)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def _stop_container_named(name: str) -> None:
    from docker.errors import APIError, NotFound

    with contextlib.suppress(NotFound, APIError, DockerUnavailableError):  # gone already (--rm)
        _docker_client().containers.get(name).stop(timeout=STOP_TIMEOUT_S)


# ── detached: docker-py, or a native process in its own session ─────────────────────────


def run_detached_container(
    plan: DockerPlan, model_dir: Path, options: StartOptions, output: Output
) -> None:
    from docker.errors import APIError

    client = _docker_client()
    _remove_leftovers(client, plan.container.name)
    try:
        container = client.containers.run(
            detach=True, **docker_py_kwargs(plan.container, plan.secrets)
        )
    except APIError as exc:
        raise StartFailedError(
            f"Docker could not start the container: {exc.explanation or exc}"
        ) from exc

    def alive() -> bool:
        container.reload()
        return container.status in ("created", "running")

    try:
        state = wait_until_ready(probe_url(plan, options), alive, options, output)
        if state == "died":
            raise StartFailedError("The container stopped before the model was ready")
    except BaseException:
        output.info(container.logs(tail=LOG_TAIL_LINES).decode(errors="replace").rstrip())
        container.remove(force=True)
        raise
    if state == "timeout":
        _timeout_warning(output, options, f"`docker logs -f {container.name}`")
        return
    announce(plan, model_dir, options, output)


def _remove_leftovers(client, name: str) -> None:
    """A stopped container of ours with the same name would block the new one."""
    for container in client.containers.list(all=True, filters={"name": f"^/{name}$"}):
        if LABEL_MODEL_DIR in (container.labels or {}) and container.status != "running":
            container.remove(force=True)


def run_detached_native(
    plan: NativePlan, model_dir: Path, options: StartOptions, output: Output
) -> None:
    ensure_native_venv(plan, model_dir, output)
    log_path = model_dir / "logs" / "native-server.log"
    with log_path.open("ab") as log_file:
        child = subprocess.Popen(
            plan.argv(), env=_foreground_env(plan), stdout=log_file, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    (model_dir / NATIVE_PID_FILE).write_text(f"{child.pid} {options.port}\n")
    try:
        state = wait_until_ready(
            probe_url(plan, options), lambda: child.poll() is None, options, output
        )
        if state == "died":
            raise StartFailedError(f"The server exited with code {child.returncode} first")
    except BaseException:
        child.kill()
        (model_dir / NATIVE_PID_FILE).unlink(missing_ok=True)
        output.info("\n".join(log_path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]))
        raise
    if state == "timeout":
        _timeout_warning(output, options, f"`tail -f {log_path}`")
        return
    announce(plan, model_dir, options, output)


def ensure_native_venv(plan: NativePlan, model_dir: Path, output: Output) -> None:
    """Make the virtualenv beside the model once; its log is logs/native-setup.log."""
    marker = plan.venv / NATIVE_READY_MARKER
    if marker.exists():
        return
    log_path = model_dir / "logs" / "native-setup.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with (
        output.out.status(f"Creating {plan.venv} (first start only)…"),
        log_path.open("a") as log_file,
    ):
        for step in plan.setup:
            log_file.write(f"$ {shlex.join(step)}\n")
            log_file.flush()
            result = subprocess.run(step, stdout=log_file, stderr=subprocess.STDOUT, check=False)
            if result.returncode != 0:
                raise StartFailedError(
                    f"Setting up the native environment failed: {shlex.join(step)}",
                    hint=f"See {log_path}; delete {plan.venv} to retry from scratch.",
                )
    marker.write_text("ok\n")


_RUNNERS: dict[tuple[str, bool], Callable[..., None]] = {
    ("docker", False): run_foreground,
    ("native", False): run_foreground,
    ("docker", True): run_detached_container,
    ("native", True): run_detached_native,
}


# ── train: the trainer in the model's image (or the macOS virtualenv) ────────────────────


def train_model(model: str, options: TrainOptions, settings: Settings, output: Output) -> None:
    """Resolve MODEL, plan the training run for this host and run it; the adapter lands in
    lora/, where ``start`` loads it. Ctrl+C (or SIGTERM) lets the trainer save a resumable
    checkpoint before it stops."""
    model_dir = resolve_model_dir(model, settings.models_path)
    info = require_complete(model_dir)
    paths = model_paths(model_dir, info)
    _require_weights(paths.weights)
    role = "tensorboard" if options.tensorboard_only else "train"
    busy = running_container(model_dir, role=role)
    if busy:
        what = "shows TensorBoard" if options.tensorboard_only else "is training"
        raise AlreadyRunningError(
            f"{info.get('model_id', model)} {what} already ({busy.name})",
            hint=f"Follow it with `docker logs -f {busy.name}`, "
            f"or stop it with `llm-installer stop {model_dir.name}`.",
        )
    plan = plan_train(info, paths, detect_host_runtime(), options)
    for warning in plan.warnings:
        output.warning(warning)
    if plan.url:
        check_port_free(options.host, options.tensorboard_port)
    if isinstance(plan, DockerPlan):
        require_image(plan.container.image)
        _remove_leftovers(_docker_client(), plan.container.name)  # an ended --detach run
    prepare_dirs(plan)
    if options.detach:
        _TRAIN_RUNNERS[plan.kind](plan, model_dir, options, output)
        return
    code, interrupts = run_training_foreground(
        plan, model_dir, output, board_only=options.tensorboard_only
    )
    _training_result(code, plan, model_dir, options, output, aborted=interrupts > 1)


def _training_result(
    code: int, plan: StartPlan, model_dir: Path, options: TrainOptions, output: Output,
    *, aborted: bool = False,
) -> None:  # fmt: skip
    if options.tensorboard_only and code in (0, TRAIN_INTERRUPTED_EXIT):
        return
    if code == 0:
        if (model_dir / "lora" / "adapter_config.json").is_file():
            output.info(
                f"[bold green]Adapter saved[/] in {model_dir / 'lora'}; "
                f"`llm-installer start {model_dir.name}` (./start.sh) loads it."
            )
            if isinstance(plan, DockerPlan) and running_container(model_dir):
                output.warning(
                    "The model is being served with the adapter it had: restart it to load "
                    f"the new one (`llm-installer stop {model_dir.name}`, then start it)."
                )
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


def _training_env(plan: StartPlan) -> StartPlan:
    """On a terminal, let the trainer's rich console draw colours at the terminal's width."""
    if not isinstance(plan, DockerPlan) or not sys.stdout.isatty():
        return plan
    from dataclasses import replace

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
    if plan.kind == "docker" and shutil.which("docker") is None:
        raise DockerUnavailableError(
            "The docker command is not installed", hint="Install the Docker CLI, or use --detach."
        )
    if plan.kind == "native":
        ensure_native_venv(plan, model_dir, output)
    if plan.url:
        output.info(f"TensorBoard: [link={plan.url}]{plan.url}[/link]")
    log.info("Training: %s", shlex.join(argv))
    child = subprocess.Popen(
        argv, env=_foreground_env(plan), stdin=subprocess.DEVNULL, start_new_session=True
    )
    previous = _interrupt_on(STOP_SIGNALS)
    interrupts = 0
    try:
        while True:
            try:
                return child.wait(), interrupts
            except KeyboardInterrupt:
                interrupts += 1
                _interrupt_training(child, plan, interrupts + board_only, output)
    finally:
        _interrupt_on(STOP_SIGNALS, previous)
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
            _docker_client().containers.get(plan.container.name).kill()
    child.kill()
    child.wait()


def run_training_detached_container(
    plan: DockerPlan, model_dir: Path, options: TrainOptions, output: Output
) -> None:
    """Start the training container in the background; it stays after it ends, for its logs."""
    from docker.errors import APIError

    client = _docker_client()
    try:
        container = client.containers.run(
            detach=True, **docker_py_kwargs(plan.container, plan.secrets)
        )
    except APIError as exc:
        raise TrainingFailedError(
            f"Docker could not start the training container: {exc.explanation or exc}"
        ) from exc
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
    ensure_native_venv(plan, model_dir, output)
    log_path = model_dir / "logs" / "native-train.log"
    with log_path.open("ab") as log_file:
        child = subprocess.Popen(
            plan.argv(), env=_foreground_env(plan), stdout=log_file, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    output.info(f"Training runs in the background (process {child.pid}); log: {log_path}")
    if plan.url:
        output.info(f"TensorBoard: [link={plan.url}]{plan.url}[/link]")
    output.info(f"Stop it (a resumable checkpoint is saved): kill {child.pid}")


_TRAIN_RUNNERS: dict[str, Callable[..., None]] = {
    "docker": run_training_detached_container,
    "native": run_training_detached_native,
}


# ── stop and remove ──────────────────────────────────────────────────────────────────────


def stop_model(model: str, settings: Settings, output: Output) -> list[str]:
    """Stop (and remove) every container of this model, and its native server; the names."""
    model_dir = resolve_model_dir(model, settings.models_path)
    stopped = _stop_containers(model_dir, required=sys.platform != "darwin")
    native = running_native(model_dir)
    if native:
        os.kill(int(native.name), signal.SIGTERM)
        stopped.append(f"process {native.name}")
    (model_dir / NATIVE_PID_FILE).unlink(missing_ok=True)
    output.info(
        f"Stopped {', '.join(stopped)}." if stopped else f"{model_dir.name} is not running."
    )
    return stopped


def _stop_containers(model_dir: Path, *, required: bool) -> list[str]:
    try:
        client = _docker_client()
    except DockerUnavailableError:
        if required:
            raise
        return []
    names = []
    for container in _containers(client, model_dir, all_states=True):
        if container.status == "running":
            role = (container.labels or {}).get(f"{LABEL_PREFIX}.role")
            container.stop(timeout=TRAIN_STOP_TIMEOUT_S if role == "train" else STOP_TIMEOUT_S)
            names.append(container.name)
        container.remove(force=True)
    return names


def remove_model(model: str, settings: Settings, output: Output, *, yes: bool = False) -> None:
    """Remove the model folder and its image, after confirmation; a running model is refused."""
    model_dir = resolve_model_dir(model, settings.models_path)
    running = running_container(model_dir, role=None) or running_native(model_dir)
    if running:
        raise ModelRunningError(
            f"{model_dir.name} is running ({running.name})",
            hint=f"Stop it first: `llm-installer stop {model_dir.name}`.",
        )
    tag = (read_model_info(model_dir).get("image") or {}).get("tag")
    if not yes and not _confirm(model_dir, tag, output):
        output.info("Nothing removed.")
        return
    trash = _hide_folder(model_dir)
    try:
        if tag:
            _remove_image(tag)
    except BaseException:
        os.replace(trash, model_dir)  # the image stays, so the folder comes back as it was
        raise
    _delete(trash, model_dir)
    output.info(f"Removed {model_dir}" + (f" and image {tag}" if tag else "") + ".")


def _confirm(model_dir: Path, tag: str | None, output: Output) -> bool:
    from rich.prompt import Confirm

    if not sys.stdin.isatty():
        raise RemoveError(
            f"Refusing to remove {model_dir} without confirmation", hint="Pass --yes to confirm."
        )
    what = f"{model_dir}" + (f" and the image {tag}" if tag else "")
    return Confirm.ask(f"Remove {what}?", console=output.out, default=False)


def _remove_image(tag: str) -> None:
    """Untag the model's image (Docker deletes it when no other tag holds it); shared base and
    dependency layers stay for other models."""
    from docker.errors import APIError, ImageNotFound

    client = _docker_client()
    for container in client.containers.list(all=True, filters={"ancestor": tag}):
        if LABEL_MODEL_DIR in (container.labels or {}) and container.status != "running":
            container.remove(force=True)
    try:
        client.images.remove(tag)
    except ImageNotFound:
        return
    except APIError as exc:
        raise RemoveError(
            f"Docker would not remove the image {tag}: {exc.explanation or exc}",
            hint="Stop and remove the containers that use it (`docker ps -a`), then retry.",
        ) from exc


def _hide_folder(model_dir: Path) -> Path:
    """Rename first: the folder leaves ``list`` at once and can be put back if the image stays."""
    trash = model_dir.with_name(f".{model_dir.name}.removing-{os.getpid()}")
    try:
        os.replace(model_dir, trash)
    except OSError as exc:
        raise RemoveError(f"Could not remove {model_dir}: {exc}") from exc
    return trash


def _delete(trash: Path, model_dir: Path) -> None:
    """Links are removed, never followed: a local-folder install's weights stay where they are."""
    try:
        shutil.rmtree(trash)
    except OSError as exc:
        raise RemoveError(
            f"{model_dir} is removed but part of it could not be deleted: {exc}",
            hint=f"Delete what is left by hand: rm -rf {shlex.quote(str(trash))}",
        ) from exc
