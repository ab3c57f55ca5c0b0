"""What runs where (``deployments``), ``rollback`` to the previous lock, ``undeploy``."""

from __future__ import annotations

import json
from typing import Any

from llm_installer.console import Output
from llm_installer.deploy.deploy import (
    DEPLOYMENT,
    LABEL,
    PREVIOUS_SUFFIX,
    container_named,
    labels_of,
    wait_ready,
)
from llm_installer.deploy.errors import NotDeployedError
from llm_installer.deploy.hosts import connect_host
from llm_installer.deploy.volumes import verify_volume


def deployments(host: str | None) -> list[dict[str, Any]]:
    """Every deployment on HOST (current and previous), from the containers' labels."""
    client = connect_host(host)
    rows = []
    for container in client.containers.list(all=True, filters={"label": DEPLOYMENT}):
        labels = labels_of(container)
        rows.append({
            "name": container.name, "model": labels.get(f"{LABEL}.model-id", ""),
            "lock_hash": labels.get(f"{LABEL}.lock-hash", ""), "status": _status(container),
            "url": labels.get(f"{LABEL}.url", ""), "host": host or "local",
            "previous": (container.name or "").endswith(PREVIOUS_SUFFIX),
        })  # fmt: skip
    return sorted(rows, key=lambda r: r["name"])


def _status(container) -> str:
    health = (container.attrs.get("State") or {}).get("Health") or {}
    running = container.status == "running" and health.get("Status")
    return f"{container.status} ({health['Status']})" if running else container.status


def find_deployment(client, model: str, host: str | None):
    """The current container of MODEL on the host: by deployment name, model id or folder."""
    wanted = model.lower()
    for container in client.containers.list(all=True, filters={"label": DEPLOYMENT}):
        labels = labels_of(container)
        lock = json.loads(labels.get(f"{LABEL}.lock", "{}"))
        names = {
            container.name.lower(),
            labels.get(f"{LABEL}.model-id", "").lower(),
            str(lock.get("model", {}).get("folder", "")).lower(),
        }
        if wanted in names and not container.name.endswith(PREVIOUS_SUFFIX):
            return container
    raise NotDeployedError(f"{model} is not deployed on {host or 'the local engine'}")


def rollback(model: str, host: str | None, output: Output) -> dict[str, str]:
    """Swap the current and the previous deployment (a second rollback goes forward again)."""
    client = connect_host(host)
    current = find_deployment(client, model, host)
    name = current.name
    previous = container_named(client, name + PREVIOUS_SUFFIX)
    if previous is None:
        raise NotDeployedError(
            f"{name} on {host or 'the local engine'} has no previous deployment to return to"
        )
    lock = json.loads(labels_of(previous).get(f"{LABEL}.lock", "{}"))
    with output.out.status("Hashing the previous deployment's weights on the target…"):
        verify_volume(client, lock["images"]["model"]["id"], lock)
    current.stop(timeout=10)
    current.rename(f"{name}-rollback")
    previous.rename(name)
    try:
        previous.start()
        wait_ready(previous, 900, output)
    except BaseException:
        previous.stop(timeout=10)
        previous.rename(name + PREVIOUS_SUFFIX)
        current.rename(name)
        current.start()
        raise
    current.rename(name + PREVIOUS_SUFFIX)
    return {
        "name": name,
        "lock_hash": labels_of(previous).get(f"{LABEL}.lock-hash", ""),
        "url": labels_of(previous).get(f"{LABEL}.url", ""),
    }


def undeploy(model: str, host: str | None, *, purge: bool = False) -> list[str]:
    """Remove the deployment's containers (and with ``purge`` its weights and logs volumes)."""
    client = connect_host(host)
    current = find_deployment(client, model, host)
    name = current.name
    removed: list[str] = []
    volumes: set[str] = set()
    for container in filter(None, (current, container_named(client, name + PREVIOUS_SUFFIX))):
        volumes.update(
            m["Name"] for m in container.attrs.get("Mounts", []) if m.get("Type") == "volume"
        )
        container.remove(force=True)
        removed.append(container.name)
    if purge:
        for volume in sorted(volumes):
            if not client.containers.list(all=True, filters={"volume": volume}):
                client.volumes.get(volume).remove(force=True)
                removed.append(f"volume {volume}")
    return removed


def deployments_everywhere(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Without --host: every host this machine deployed to (deployments.jsonl), asked live."""
    from llm_installer.deploy.errors import TargetUnavailableError

    rows: list[dict[str, Any]] = []
    for host in sorted({r["host"] for r in records}):
        try:
            rows += deployments(None if host == "local" else host)
        except TargetUnavailableError:
            rows.append(
                {
                    "name": "",
                    "model": "",
                    "lock_hash": "",
                    "status": "unreachable",
                    "url": "",
                    "host": host,
                    "previous": False,
                }
            )
    return rows
