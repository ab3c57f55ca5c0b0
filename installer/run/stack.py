"""Several installed models as one compose stack behind a gateway (``llm-installer compose``).

The stack folder holds ``compose.yml`` (rendered from compose/stack.yml.j2, one service per
model through the same macro as each model folder's own compose.yml) and ``gateway.py`` (copied
from compose/), which one of the stack's model images runs: no image is pulled.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import llm_runtime.host_policy
from llm_installer import __version__
from llm_installer.errors import InstallerError
from llm_installer.resources import data_file, templates
from llm_installer.run.installed import (
    IncompleteInstallError,
    InvalidModelInfoError,
    ModelNotInstalledError,
    require_installed,
    resolve_model_dir,
)
from llm_installer.run.scripts import _current_user, script_context
from llm_installer.settings import Settings
from llm_runtime.model_info import ModelInfo

HOST_POLICY = Path(llm_runtime.host_policy.__file__)

GATEWAY_PORT = 8080
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]*")
INDEX_FILE = "index.txt"  # stacks written elsewhere (--output), one folder a line
MODEL_DIR_LABEL = re.compile(r"org\.llm-installer\.model-dir: (\".*\")")


class StackUsageError(InstallerError):
    exit_code = 2


@dataclass(frozen=True)
class StackOptions:
    name: str | None = None
    output: Path | None = None
    port_base: int = 8000
    gateway_port: int = GATEWAY_PORT
    bind: str = "127.0.0.1"


@dataclass(frozen=True)
class InstalledModel:
    model_dir: Path
    info: ModelInfo


def installed_models(models: list[str], models_dir: Path) -> list[InstalledModel]:
    """Every MODEL's folder and model_info.json; names all the missing ones at once."""
    found, missing = [], []
    for model in models:
        try:
            folder = resolve_model_dir(model, models_dir)
            found.append(InstalledModel(folder, require_installed(folder)))
        except InvalidModelInfoError:
            raise  # its own message names the file and what is wrong with it
        except (ModelNotInstalledError, IncompleteInstallError):
            missing.append(model)
    if missing:
        shown = [
            m if m.strip() and len(m) <= 80 and m.isprintable() else repr(m[:60]) for m in missing
        ]
        raise ModelNotInstalledError(
            f"Not installed in {models_dir}: {', '.join(shown)}",
            hint="Install each first: "
            + "; ".join(f"`llm-installer install {m}`" for m in shown)
            + " (see what is installed with `llm-installer list`).",
        )
    folders = [m.model_dir for m in found]
    if len(set(folders)) < len(folders):
        raise StackUsageError("A model is named twice", hint="Name each model once.")
    return found


def service_context(
    model: InstalledModel, host_port: int, bind: str, taken: set[str]
) -> dict[str, Any]:
    """The per-model service, with absolute mounts: the stack folder is not the model folder."""
    context = script_context(model.model_dir, model.info, _current_user())
    folder = model.model_dir
    if context["weights_volume"].startswith("./model:"):
        context["weights_volume"] = f"{folder / 'model'}:/model:ro"
    service = context["service"]
    while service in taken:  # "gateway" or two folders with the same slug
        service += "-model"
    taken.add(service)
    return {
        **context,
        "service": service,
        "bind": bind,
        "host_port": str(host_port),
        "lora_volume": f"{folder / 'lora'}:/lora:ro",
        "logs_volume": f"{folder / 'logs'}:/logs",
    }


def stack_name(models: list[InstalledModel], options: StackOptions) -> str:
    name = options.name or "-".join(m.model_dir.name.lower() for m in models)[:60]
    name = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-_")
    if not NAME_PATTERN.fullmatch(name or ""):
        raise StackUsageError(
            f"{options.name!r} is not a usable stack name", hint="Use letters, digits, - and _."
        )
    return name


def render_stack(models: list[InstalledModel], name: str, options: StackOptions) -> str:
    taken = {"gateway"}
    services = [
        service_context(model, options.port_base + index, options.bind, taken)
        for index, model in enumerate(models)
    ]
    routes = [
        {
            "id": s["model_id"],
            "aliases": sorted({s["service"], m.model_dir.name}),
            "url": f"http://{s['service']}:8000",
        }
        for s, m in zip(services, models, strict=True)
    ]
    context = {
        "name": name,
        "project": project_name(name),
        "installer_version": __version__,
        "services": services,
        "routes_json": json.dumps(routes).replace("$", "$$"),  # $ would be compose interpolation
        "bind": options.bind,
        "gateway_port": options.gateway_port,
        "gateway_image": services[0]["image"],
        "gateway_user": services[0]["user"],
    }
    return templates().get_template("stack.yml.j2").render(context)


def check_ports(count: int, options: StackOptions) -> None:
    """The models' ports (from --port-base, one each) and the gateway's: distinct and valid."""
    ports = [options.port_base + i for i in range(count)]
    if options.gateway_port in ports or not all(
        0 < p < 65536 for p in (*ports, options.gateway_port)
    ):
        raise StackUsageError(
            f"Ports {ports[0]}-{ports[-1]} (models) and {options.gateway_port} (gateway) must be distinct and valid",
            hint="Choose another --port-base or --gateway-port.",
        )


def write_stack(models: list[str], settings: Settings, options: StackOptions) -> tuple[Path, str]:
    """Write the stack folder (compose.yml + gateway.py); nothing is written when a model is missing.

    Returns the folder and the stack's name."""
    found = installed_models(models, settings.models_path)
    check_ports(len(found), options)
    name = stack_name(found, options)
    text = render_stack(found, name, options)
    folder = Path(options.output or stacks_root(settings) / name).expanduser()
    for model in found:  # created here, they would be root's and the service could not write logs
        for sub in ("lora", "logs"):
            (model.model_dir / sub).mkdir(exist_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    sources = [
        data_file("compose", "gateway.py"),
        data_file("compose", "gateway_ui.html"),
        HOST_POLICY,
    ]
    for source in sources:  # the gateway, its web UI at / and the runtime's Host/Origin checks
        shutil.copyfile(source, folder / source.name)
        (folder / source.name).chmod(0o644)
    (folder / "compose.yml").write_text(text)
    _remember(folder, settings)
    return folder, name


def project_name(name: str) -> str:
    """The compose project of a stack: the same in compose.yml's header and every printed command."""
    return f"llm-stack-{name}"


def compose_commands(folder: Path, name: str) -> dict[str, str]:
    """`docker compose` lines for the stack, runnable from any folder."""
    base = f"docker compose -p {project_name(name)} -f {shlex.quote(str(folder / 'compose.yml'))}"
    return {"start": f"{base} up -d", "stop": f"{base} down"}


def stacks_root(settings: Settings) -> Path:
    return settings.models_path.parent / "stacks"


def _remember(folder: Path, settings: Settings) -> None:
    """Stacks written outside ~/LLM/stacks are listed in its index, so `remove` finds them."""
    root = stacks_root(settings)
    if folder.resolve().parent == root.resolve():
        return
    index = root / INDEX_FILE
    known = index.read_text().splitlines() if index.is_file() else []
    if str(folder.resolve()) not in known:
        root.mkdir(parents=True, exist_ok=True)
        index.write_text("\n".join([*known, str(folder.resolve())]) + "\n")


def stacks_naming(model_dir: Path, settings: Settings) -> list[Path]:
    """Stack folders whose compose.yml still serves ``model_dir``."""
    root = stacks_root(settings)
    index = root / INDEX_FILE
    folders = sorted(f for f in root.iterdir() if f.is_dir()) if root.is_dir() else []
    folders += [
        Path(line) for line in (index.read_text().splitlines() if index.is_file() else []) if line
    ]
    wanted = {str(model_dir), str(model_dir.resolve())}
    return [
        f
        for f in dict.fromkeys(folders)
        if wanted & (_model_dirs_in(f / "compose.yml") | _model_dirs_in(f / "docker-stack.yml"))
    ]


def _model_dirs_in(compose_file: Path) -> set[str]:
    try:
        text = compose_file.read_text()
    except OSError:
        return set()
    return {json.loads(value) for value in MODEL_DIR_LABEL.findall(text)}


def held_ports(bind: str, ports: list[int]) -> list[str]:
    """The ports something already listens on at ``bind``, each with its holder when Docker knows it."""
    held = []
    for port in ports:
        with socket.socket(socket.AF_INET6 if ":" in bind else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((bind, port))
            except OSError:
                held.append(f"{port}{_holder(port)}")
    return held


def _holder(port: int) -> str:
    try:
        from llm_installer.docker_engine import connect

        names = [str(c.name) for c in connect().containers.list(filters={"publish": str(port)})]
    except Exception:  # noqa: BLE001 - naming the holder is a courtesy; no engine, no name
        return ""
    return f" (container {', '.join(names)})" if names else ""
