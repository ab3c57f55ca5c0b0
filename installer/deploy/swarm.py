"""``llm-installer compose … --swarm``: installed models and the gateway as a Docker Swarm stack.

The stack folder gets ``docker-stack.yml`` (compose/swarm-stack.yml.j2) for ``docker stack
deploy``, ``gateway.py`` and ``gateway_ui.html`` (shipped to the nodes as Swarm configs) and, when
an API key is set, ``api_key`` (mode 600, a Swarm secret: never in the stack file). GPUs are
generic resources (``NVIDIA-GPU``); ports are published in host mode and services use DNS round
robin, so neither the ingress routing mesh nor virtual IPs (iptables, IPVS) are needed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llm_installer import __version__
from llm_installer.resources import data_file, templates
from llm_installer.run.stack import (
    InstalledModel,
    StackOptions,
    StackUsageError,
    _remember,
    check_ports,
    installed_models,
    project_name,
    service_context,
    stack_name,
    stacks_root,
)
from llm_installer.settings import Settings

STACK_FILE = "docker-stack.yml"
SECRET_FILE = "api_key"
SECRET_TARGET = "llm_api_key"  # /run/secrets/llm_api_key in every service
GPU_KIND = "NVIDIA-GPU"
GATEWAY_FILES = {"gateway_py": "gateway.py", "gateway_ui": "gateway_ui.html"}
# The runtime and the gateway read LLM_API_KEY: export it from the secret, then run the command.
KEY_FROM_SECRET = (
    f'LLM_API_KEY="$(cat /run/secrets/{SECRET_TARGET})"; export LLM_API_KEY; exec "$@"'
)


@dataclass(frozen=True)
class SwarmOptions:
    replicas: int = 1
    constraints: tuple[str, ...] = ()
    gpus: int | None = None  # GPUs each model task reserves; None: the model's need
    weights: str = (
        "bind"  # "bind": the model folder's path on every node; "volume": llm-weights-<hash>
    )
    api_key: str | None = None


def check_options(options: SwarmOptions) -> None:
    """Refuse what Swarm would only reject at deploy time."""
    if options.replicas < 0:
        raise StackUsageError("--replicas must be 0 or more", hint="For example --replicas 2.")
    if options.gpus is not None and options.gpus < 0:
        raise StackUsageError("--gpus must be 0 or more", hint="For example --gpus 1.")
    if options.weights not in ("bind", "volume"):
        raise StackUsageError(
            f"--weights {options.weights!r} is not bind or volume",
            hint="Use --weights bind (a path on every node) or --weights volume.",
        )
    for constraint in options.constraints:
        if not any(op in constraint for op in ("==", "!=")):
            raise StackUsageError(
                f"--constraint {constraint!r} has no == or !=",
                hint="Write it as Swarm does, e.g. --constraint node.labels.gpu==true.",
            )


def weights_mount(model: InstalledModel, context: dict[str, Any], mode: str) -> dict[str, str]:
    """The weights' source: the absolute bind path, or the volume ``llm-installer deploy`` fills."""
    if mode == "bind":
        return {"type": "bind", "source": context["weights_volume"].rsplit(":/model", 1)[0]}
    from llm_installer.deploy.lock import read_lock
    from llm_installer.deploy.volumes import volume_name

    return {"type": "volume", "source": volume_name(read_lock(model.model_dir))}


def _wrapped(command: list[str], keyed: bool) -> list[str]:
    return ["sh", "-c", KEY_FROM_SECRET, "sh", *command] if keyed else list(command)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


def swarm_context(
    models: list[InstalledModel], name: str, options: StackOptions, swarm: SwarmOptions
) -> dict[str, Any]:
    """What compose/swarm-stack.yml.j2 renders: services, routes, configs, the secret's name."""
    taken, services = {"gateway"}, []
    keyed = bool(swarm.api_key)
    for index, model in enumerate(models):
        context = service_context(model, options.port_base + index, options.bind, taken)
        need = 1 if context["device"] == "cuda" else 0
        services.append(
            {
                **context,
                "command": _wrapped(context["command"], keyed),
                "weights": weights_mount(model, context, swarm.weights),
                "logs_volume": f"logs-{context['service']}",
                "shm_bytes": (2 if context["device"] == "cuda" else 1) * 2**30,
                "gpus": need if swarm.gpus is None else swarm.gpus,
            }
        )
    routes = [
        {
            "id": s["model_id"],
            "aliases": sorted({s["service"], m.model_dir.name}),
            "url": f"http://{s['service']}:8000",
        }
        for s, m in zip(services, models, strict=True)
    ]
    stack = project_name(name)
    configs = {
        key: {
            "name": f"{stack}-{key.replace('_', '-')}-{_digest(data_file('compose', f).read_bytes())}"
        }
        for key, f in GATEWAY_FILES.items()
    }
    secret = None
    if keyed:
        key_hash = _digest(f"{stack}\0{swarm.api_key}".encode())
        secret = {"name": f"{stack}-api-key-{key_hash}", "file": SECRET_FILE}
    return {
        "name": name,
        "stack": stack,
        "installer_version": __version__,
        "services": services,
        "routes_json": json.dumps(routes),
        "gateway_port": options.gateway_port,
        "gateway_image": services[0]["image"],
        "gateway_command": _wrapped(["python", "/gateway/gateway.py"], keyed),
        "replicas": swarm.replicas,
        "constraints": list(swarm.constraints),
        "gpu_kind": GPU_KIND,
        "configs": configs,
        "secret": secret,
        "secret_file": SECRET_TARGET,
        "external_volumes": sorted(
            {s["weights"]["source"] for s in services if s["weights"]["type"] == "volume"}
        ),
        "weights_note": "the bind path below on each node"
        if swarm.weights == "bind"
        else "the llm-weights-<hash> volume, e.g. from `llm-installer deploy MODEL --host NODE`",
    }


def render_swarm_stack(context: dict[str, Any]) -> str:
    return templates().get_template("swarm-stack.yml.j2").render(context)


def write_swarm_stack(
    models: list[str], settings: Settings, options: StackOptions, swarm: SwarmOptions
) -> tuple[Path, str]:
    """Write the Swarm stack folder; returns it and the Swarm stack's name (``llm-stack-NAME``)."""
    check_options(swarm)
    found = installed_models(models, settings.models_path)
    check_ports(len(found), options)
    name = stack_name(found, options)
    context = swarm_context(found, name, options, swarm)
    text = render_swarm_stack(context)
    folder = Path(options.output or stacks_root(settings) / name).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    for file in GATEWAY_FILES.values():
        shutil.copyfile(data_file("compose", file), folder / file)
        (folder / file).chmod(0o644)
    secret = folder / SECRET_FILE
    if swarm.api_key:
        fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(swarm.api_key)
        secret.chmod(0o600)
    else:
        secret.unlink(missing_ok=True)  # a key of an earlier run must not linger
    (folder / STACK_FILE).write_text(text)
    _remember(folder, settings)
    return folder, context["stack"]


def swarm_commands(folder: Path, stack: str) -> dict[str, str]:
    """`docker stack` lines for the stack, runnable from any folder on a manager."""
    file = shlex.quote(str(folder / STACK_FILE))
    return {
        "deploy": f"docker stack deploy --resolve-image never -c {file} {stack}",
        "ps": f"docker stack ps {stack}",
        "rm": f"docker stack rm {stack}",
    }


def report_swarm_stack(
    models: list[str], settings: Settings, options: StackOptions, swarm: SwarmOptions, output
) -> None:
    """Write the stack and print how to deploy, watch and remove it."""
    folder, stack = write_swarm_stack(models, settings, options, swarm)
    commands = swarm_commands(folder, stack)
    if not swarm.api_key:
        output.warning(
            "No API key: Swarm publishes ports on every address of the node that runs a task "
            "(it has no bind address). Set one with --api-key or LLM_API_KEY (it becomes a Swarm "
            "secret), or keep those ports behind a firewall."
        )
    output.info(
        f"Swarm stack written to [bold]{folder / STACK_FILE}[/]\n"
        f"  deploy: {commands['deploy']}   (on a Swarm manager)\n"
        f"  tasks:  {commands['ps']}\n"
        f"  API:    http://NODE:{options.gateway_port}/v1 on the node that runs the gateway\n"
        f"  remove: {commands['rm']}"
    )
