"""Running ``start``: serve an installed model, wait until it is ready, open the browser.

The plan (what to run) comes from ``llm_installer.run.start_plan``; this module carries it out, in
the foreground (its output relayed, Ctrl+C stops it) or detached. Training (``train_run``)
shares its checks and its process helpers; ``stop`` and ``remove`` are in ``lifecycle``.
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
import threading
import time
import urllib.error
import urllib.request
import webbrowser
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from llm_installer.console import Output
from llm_installer.errors import DockerUnavailableError, InstallerError
from llm_installer.run.container import LABEL_MODEL_DIR, docker_py_kwargs
from llm_installer.run.devices import detect_host_runtime
from llm_installer.run.installed import (
    NATIVE_PID_FILE,
    docker_client,
    require_installed,
    require_weights,
    resolve_model_dir,
    running_model,
)
from llm_installer.run.runtime_args import refuse_unparsable
from llm_installer.run.start_plan import (
    DockerPlan,
    NativePlan,
    StartOptions,
    StartPlan,
    model_paths,
    plan_start,
)
from llm_installer.settings import Settings

log = logging.getLogger(__name__)

NATIVE_READY_MARKER = ".llm-installer-ready"
LOG_TAIL_LINES = 30
POLL_S = 0.5
STOP_TIMEOUT_S = 10
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)


# ── errors ──────────────────────────────────────────────────────────────────────────────


class AlreadyRunningError(InstallerError):
    exit_code = 35


class PortInUseError(InstallerError):
    exit_code = 36


class StartFailedError(InstallerError):
    exit_code = 37
    hint = "Read the log lines above and logs/ in the model folder; `--device cpu` or a smaller dtype may help."


class ImageMissingError(InstallerError):
    exit_code = 39
    hint = "Rebuild it with `llm-installer install MODEL --yes`."


# ── start ──────────────────────────────────────────────────────────────────────────────


def start_model(model: str, options: StartOptions, settings: Settings, output: Output) -> None:
    """Resolve MODEL, plan the run for this host, start it and wait until it answers."""
    model_dir = resolve_model_dir(model, settings.models_path)
    record = require_installed(model_dir)
    paths = model_paths(model_dir, record)
    require_weights(paths.weights)
    already = running_model(model_dir)
    if already:
        raise AlreadyRunningError(
            f"{record.model_id or model} is already running at {already.url} ({already.name})",
            hint=f"Stop it first: `llm-installer stop {model_dir.name}`.",
        )
    plan = plan_start(record, paths, detect_host_runtime(), options)
    refuse_unparsable(
        plan.argv() if isinstance(plan, NativePlan) else plan.container.command, record.engine
    )
    for warning in plan.warnings:
        output.warning(warning)
    check_port_free(options.host, options.port)
    if isinstance(plan, DockerPlan):
        require_image(plan.container.image)
    prepare_dirs(plan)
    runner = _RUNNERS[(plan.kind, options.detach)]
    runner(plan, model_dir, options, output)


def require_image(tag: str) -> None:
    """The engine answers and holds the model's image (never pulled: it was built here)."""
    from llm_installer.docker_engine import image_exists

    if not image_exists(docker_client(), tag):
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
        if chown:
            os.chown(root, *chown, follow_symlinks=False)
    for folder in plan.writable_dirs:
        folder.mkdir(parents=True, exist_ok=True)
        if chown:
            for path in [folder, *folder.rglob("*")]:
                os.chown(path, *chown, follow_symlinks=False)


def probe_url(options: StartOptions) -> str:
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


def foreground_env(plan: StartPlan) -> dict[str, str]:
    return {**os.environ, **dict(getattr(plan, "env", ())), **plan.secrets}


def prepare_foreground(plan: StartPlan, model_dir: Path, output: Output) -> None:
    """A foreground run needs the docker command, or the native virtualenv (made once)."""
    if plan.kind == "docker" and shutil.which("docker") is None:
        raise DockerUnavailableError(
            "The docker command is not installed", hint="Install the Docker CLI, or use --detach."
        )
    if isinstance(plan, NativePlan):
        ensure_native_venv(plan, model_dir, output)


def run_foreground(plan: StartPlan, model_dir: Path, options: StartOptions, output: Output) -> None:
    argv = plan.argv()
    prepare_foreground(plan, model_dir, output)
    log.info("Starting: %s", shlex.join(argv))
    child = subprocess.Popen(
        argv, env=foreground_env(plan), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, text=True, bufsize=1, errors="replace",
    )  # fmt: skip
    relay = _Relay(child.stdout or (), output)  # PIPE: never None
    relay.start()
    previous = interrupt_on(STOP_SIGNALS)
    try:
        _supervise(child, relay, plan, model_dir, options, output)
    except KeyboardInterrupt:
        output.info("Stopping…")
    finally:
        interrupt_on(STOP_SIGNALS, previous)
        _stop_child(child, plan)
        relay.join(timeout=2)


def interrupt_on(signals: tuple[int, ...], handlers: dict | None = None) -> dict:
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
    state = wait_until_ready(probe_url(options), lambda: child.poll() is None, options, output)
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
        docker_client().containers.get(name).stop(timeout=STOP_TIMEOUT_S)


# ── detached: docker-py, or a native process in its own session ─────────────────────────


def run_detached_container(
    plan: DockerPlan, model_dir: Path, options: StartOptions, output: Output
) -> None:
    client = docker_client()
    remove_leftovers(client, plan.container.name)
    container = run_container_detached(client, plan, StartFailedError, "container")

    def alive() -> bool:
        container.reload()
        return container.status in ("created", "running")

    try:
        state = wait_until_ready(probe_url(options), alive, options, output)
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


def run_container_detached(client, plan: DockerPlan, failure: type[InstallerError], what: str):
    """Start the plan's container in the background with docker-py; a refusal raises FAILURE."""
    from docker.errors import APIError

    try:
        return client.containers.run(detach=True, **docker_py_kwargs(plan.container, plan.secrets))
    except APIError as exc:
        raise failure(f"Docker could not start the {what}: {exc.explanation or exc}") from exc


def remove_leftovers(client, name: str) -> None:
    """A stopped container of ours with the same name would block the new one."""
    for container in client.containers.list(all=True, filters={"name": f"^/{name}$"}):
        if LABEL_MODEL_DIR in (container.labels or {}) and container.status != "running":
            container.remove(force=True)


def run_detached_native(
    plan: NativePlan, model_dir: Path, options: StartOptions, output: Output
) -> None:
    child, log_path = spawn_native_detached(plan, model_dir, "native-server.log", output)
    (model_dir / NATIVE_PID_FILE).write_text(f"{child.pid} {options.port}\n")
    try:
        state = wait_until_ready(probe_url(options), lambda: child.poll() is None, options, output)
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


def spawn_native_detached(
    plan: NativePlan, model_dir: Path, log_name: str, output: Output
) -> tuple[subprocess.Popen, Path]:
    """Start the native plan in its own session, so it outlives this command, its output
    appended to logs/LOG_NAME (the virtualenv is made first); the process and its log."""
    ensure_native_venv(plan, model_dir, output)
    log_path = model_dir / "logs" / log_name
    with log_path.open("ab") as log_file:
        child = subprocess.Popen(
            plan.argv(), env=foreground_env(plan), stdout=log_file, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    return child, log_path


def ensure_native_venv(plan: NativePlan, model_dir: Path, output: Output) -> None:
    """Make the virtualenv beside the model once; its log is logs/native-setup.log."""
    marker = plan.venv / NATIVE_READY_MARKER
    if marker.exists():
        return
    log_path = model_dir / "logs" / "native-setup.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    for line in plan.differences:
        output.info(f"Native environment: {line}")
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
