"""Shared base images (OS + Python + torch), chosen from a data table (base-images/table.json).

``llm-installer base build [cpu|cuda|cuda-devel] [--rootfs]``. With ``--rootfs`` the OS layer is a
Debian root filesystem made by debootstrap and imported (no registry needed: air-gapped hosts, CI).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import docker
import jinja2
from rich.console import Console

from llm_installer.buildenv import host_pip_settings, local_wheels, proxy_build_args, write_buildenv
from llm_installer.builder import BuiltImage, build_image
from llm_installer.config import PROJECT_DIR
from llm_installer.docker_engine import image_exists
from llm_installer.errors import InstallerError
from llm_installer.rootfs import RootfsSpec, build_rootfs_image

BASE_DIR = PROJECT_DIR / "base-images"
IMAGE_REPOSITORY = "llm-installer/base"


class UnknownFlavourError(InstallerError):
    exit_code = 23


@dataclass(frozen=True)
class Flavour:
    """One row of the base image table."""

    name: str
    os_image: str
    torch: str
    cuda: str | None
    torch_index: str | None
    min_driver: str | None
    rootfs_ok: bool
    python_from_apt: tuple[str, ...] = ()

    def tag(self, *, rootfs: bool = False) -> str:
        suffix = "-rootfs" if rootfs else ""
        return f"{IMAGE_REPOSITORY}:{self.name}-torch{self.torch}{suffix}"


@cache
def base_table() -> dict:
    return json.loads((BASE_DIR / "table.json").read_text())


def flavours() -> dict[str, Flavour]:
    rows = base_table()["flavours"]
    return {
        name: Flavour(name=name, **{**row, "python_from_apt": tuple(row.get("python_from_apt", ()))})
        for name, row in rows.items()
    }


def flavour(name: str) -> Flavour:
    table = flavours()
    if name not in table:
        raise UnknownFlavourError(f"Unknown base image {name!r}", hint=f"Choose one of: {', '.join(table)}")
    return table[name]


def choose_flavour(device: str, needs_compiler: bool = False, *, engine: str = "transformers") -> Flavour:
    """cpu for CPU hosts; cuda for NVIDIA GPUs; cuda-devel for packages that compile; cuda-vllm
    (the torch vLLM's CUDA build pins) for vLLM on GPUs."""
    if device != "cuda":
        return flavour("cpu")
    if engine == "vllm":
        return flavour("cuda-vllm")
    return flavour("cuda-devel" if needs_compiler else "cuda")


def render_base_dockerfile(row: Flavour, *, os_image: str, torch_index: str | None) -> str:
    template = jinja2.Template((BASE_DIR / "base.Dockerfile.j2").read_text(), keep_trailing_newline=True)
    return template.render(
        flavour=row.name, python=base_table()["python"], os_image=os_image, torch=row.torch,
        cuda=row.cuda, torch_index=torch_index, python_from_apt=row.python_from_apt,
    )  # fmt: skip


def ensure_base_image(
    client: docker.DockerClient, row: Flavour, *, rootfs: bool, console: Console, log_path: Path, rebuild: bool = False
) -> BuiltImage | str:
    """The base image's tag, built first when missing (or when ``rebuild``)."""
    tag = row.tag(rootfs=rootfs)
    if image_exists(client, tag) and not rebuild:
        return tag
    return build_base_image(client, row, rootfs=rootfs, console=console, log_path=log_path)


def build_base_image(
    client: docker.DockerClient, row: Flavour, *, rootfs: bool, console: Console, log_path: Path
) -> BuiltImage:
    if rootfs and not row.rootfs_ok:
        raise UnknownFlavourError(
            f"The {row.name} base needs {row.os_image} from a registry; it cannot be made from a root filesystem",
            hint="Pull it on a connected machine, then `docker save` / `docker load` it here.",
        )
    os_image = base_table()["rootfs_image"] if rootfs else row.os_image
    if rootfs and not image_exists(client, os_image):
        console.print(f"Creating the root filesystem image {os_image} with debootstrap (about a minute)…")
        build_rootfs_image(client, RootfsSpec(tag=os_image))
    settings = host_pip_settings()
    # A torch wheel on the host (find-links) beats the torch index, which may be unreachable.
    has_local_torch = any(row.torch in w.name for w in local_wheels(settings, ("torch",)))
    with tempfile.TemporaryDirectory(prefix="llm-base-") as workdir:
        context = Path(workdir)
        write_buildenv(settings, context, wheels=("torch",) if has_local_torch else ())
        dockerfile = render_base_dockerfile(row, os_image=os_image, torch_index=None if has_local_torch else row.torch_index)
        (context / "Dockerfile").write_text(dockerfile)
        return build_image(
            client, context, row.tag(rootfs=rootfs), log_path=log_path, console=console,
            buildargs=proxy_build_args(), title=f"Base image {row.name}",
        )  # fmt: skip
