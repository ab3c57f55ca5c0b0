"""``llm-installer k8s MODEL… -o DIR``: Kubernetes manifests for installed models and a gateway.

Pure: manifests come from each model's ``llm.lock.json`` (image, serve command, GPU need, weight
sizes), so the same locks give the same files. Per model a PersistentVolumeClaim for the weights
(filled once, mounted read-only), a Deployment (``nvidia.com/gpu`` limit, node selector and
toleration on GPU models, ``/dev/shm`` as a memory emptyDir, readiness ``/health/ready``, liveness
``/health``, non-root) and a Service; the gateway is its own Deployment + Service + ConfigMap.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from llm_installer.resources import data_file

GATEWAY_SOURCE = data_file("compose", "gateway.py")
APP = "app.kubernetes.io/name"
PART = "app.kubernetes.io/part-of"
GiB = 1024**3
IMAGE_UID = 1000


class _Dumper(yaml.SafeDumper):
    """Plain YAML: no &anchors for repeated label maps (clearer diffs, every tool reads it)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _dump(documents: list[dict[str, Any]]) -> str:
    return yaml.dump_all(documents, Dumper=_Dumper, sort_keys=True)


def slug(name: str) -> str:
    """A DNS-1035 label: lower case, digits and '-', starting with a letter, at most 50 chars."""
    text = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    return ("m-" + text if not text[:1].isalpha() else text)[:50].rstrip("-") or "model"


def model_manifests(lock: Mapping[str, Any], name: str, stack: str) -> list[dict[str, Any]]:
    """PVC + Deployment + Service of one model."""
    weights_bytes = sum(f["size"] for f in lock["files"].values())
    size_gi = max(1, math.ceil(weights_bytes * 1.1 / GiB))
    labels = {APP: name, PART: stack}
    return [
        {
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": f"{name}-weights", "labels": labels, "annotations": {
                "org.llm-installer/weights-digest": lock["weights_digest"],
                "org.llm-installer/fill": f"copy the model folder's files to the volume's root, e.g. kubectl cp ./model/. <pod>:/model (a pod mounting {name}-weights read-write)",
            }},
            "spec": {"accessModes": ["ReadOnlyMany"], "resources": {"requests": {"storage": f"{size_gi}Gi"}}},
        },
        {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "labels": labels, "annotations": _annotations(lock)},
            "spec": {"replicas": 1, "selector": {"matchLabels": {APP: name}},
                     "template": {"metadata": {"labels": labels}, "spec": _pod_spec(lock, name)}},
        },
        _service(name, labels, 8000),
    ]  # fmt: skip


def _annotations(lock: Mapping[str, Any]) -> dict[str, str]:
    from llm_installer.deploy.lock import lock_hash

    return {
        "org.llm-installer/model-id": str(lock["model"]["id"]),
        "org.llm-installer/lock-hash": lock_hash(lock),
    }


def _pod_spec(lock: Mapping[str, Any], name: str) -> dict[str, Any]:
    gpu = (lock.get("gpu") or {}).get("device") == "cuda"
    spec: dict[str, Any] = {
        "securityContext": {"runAsNonRoot": True, "runAsUser": IMAGE_UID, "runAsGroup": IMAGE_UID, "fsGroup": IMAGE_UID},
        "containers": [_container(lock, gpu)],
        "volumes": [
            {"name": "weights", "persistentVolumeClaim": {"claimName": f"{name}-weights", "readOnly": True}},
            {"name": "logs", "emptyDir": {}},
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi" if gpu else "1Gi"}},
        ],
    }  # fmt: skip
    if gpu:
        spec["nodeSelector"] = {"nvidia.com/gpu.present": "true"}
        spec["tolerations"] = [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
        ]
    return spec


def _container(lock: Mapping[str, Any], gpu: bool) -> dict[str, Any]:
    serve = lock["serve"]
    memory = (lock.get("gpu") or {}).get("memory_estimate_bytes")
    resources: dict[str, Any] = {"limits": {"nvidia.com/gpu": 1}} if gpu else {}
    if memory and not gpu:
        resources["requests"] = {"memory": f"{math.ceil(memory / 2**20)}Mi"}
    env = [{"name": k, "value": v} for k, v in sorted(serve.get("env", {}).items())]
    env.append(
        {
            "name": "LLM_API_KEY",
            "valueFrom": {"secretKeyRef": {"name": "llm-api-key", "key": "key", "optional": True}},
        }
    )
    probe = {"port": serve["container_port"]}
    return {
        "name": "model", "image": lock["images"]["model"]["tag"], "imagePullPolicy": "IfNotPresent",
        "command": list(serve["command"]), "env": env,
        "ports": [{"name": "http", "containerPort": serve["container_port"]}],
        "volumeMounts": [
            {"name": "weights", "mountPath": "/model", "readOnly": True},
            {"name": "logs", "mountPath": "/logs"}, {"name": "dshm", "mountPath": "/dev/shm"},
        ],
        "resources": resources,
        "startupProbe": {"httpGet": {"path": "/health", **probe}, "periodSeconds": 10, "failureThreshold": 90},
        "readinessProbe": {"httpGet": {"path": "/health/ready", **probe}, "periodSeconds": 10},
        "livenessProbe": {"httpGet": {"path": "/health", **probe}, "periodSeconds": 30, "timeoutSeconds": 5},
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }  # fmt: skip


def _service(name: str, labels: Mapping[str, str], port: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": dict(labels)},
        "spec": {"selector": {APP: name}, "ports": [{"name": "http", "port": port, "targetPort": port}]},
    }  # fmt: skip


def gateway_manifests(
    models: Sequence[tuple[str, Mapping[str, Any]]], stack: str, gateway_source: str
) -> list[dict[str, Any]]:
    """ConfigMap (gateway.py) + Deployment (in the first model's image) + Service on 8080."""
    routes = [
        {"id": str(lock["model"]["id"]), "aliases": sorted({name, str(lock["model"].get("folder") or name)}), "url": f"http://{name}:8000"}
        for name, lock in models
    ]  # fmt: skip
    name, labels = f"{stack}-gateway", {APP: f"{stack}-gateway", PART: stack}
    container = {
        "name": "gateway", "image": models[0][1]["images"]["model"]["tag"], "imagePullPolicy": "IfNotPresent",
        "command": ["python", "/gateway/gateway.py"],
        "env": [{"name": "HOME", "value": "/tmp"}, {"name": "LLM_GATEWAY_ROUTES", "value": json.dumps(routes, sort_keys=True)},
                # in-cluster Service names are dotted but not attacker-controlled DNS
                {"name": "LLM_GATEWAY_ALLOWED_HOSTS", "value": "*.svc,*.svc.cluster.local"},
                {"name": "LLM_API_KEY", "valueFrom": {"secretKeyRef": {"name": "llm-api-key", "key": "key", "optional": True}}}],
        "ports": [{"name": "http", "containerPort": 8080}],
        "volumeMounts": [{"name": "gateway", "mountPath": "/gateway", "readOnly": True}],
        "readinessProbe": {"httpGet": {"path": "/health", "port": 8080}, "periodSeconds": 5},
        "livenessProbe": {"httpGet": {"path": "/health", "port": 8080}, "periodSeconds": 30},
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }  # fmt: skip
    pod = {"securityContext": {"runAsNonRoot": True, "runAsUser": IMAGE_UID}, "containers": [container],
           "volumes": [{"name": "gateway", "configMap": {"name": name}}]}  # fmt: skip
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}, "data": {"gateway.py": gateway_source}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels},
         "spec": {"replicas": 1, "selector": {"matchLabels": {APP: name}}, "template": {"metadata": {"labels": labels}, "spec": pod}}},
        _service(name, labels, 8080),
    ]  # fmt: skip


def render(
    models: Sequence[tuple[str, Mapping[str, Any]]], stack: str, gateway_source: str
) -> dict[str, str]:
    """{file name: YAML text}: one file per model, gateway.yaml and kustomization.yaml."""
    files = {}
    header = "# Generated by llm-installer from llm.lock.json; apply with: kubectl apply -k .\n"
    for name, lock in models:
        files[f"{name}.yaml"] = header + _dump(model_manifests(lock, name, stack))
    files["gateway.yaml"] = header + _dump(gateway_manifests(models, stack, gateway_source))
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": sorted(files),
    }
    files["kustomization.yaml"] = header + _dump([kustomization])
    return files


def write_k8s(
    models: Sequence[str], output_dir: Path, settings, name: str | None = None
) -> list[Path]:
    """Render the manifests of installed MODELS into OUTPUT_DIR; the written files."""
    from llm_installer.deploy.lock import read_lock
    from llm_installer.run.installed import require_installed, resolve_model_dir

    locked, taken = [], set()
    for model in models:
        folder = resolve_model_dir(model, settings.models_path)
        require_installed(folder)
        service = slug(folder.name)
        while service in taken:
            service = slug(service + "-m")
        taken.add(service)
        locked.append((service, read_lock(folder)))
    stack = slug(name or "llm")
    output_dir = Path(output_dir).expanduser()
    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, text in render(locked, stack, GATEWAY_SOURCE.read_text()).items():
        (output_dir / file_name).write_text(text)
        written.append(output_dir / file_name)
    return written
