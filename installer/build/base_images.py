"""Shared base images (OS + Python + torch), chosen from a data table (base-images/table.json).

``llm-installer base build [cpu|cuda|cuda-devel|<row>] [--rootfs]``. With ``--rootfs`` the OS layer is a
Debian root filesystem made by debootstrap and imported (no registry needed: air-gapped hosts, CI).

A CUDA kind (``cuda``, ``cuda-devel``) has one row per CUDA line of the pinned torch; the host's
NVML driver version and compute capabilities pick the line (``choose_cuda_flavour``), and GPUs
that no line of the pinned torch supports are refused with the reason.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import docker
from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from rich.console import Console

from llm_installer.build.buildenv import (
    PipSettings,
    host_pip_settings,
    local_wheels,
    proxy_build_args,
    write_buildenv,
)
from llm_installer.build.builder import BuiltImage, build_image
from llm_installer.build.rootfs import RootfsSpec, build_rootfs_image
from llm_installer.docker_engine import image_exists
from llm_installer.errors import InstallerError
from llm_installer.resources import data_file, render

IMAGE_REPOSITORY = "llm-installer/base"
KINDS = ("cpu", "cuda", "cuda-devel", "cuda-vllm")
DRIVER_URL = "https://www.nvidia.com/en-us/drivers/"


class UnknownFlavourError(InstallerError):
    exit_code = 23


class RegistryUnreachableError(InstallerError):
    exit_code = 28


UNREACHABLE_SIGNS = (
    "no such host", "dial tcp", "connection refused", "i/o timeout", "network is unreachable",
    "TLS handshake timeout", "Client.Timeout", "no route to host", "server misbehaving",
)  # fmt: skip


class UnsupportedGpuError(InstallerError):
    exit_code = 32
    hint = (
        f"Update the NVIDIA driver ({DRIVER_URL}), hide the unsupported GPU with CUDA_VISIBLE_DEVICES, "
        "or install on CPU with --device cpu."
    )


@dataclass(frozen=True)
class Flavour:
    """One row of the base image table."""

    name: str
    kind: str
    os_image: str
    torch: str
    cuda: str | None
    torch_index: str | None
    local_tag: str
    min_driver: str | None
    rootfs_ok: bool
    architectures: tuple[str, ...] = ()
    ptx: str | None = None
    python_from_apt: tuple[str, ...] = ()

    def tag(self, *, rootfs: bool = False) -> str:
        suffix = "-rootfs" if rootfs else ""
        return f"{IMAGE_REPOSITORY}:{self.name}-torch{self.torch}{suffix}"

    @property
    def torch_pin(self) -> str:
        """The exact wheel this flavour takes: ``2.13.0+cu130`` (pip refuses any other build)."""
        return f"{self.torch}+{self.local_tag}"

    def supports(self, capability: Sequence[int]) -> bool:
        """A GPU runs this torch build when it holds machine code for the GPU's major version
        at an equal or lower minor (binary compatibility), or PTX at or below its capability."""
        if self.cuda is None:
            return True
        major, minor = tuple(capability)[:2]
        if any(a[0] == major and a[1] <= minor for a in map(_version, self.architectures)):
            return True
        return self.ptx is not None and (major, minor) >= _version(self.ptx)

    def driver_ok(self, driver: str | None) -> bool:
        return (
            self.min_driver is None
            or driver is None
            or _version(driver) >= _version(self.min_driver)
        )


@dataclass(frozen=True)
class CudaChoice:
    """The CUDA flavour for this host's GPUs, or None with the reason none fits."""

    flavour: Flavour | None
    reason: str = ""


@cache
def base_table() -> dict:
    """base-images/table.json, or the table LLM_INSTALLER_BASE_TABLE names (your own OS images)."""
    return json.loads(
        Path(
            os.environ.get("LLM_INSTALLER_BASE_TABLE") or data_file("base-images", "table.json")
        ).read_text()
    )


def flavours() -> dict[str, Flavour]:
    rows = base_table()["flavours"]
    return {name: _row(name, row) for name, row in rows.items()}


def _row(name: str, row: dict) -> Flavour:
    listed = {k: tuple(row.get(k) or ()) for k in ("architectures", "python_from_apt")}
    return Flavour(name=name, **{**row, **listed})


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in str(text).split(".") if part.isdigit())


def flavour(
    name: str, *, driver: str | None = None, capabilities: Sequence[Sequence[int]] = ()
) -> Flavour:
    """A row by name, or a kind (cpu, cuda, cuda-devel) resolved for the given GPUs."""
    table = flavours()
    if name in table:
        return table[name]
    if name in KINDS:
        return _for_kind(name, driver, capabilities)
    raise UnknownFlavourError(
        f"Unknown base image {name!r}", hint=f"Choose one of: {', '.join((*KINDS, *table))}"
    )


def flavour_for_this_host(name: str) -> Flavour:
    """``flavour`` with the driver and GPUs NVML reports here (``base build cuda``)."""
    if name not in KINDS or name == "cpu":
        return flavour(name)
    from llm_installer.check.hardware import probe_nvidia

    nvidia = probe_nvidia()
    return flavour(
        name,
        driver=nvidia.driver,
        capabilities=[g.compute_capability for g in nvidia.gpus if g.compute_capability],
    )


def _for_kind(kind: str, driver: str | None, capabilities: Sequence[Sequence[int]]) -> Flavour:
    if kind == "cpu":
        return flavours()["cpu"]
    choice = choose_cuda_flavour(kind, driver, capabilities)
    if choice.flavour is None:
        raise UnsupportedGpuError(
            f"No torch {_rows(kind)[0].torch} build runs here: {choice.reason}"
        )
    return choice.flavour


def _rows(kind: str) -> list[Flavour]:
    return [row for row in flavours().values() if row.kind == kind]


def choose_cuda_flavour(
    kind: str, driver: str | None, capabilities: Sequence[Sequence[int]]
) -> CudaChoice:
    """The first row of ``kind`` (table order) whose driver minimum and GPU architectures fit
    every GPU; else None and why (an old driver, or a GPU no build of the pinned torch runs on)."""
    rows = _rows(kind)
    for row in rows:
        if row.driver_ok(driver) and all(row.supports(c) for c in capabilities):
            return CudaChoice(row)
    return CudaChoice(None, _why_none(rows, driver, capabilities))


def _why_none(
    rows: list[Flavour], driver: str | None, capabilities: Sequence[Sequence[int]]
) -> str:
    torch = rows[0].torch
    for capability in capabilities:
        if not any(row.supports(capability) for row in rows):
            lowest = min((a for row in rows for a in row.architectures), key=_version)
            cc = ".".join(map(str, tuple(capability)[:2]))
            return (
                f"a GPU of compute capability {cc} is not supported by torch {torch} "
                f"(its CUDA builds cover {lowest} and newer: {_coverage(rows)})"
            )
    fitting = [row for row in rows if all(row.supports(c) for c in capabilities)]
    if fitting:
        need = min((row.min_driver for row in fitting if row.min_driver), key=_version)
        builds = ", ".join(f"CUDA {row.cuda} needs ≥ {row.min_driver}" for row in fitting)
        return f"NVIDIA driver {driver} is older than {need} ({builds})"
    return f"no single CUDA build of torch {torch} covers all of these GPUs together ({_coverage(rows)})"


def _coverage(rows: list[Flavour]) -> str:
    return "; ".join(
        f"CUDA {row.cuda}: {', '.join(row.architectures)}{' + PTX' if row.ptx else ''}"
        for row in rows
    )


def choose_flavour(
    device: str, needs_compiler: bool = False, *, driver: str | None = None,
    capabilities: Sequence[Sequence[int]] = (), engine: str = "transformers",
) -> Flavour:  # fmt: skip
    """cpu for CPU hosts; the CUDA line for these GPUs (cuda-devel for packages that compile;
    cuda-vllm, the torch vLLM's CUDA build pins, for the vLLM engine)."""
    if device != "cuda":
        return flavours()["cpu"]
    if engine == "vllm":
        return _for_kind("cuda-vllm", driver, capabilities)
    return _for_kind("cuda-devel" if needs_compiler else "cuda", driver, capabilities)


def cuda_choice_for(hardware: Mapping[str, Any], kind: str = "cuda") -> CudaChoice:
    """``choose_cuda_flavour`` for a check profile's hardware (its NVML driver and GPUs)."""
    capabilities = [
        tuple(g["compute_capability"])
        for g in hardware.get("gpus") or ()
        if g.get("compute_capability")
    ]
    return choose_cuda_flavour(kind, hardware.get("nvidia_driver"), capabilities)


def require_cuda_flavour(hardware: Mapping[str, Any]) -> Flavour:
    """The CUDA flavour for these GPUs, or UnsupportedGpuError with the reason none runs."""
    choice = cuda_choice_for(hardware)
    if choice.flavour is None:
        raise UnsupportedGpuError(
            f"No torch {flavours()['cpu'].torch} CUDA build runs here: {choice.reason}"
        )
    return choice.flavour


def install_flavour(
    base_image: str | None, device: str, needs_compiler: bool, hardware: Mapping[str, Any],
    engine: str = "transformers",
) -> tuple[Flavour, bool]:  # fmt: skip
    """(the flavour, whether ``base_image`` is an image tag of the user's own) for an install:
    ``--base-image`` names a row or a kind, or an image (then the flavour only says cpu or CUDA)."""
    table = flavours()
    if base_image in table:
        return table[base_image], False
    driver = hardware.get("nvidia_driver")
    capabilities = [
        tuple(g["compute_capability"])
        for g in hardware.get("gpus") or ()
        if g.get("compute_capability")
    ]
    if base_image in KINDS:
        return flavour(base_image, driver=driver, capabilities=capabilities), False
    chosen = choose_flavour(
        device, needs_compiler, driver=driver, capabilities=capabilities, engine=engine
    )
    return chosen, bool(base_image)


def render_base_dockerfile(row: Flavour, *, os_image: str, torch_index: str | None) -> str:
    return render(
        "base.Dockerfile.j2", flavour=row.name, python=base_table()["python"], os_image=os_image, torch=row.torch,
        torch_pin=row.torch_pin, cuda=row.cuda, torch_index=torch_index, python_from_apt=row.python_from_apt,
    )  # fmt: skip


def matching_torch_wheels(settings: PipSettings, row: Flavour) -> list[Path]:
    """Torch wheels in the host's find-links that are exactly this flavour's build (version and
    local tag, e.g. ``2.13.0+cu130``, for the base image's Python): never a CPU wheel for CUDA."""
    python = "cp" + base_table()["python"].replace(".", "")
    found = []
    for path in local_wheels(settings, ("torch",)):
        try:
            _, version, _, tags = parse_wheel_filename(path.name)
        except InvalidWheelFilename:
            continue
        if str(version) == row.torch_pin and any(tag.interpreter == python for tag in tags):
            found.append(path)
    return found


def ensure_base_image(
    client: docker.DockerClient,
    row: Flavour,
    *,
    rootfs: bool,
    console: Console,
    log_path: Path,
    rebuild: bool = False,
) -> BuiltImage | str:
    """The base image's tag, built first when missing (or when ``rebuild``).

    When the OS image must come from a registry that cannot be reached, the base is made from a
    Debian root filesystem instead (what ``--rootfs`` asks for), and the output says so.
    """
    tag = row.tag(rootfs=rootfs)
    if image_exists(client, tag) and not rebuild:
        return tag
    if not rootfs and not image_exists(client, row.os_image):
        problem = registry_problem(client, row.os_image)
        if problem:
            rootfs = _offline_instead(row, problem, console)
            if image_exists(client, row.tag(rootfs=True)) and not rebuild:
                return row.tag(rootfs=True)
    return build_base_image(client, row, rootfs=rootfs, console=console, log_path=log_path)


def registry_problem(client: docker.DockerClient, image: str) -> str | None:
    """Why the engine cannot reach ``image``'s registry (DNS, connection, timeout), else None."""
    from docker.errors import APIError

    try:
        client.api.inspect_distribution(image)
    except APIError as exc:
        text = str(exc.explanation or exc)
        if any(sign in text for sign in UNREACHABLE_SIGNS):
            return text
    return None


def _offline_instead(row: Flavour, problem: str, console: Console) -> bool:
    """Say that the registry is unreachable and that the root filesystem is used; True."""
    if not row.rootfs_ok:
        raise RegistryUnreachableError(
            f"The {row.name} base needs {row.os_image}, and its registry cannot be reached: {problem}",
            hint=f"Pull it on a connected machine, then `docker save {row.os_image}` / `docker load` here; "
            "or use the cpu or cuda base, which can be made offline.",
        )
    console.print(
        f"[yellow]The registry of {row.os_image} cannot be reached[/] ({problem.strip()[:200]}).\n"
        f"Making the {row.name} base from a Debian root filesystem instead (debootstrap, as --rootfs does): "
        f"{row.tag(rootfs=True)}"
    )
    return True


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
        console.print(
            f"Creating the root filesystem image {os_image} with debootstrap (about a minute)…"
        )
        build_rootfs_image(client, RootfsSpec(tag=os_image))
    settings = host_pip_settings()
    # A torch wheel of exactly this build on the host (find-links) beats the torch index.
    wheels = matching_torch_wheels(settings, row)
    with tempfile.TemporaryDirectory(prefix="llm-base-") as workdir:
        context = Path(workdir)
        write_buildenv(settings, context, wheel_files=tuple(wheels))
        dockerfile = render_base_dockerfile(
            row, os_image=os_image, torch_index=None if wheels else row.torch_index
        )
        (context / "Dockerfile").write_text(dockerfile)
        return build_image(
            client, context, row.tag(rootfs=rootfs), log_path=log_path, console=console,
            buildargs=proxy_build_args(), title=f"Base image {row.name}",
        )  # fmt: skip
