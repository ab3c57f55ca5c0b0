"""``llm-installer deploy``: an installed model onto another Docker host, checked against its lock.

Steps: verify the local weights against ``llm.lock.json`` → preflight the target → send the
image layers it lacks → fill (or reuse) the weights volume named by the weights' hash and hash
it there → start the container as start.sh would → wait for ``/health/ready`` → record.

The target keeps the state: the running container (labels: model, lock hash, the lock itself)
and the one it replaced, stopped, as ``<name>-previous`` — which is what ``rollback`` returns to.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from docker.errors import NotFound
from docker.types import DeviceRequest, Mount

from llm_installer.console import Output
from llm_installer.deploy.errors import DeployFailedError, VerifyFailedError
from llm_installer.deploy.hosts import connect_host, host_key
from llm_installer.deploy.images import ImageTransfer, send_image
from llm_installer.deploy.lock import installed, lock_hash, verify_local
from llm_installer.deploy.volumes import WeightsTransfer, sync_weights
from llm_installer.run.container import container_name
from llm_installer.settings import Settings

log = logging.getLogger(__name__)
LABEL = "org.llm-installer"
DEPLOYMENT = f"{LABEL}.deployment"
PREVIOUS_SUFFIX = "-previous"
READY_SCRIPT = (
    "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health/ready', timeout=3)"
)
# Docker itself probes readiness, so waiting needs only `inspect` (exec over ssh:// breaks
# docker-py's connection), and `deployments` shows it as the container's health.
READY_CHECK = {
    "test": ["CMD", "python", "-c", READY_SCRIPT],
    "interval": 5 * 10**9, "timeout": 4 * 10**9, "retries": 3, "start_period": 900 * 10**9,
}  # fmt: skip
LOCAL_ADDRESSES = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class DeployOptions:
    host: str | None
    port: int = 8000
    gpus: str | None = None  # "all", "0,1", "none"; default: what the lock's device needs
    name: str | None = None
    bind: str = "127.0.0.1"
    api_key: str | None = field(default=None, repr=False)
    restart: bool = False
    resend_weights: bool = False
    force: bool = False  # deploy even when the target's memory looks too small
    registry: str | None = None  # REGISTRY/NAMESPACE: layers go through it, not save | load
    ready_timeout: float = 900.0


@dataclass
class DeployResult:
    name: str
    url: str
    lock_hash: str
    image: ImageTransfer | None = None
    weights: WeightsTransfer | None = None
    started: bool = False
    seconds: float = 0.0
    api_key: str | None = field(default=None, repr=False)

    @property
    def bytes_sent(self) -> int:
        return (self.image.bytes_sent if self.image else 0) + (
            self.weights.bytes_sent if self.weights else 0
        )

    def record(self, model_id: str, host: str | None) -> dict[str, Any]:
        return {
            "model": model_id, "host": host or "local", "name": self.name, "url": self.url,
            "lock_hash": self.lock_hash, "bytes_sent": self.bytes_sent, "started": self.started,
            "seconds": round(self.seconds, 2), "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }  # fmt: skip


def deploy_model(
    model: str, options: DeployOptions, settings: Settings, output: Output
) -> DeployResult:
    started = time.monotonic()
    model_dir, info, weights = installed(model, settings)
    with output.out.status("Checking the weights against llm.lock.json…"):
        lock = verify_local(model_dir, weights, use_cache=True)
    digest = lock_hash(lock)
    name = options.name or container_name(model_dir)
    api_key = _api_key(options)
    result = DeployResult(
        name=name, url=f"http://{options.bind}:{options.port}", lock_hash=digest, api_key=api_key
    )
    target = connect_host(options.host)
    preflight(target, lock, options)
    if options.registry:
        result.image = _image_through_registry(lock, target, options.registry, model_dir, output)
    else:
        result.image = _send_image(lock, target, output)
    image_id = lock["images"]["model"]["id"]
    with output.out.status("Weights: sending what the target lacks, then hashing them there…"):
        result.weights = sync_weights(target, image_id, lock, weights, fresh=options.resend_weights)
    current = container_named(target, name)
    if (
        current
        and labels_of(current).get(f"{LABEL}.lock-hash") == digest
        and current.status == "running"
        and not options.restart
    ):
        output.info(
            f"{name} already runs this lock ({digest[:12]}) there; nothing restarted (--restart restarts it)."
        )
    else:
        _replace(target, name, lock, result, options, output)
    result.seconds = time.monotonic() - started
    _record(settings, result.record(str(lock["model"]["id"]), options.host))
    return result


def _api_key(options: DeployOptions) -> str | None:
    if options.api_key or options.bind in LOCAL_ADDRESSES:
        return options.api_key
    return secrets.token_urlsafe(24)  # exposing the port needs a key: a new one, printed once


def preflight(target, lock: Mapping[str, Any], options: DeployOptions) -> None:
    """Refuse early when the target cannot run the model: GPU runtime and driver, memory, disk."""
    from llm_installer.deploy import preflight as checks
    from llm_installer.docker_engine import connect

    wants_gpu = _gpus(lock, options) is not None
    try:
        source = connect(timeout=600).images.get(lock["images"]["model"]["id"])
    except NotFound:
        source = None  # _send_image says so, with its hint
    lacking = checks.lacking_bytes(source, target, lock) if source else 0
    facts = checks.gather(target, lock, wants_gpu, lacking)
    checks.raise_problems(checks.decide(facts, lock, wants_gpu), options.force)


def _gpus(lock: Mapping[str, Any], options: DeployOptions) -> str | None:
    if options.gpus:
        return None if options.gpus == "none" else options.gpus
    return "all" if (lock.get("gpu") or {}).get("device") == "cuda" else None


def _send_image(lock: Mapping[str, Any], target, output: Output) -> ImageTransfer:
    from llm_installer.docker_engine import connect

    image = lock["images"]["model"]
    source = connect(timeout=600)
    try:
        local_id = str(source.images.get(image["id"]).id)
    except NotFound:
        raise VerifyFailedError(
            f"The image {image['id'][:19]} named by llm.lock.json is not in the local Docker",
            hint="Reinstall the model (`llm-installer install MODEL --yes`), which writes a new lock.",
        ) from None
    with output.out.status(f"Image {image['tag']}: sending the layers the target lacks…"):
        return send_image(source, target, image["tag"], local_id)


def _image_through_registry(
    lock: Mapping[str, Any], target, registry_target: str, model_dir: Path, output: Output
) -> ImageTransfer:
    """Push the image to REGISTRY/NAMESPACE (once per lock), the target pulls it by digest."""
    from llm_installer.deploy import registry
    from llm_installer.deploy.images import has_image
    from llm_installer.deploy.lock import write_lock
    from llm_installer.docker_engine import connect

    image = lock["images"]["model"]
    if has_image(target, image["id"]):
        return ImageTransfer(image=image["tag"], already_there=True)
    host, namespace = registry.parse_target(registry_target)
    repository = f"{host}/{namespace}/{registry.repository_name(model_dir.name)}"
    creds = registry.Credentials()  # `docker login`'s config, here and for the target's pull
    ref = (lock.get("registry") or {}).get("image") or ""
    if not ref.startswith(repository + "@"):
        registry.RegistryClient(host, creds)  # unreachable: said now, before any layer moves
        with output.out.status(f"Image: pushing to {repository}…"):
            ref = registry.push_image(
                connect(timeout=600), lock, repository, lock_hash(lock)[:16], creds
            )
        write_lock(model_dir, {**lock, "registry": {**(lock.get("registry") or {}), "image": ref}})
    with output.out.status(f"Image: the target pulls {ref}…"):
        registry.pull_image(target, ref, lock, creds)
    return ImageTransfer(image=ref)  # no byte went from here to the target: the registry sent them


def container_named(client, name: str):
    try:
        return client.containers.get(name)
    except NotFound:
        return None


def labels_of(container) -> dict[str, str]:
    return container.attrs.get("Config", {}).get("Labels") or {}


def _replace(
    target,
    name: str,
    lock: Mapping[str, Any],
    result: DeployResult,
    options: DeployOptions,
    output: Output,
) -> None:
    """Keep the running container as <name>-previous (stopped), start the new one, wait."""
    current = container_named(target, name)
    if current:
        older = container_named(target, name + PREVIOUS_SUFFIX)
        if older:
            older.remove(force=True)
        current.stop(timeout=10)
        current.rename(name + PREVIOUS_SUFFIX)
    try:
        container = target.containers.run(**container_kwargs(name, lock, result, options))
        wait_ready(container, options.ready_timeout, output)
    except BaseException:
        _restore(target, name, current)
        raise
    result.started = True


def _restore(target, name: str, previous) -> None:
    """A failed start: its logs are shown by wait_ready; the previous container runs again."""
    failed = container_named(target, name)
    if failed:
        failed.remove(force=True)
    if previous:
        previous.rename(name)
        previous.start()


def container_kwargs(
    name: str, lock: Mapping[str, Any], result: DeployResult, options: DeployOptions
) -> dict[str, Any]:
    """docker-py keywords: the lock's serve command, the weights volume read-only, a restart policy."""
    serve = lock["serve"]
    if result.weights is None:
        raise ValueError("container_kwargs needs the weights volume: sync_weights comes first")
    gpus = _gpus(lock, options)
    labels = {
        DEPLOYMENT: name, f"{LABEL}.model-id": str(lock["model"]["id"]), f"{LABEL}.lock-hash": result.lock_hash,
        f"{LABEL}.url": result.url, f"{LABEL}.port": str(options.port), f"{LABEL}.role": "serve",
        f"{LABEL}.lock": json.dumps({k: v for k, v in lock.items() if k != "pip_freeze"}, sort_keys=True, separators=(",", ":")),
    }  # fmt: skip
    devices = (
        [
            DeviceRequest(
                count=-1 if gpus == "all" else 0,
                device_ids=[] if gpus == "all" else gpus.split(","),
                capabilities=[["gpu"]],
            )
        ]
        if gpus
        else []
    )
    return {
        "image": lock["images"]["model"]["id"], "command": list(serve["command"]), "name": name, "detach": True,
        "init": True, "labels": labels, "restart_policy": {"Name": "unless-stopped"},
        "mounts": [Mount("/model", result.weights.volume, type="volume", read_only=True), Mount("/logs", f"llm-logs-{name}", type="volume")],
        "ports": {f"{serve['container_port']}/tcp": (options.bind, options.port)},
        "environment": {**serve.get("env", {}), **({"LLM_API_KEY": result.api_key} if result.api_key else {})},
        "device_requests": devices, "shm_size": "2g" if gpus else "1g", "healthcheck": READY_CHECK,
    }  # fmt: skip


def wait_ready(container, timeout: float, output: Output) -> None:
    """Wait until Docker's health check (GET /health/ready inside the container) passes."""
    deadline = time.monotonic() + timeout
    with output.out.status("Waiting for /health/ready on the target…"):
        while time.monotonic() < deadline:
            container.reload()
            health = ((container.attrs.get("State") or {}).get("Health") or {}).get("Status")
            if (
                container.status not in ("created", "running", "restarting")
                or health == "unhealthy"
            ):
                break
            if health == "healthy":
                return
            time.sleep(1)
    tail = container.logs(tail=30).decode(errors="replace").rstrip()
    output.info(tail)
    raise DeployFailedError(
        f"The model did not become ready on the target ({container.status}); the previous deployment was restored"
    )


def _record(settings: Settings, record: Mapping[str, Any]) -> None:
    """Append to ~/LLM/logs/deployments.jsonl (no key, no token: only what the table shows)."""
    path = settings.logs_path / "deployments.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        handle.write(json.dumps(dict(record), sort_keys=True) + "\n")


def local_records(settings: Settings) -> list[dict[str, Any]]:
    path: Path = settings.logs_path / "deployments.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


__all__ = ["DeployOptions", "DeployResult", "deploy_model", "host_key", "local_records"]
