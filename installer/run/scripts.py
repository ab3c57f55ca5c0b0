"""start.sh, train.sh and compose.yml in a model folder, rendered from ``dockerfiles/``.

The scripts stay thin: they hand over to ``llm-installer start|train`` (which knows the host),
with a plain CPU ``docker run`` in start.sh as the last resort when no installer is left.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import Any

from llm_installer import __version__
from llm_installer.resources import templates
from llm_installer.run.container import container_name
from llm_installer.run.devices import compose_gpus
from llm_installer.run.start_plan import (
    CONTAINER_PORT,
    RUNTIME,
    StartOptions,
    serve_args,
    with_installed_quantization,
)
from llm_installer.settings import PROJECT_DIR
from llm_runtime.model_info import ModelInfo

# (template, file written, mode)
SCRIPTS = (
    ("start.sh.j2", "start.sh", 0o755),
    ("train.sh.j2", "train.sh", 0o755),
    ("compose.yml.j2", "compose.yml", 0o644),
)


def _container_command(device: str, model_info: ModelInfo | None = None) -> list[str]:
    """What the container runs (with the install's --quantization on CUDA, as ``start``); /lora
    is picked up by the runtime when it holds an adapter."""
    options, _ = with_installed_quantization(StartOptions(), model_info or ModelInfo(), device)
    args = serve_args(
        model="/model", host="0.0.0.0", port=CONTAINER_PORT, logs="/logs", lora=None,
        device=device, options=options,
    )  # fmt: skip
    return [*RUNTIME, *args]


def script_context(
    model_dir: Path, model_info: ModelInfo, uid_gid: tuple[int, int] | None
) -> dict[str, Any]:
    """Everything the templates use, from the install facts in model_info.json."""
    weights = Path(model_info.weights_path or model_dir / "model")
    inside = weights == model_dir / "model" or str(weights) == f"{model_info.model_dir}/model"
    installer_dir = model_info.installer_dir or str(PROJECT_DIR)
    device = "cuda" if model_info.device == "cuda" else "cpu"
    slug = re.sub(r"[^a-z0-9_-]+", "-", model_dir.name.lower()).strip("-") or "model"
    return {
        "model_id": model_info.model_id or model_dir.name,
        "family": model_info.family or "unknown",
        "installer_version": model_info.installer_version or __version__,
        "image": model_info.image.get("tag", ""),
        "model_dir": model_dir,
        "label_model_dir": str(model_info.model_dir or model_dir.resolve()),
        "installer_python": model_info.installer_python
        or str(Path(installer_dir) / ".venv" / "bin" / "python"),
        "weights_sh": '"$MODEL_DIR/model"' if inside else shlex.quote(str(weights)),
        "weights_volume": f"{'./model' if inside else weights}:/model:ro",
        "container_name": container_name(model_dir),
        "cpu_command": _container_command("cpu"),
        "command": _container_command(device, model_info),
        **compose_gpus(device),
        "device": device,
        "project": f"llm-{slug}",
        "service": slug,
        "user": f"{uid_gid[0]}:{uid_gid[1]}" if uid_gid and uid_gid[0] != 0 else None,
        # the compose service: host side of the port and the writable folders, relative here
        "bind": "127.0.0.1",
        "host_port": "${LLM_PORT:-8000}",
        "lora_volume": "./lora:/lora:ro",
        "logs_volume": "./logs:/logs",
    }


def _current_user() -> tuple[int, int] | None:
    return (os.getuid(), os.getgid()) if hasattr(os, "getuid") else None


def render_run_scripts(
    model_dir: Path, model_info: ModelInfo, uid_gid: tuple[int, int] | None = None
) -> dict[str, str]:
    """{file name: text} of every script, without writing anything."""
    env = templates()
    context = script_context(model_dir, model_info, uid_gid)
    context["s"] = dict(context)  # what compose/service.yml.j2's macro reads
    return {name: env.get_template(template).render(context) for template, name, _ in SCRIPTS}


def write_run_scripts(
    model_dir: Path, model_info: ModelInfo, *, uid_gid: tuple[int, int] | None = None
) -> list[Path]:
    """Write start.sh and train.sh (mode 755) and compose.yml into ``model_dir``.

    ``uid_gid`` is who the compose service runs as (default: the current user; root → the
    image's own unprivileged user).
    """
    model_dir = Path(model_dir)
    texts = render_run_scripts(model_dir, model_info, uid_gid or _current_user())
    written = []
    for _, name, mode in SCRIPTS:
        path = model_dir / name
        temporary = path.with_name(f".{name}.tmp")
        temporary.write_text(texts[name])
        temporary.chmod(mode)
        os.replace(temporary, path)
        written.append(path)
    return written
