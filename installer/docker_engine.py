"""The Docker engine, through docker-py only: connecting, and image facts."""

from __future__ import annotations

import docker
from docker.errors import DockerException, ImageNotFound

from llm_installer.errors import DockerUnavailableError


def connect(timeout: int = 10) -> docker.DockerClient:
    """A client for the engine named by DOCKER_HOST (or the default socket), checked with ping."""
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except DockerException as exc:
        raise DockerUnavailableError(f"No Docker engine answers: {exc}") from exc
    return client


def image_exists(client: docker.DockerClient, tag: str) -> bool:
    try:
        client.images.get(tag)
    except ImageNotFound:
        return False
    return True


def has_nvidia_runtime(client: docker.DockerClient) -> bool:
    """True when the engine knows the NVIDIA container runtime (the toolkit is installed)."""
    return "nvidia" in (client.info().get("Runtimes") or {})
