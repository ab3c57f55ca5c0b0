"""Base images without a registry: a Debian root filesystem made by debootstrap, then imported.

This is how air-gapped servers (and our CI) get a base image: no ``docker pull`` at all.
The image holds Debian's Python 3 (bookworm: 3.11), venv and CA certificates.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import docker

from llm_installer.errors import InstallerError

DEFAULT_MIRROR = "http://deb.debian.org/debian"


@dataclass(frozen=True)
class RootfsSpec:
    """What goes into the root filesystem."""

    tag: str = "llm-installer/rootfs:bookworm"
    suite: str = "bookworm"
    mirror: str = os.environ.get("LLM_INSTALLER_DEBIAN_MIRROR", DEFAULT_MIRROR)
    packages: tuple[str, ...] = ("python3", "python3-venv", "ca-certificates")


class RootfsError(InstallerError):
    exit_code = 21
    hint = "debootstrap needs root and a reachable Debian mirror (LLM_INSTALLER_DEBIAN_MIRROR)."


def debootstrap(spec: RootfsSpec, target: Path) -> None:
    """Create a minimal Debian root filesystem in ``target``."""
    if shutil.which("debootstrap") is None:
        raise RootfsError("debootstrap is not installed", hint="apt-get install -y debootstrap")
    command = [
        "debootstrap", "--variant=minbase", f"--include={','.join(spec.packages)}",
        spec.suite, str(target), spec.mirror,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RootfsError(
            f"debootstrap failed ({result.returncode}): {result.stderr[-2000:] or result.stdout[-2000:]}"
        )


def import_rootfs(client: docker.DockerClient, root: Path, tag: str) -> str:
    """Pack ``root`` as a tarball and ``docker import`` it as ``tag``; returns the image id."""
    repository, _, version = tag.partition(":")
    with tempfile.TemporaryDirectory(prefix="llm-rootfs-tar-") as workdir:
        archive = Path(workdir) / "rootfs.tar"
        with tarfile.open(archive, "w") as tar:
            tar.add(root, arcname=".")
        client.api.import_image_from_file(
            str(archive), repository=repository, tag=version or "latest"
        )
    return str(client.images.get(tag).id)


def build_rootfs_image(client: docker.DockerClient, spec: RootfsSpec = RootfsSpec()) -> str:
    """debootstrap + docker import; returns the new image's id."""
    with tempfile.TemporaryDirectory(prefix="llm-rootfs-") as workdir:
        root = Path(workdir) / "root"
        debootstrap(spec, root)
        shutil.rmtree(root / "var/cache/apt/archives", ignore_errors=True)
        return import_rootfs(client, root, spec.tag)
