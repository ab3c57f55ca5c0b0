"""``llm-installer compose``: several installed models as one compose stack behind a gateway.

The stack folder holds ``compose.yml`` (rendered from compose/stack.yml.j2, one service per
model through the same macro as each model folder's own compose.yml) and ``gateway.py`` (copied
from compose/), which one of the stack's model images runs: no image is pulled.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from llm_installer import __version__
from llm_installer.config import Settings
from llm_installer.console import Output
from llm_installer.errors import InstallerError
from llm_installer.installed import (
    IncompleteInstallError,
    ModelNotInstalledError,
    require_complete,
    resolve_model_dir,
)
from llm_installer.options import ConfigOpt, HostOpt
from llm_installer.scripts import COMPOSE_DIR, _current_user, script_context, template_environment

GATEWAY_PORT = 8080
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]*")


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
    info: dict[str, Any]


def installed_models(models: list[str], models_dir: Path) -> list[InstalledModel]:
    """Every MODEL's folder and model_info.json; names all the missing ones at once."""
    found, missing = [], []
    for model in models:
        try:
            folder = resolve_model_dir(model, models_dir)
            found.append(InstalledModel(folder, require_complete(folder)))
        except (ModelNotInstalledError, IncompleteInstallError):
            missing.append(model)
    if missing:
        raise ModelNotInstalledError(
            f"Not installed in {models_dir}: {', '.join(missing)}",
            hint="Install each first: "
            + "; ".join(f"`llm-installer install {m}`" for m in missing)
            + " (see what is installed with `llm-installer list`).",
        )
    folders = [m.model_dir for m in found]
    if len(set(folders)) < len(folders):
        raise StackUsageError("A model is named twice", hint="Name each model once.")
    return found


def service_context(model: InstalledModel, host_port: int, bind: str, taken: set[str]) -> dict[str, Any]:
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
        raise StackUsageError(f"{options.name!r} is not a usable stack name", hint="Use letters, digits, - and _.")
    return name


def render_stack(models: list[InstalledModel], name: str, options: StackOptions) -> str:
    taken = {"gateway"}
    services = [
        service_context(model, options.port_base + index, options.bind, taken) for index, model in enumerate(models)
    ]
    routes = [
        {"id": s["model_id"], "aliases": sorted({s["service"], m.model_dir.name}), "url": f"http://{s['service']}:8000"}
        for s, m in zip(services, models, strict=True)
    ]
    context = {
        "name": name,
        "project": f"llm-stack-{name}",
        "installer_version": __version__,
        "services": services,
        "routes_json": json.dumps(routes).replace("$", "$$"),  # $ would be compose interpolation
        "bind": options.bind,
        "gateway_port": options.gateway_port,
        "gateway_image": services[0]["image"],
        "gateway_user": services[0]["user"],
    }
    return template_environment().get_template("stack.yml.j2").render(context)


def write_stack(models: list[str], settings: Settings, options: StackOptions) -> Path:
    """Write the stack folder (compose.yml + gateway.py); nothing is written when a model is missing."""
    found = installed_models(models, settings.models_path)
    ports = [options.port_base + i for i in range(len(found))]
    if options.gateway_port in ports or not all(0 < p < 65536 for p in (*ports, options.gateway_port)):
        raise StackUsageError(
            f"Ports {ports[0]}-{ports[-1]} (models) and {options.gateway_port} (gateway) must be distinct and valid",
            hint="Choose another --port-base or --gateway-port.",
        )
    name = stack_name(found, options)
    text = render_stack(found, name, options)
    folder = Path(options.output or settings.models_path.parent / "stacks" / name).expanduser()
    for model in found:  # created here, they would be root's and the service could not write logs
        for sub in ("lora", "logs"):
            (model.model_dir / sub).mkdir(exist_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("gateway.py", "gateway_ui.html"):  # the gateway and its web UI at /
        shutil.copyfile(COMPOSE_DIR / name, folder / name)
        (folder / name).chmod(0o644)
    (folder / "compose.yml").write_text(text)
    return folder


def register(app: typer.Typer, run_command: Callable[..., None]) -> None:
    @app.command(name="compose")
    def compose(
        models: Annotated[list[str], typer.Argument(help="Installed models: ids (owner/name), folder names or paths.")],
        output: Annotated[Path | None, typer.Option("--output", help="Stack folder (default ~/LLM/stacks/NAME).")] = None,
        name: Annotated[str | None, typer.Option("--name", help="Stack name (default: the models' folders).")] = None,
        port_base: Annotated[int, typer.Option("--port-base", help="Host port of the first model; +1 for each next.")] = 8000,
        gateway_port: Annotated[int, typer.Option("--gateway-port", help="Host port of the gateway.")] = GATEWAY_PORT,
        host: HostOpt = "127.0.0.1",
        config: ConfigOpt = None,
    ) -> None:
        """Write a docker compose stack: the models as services plus a gateway routing by "model"."""

        def body(settings: Settings, output_: Output) -> None:
            options = StackOptions(name, output, port_base, gateway_port, host)
            folder = write_stack(models, settings, options)
            compose_file = folder / "compose.yml"
            output_.info(
                f"Stack written to [bold]{folder}[/]\n"
                f"  start: docker compose -f {compose_file} up -d   (or docker-compose)\n"
                f"  API:   http://{host}:{gateway_port}/v1 (the request's \"model\" picks the model)\n"
                f"  UI:    http://{host}:{gateway_port}/ (a model picker; each model under /m/<name>/)\n"
                f"  stop:  docker compose -f {compose_file} down"
            )

        run_command(False, config, body)
