"""Fixtures for tests against the real Docker engine (marker ``docker``).

In CI (``CI`` set) a missing engine fails the run: a skipped docker test proves nothing.
"""

from __future__ import annotations

import os

import pytest

from llm_installer.build.rootfs import RootfsSpec, build_rootfs_image
from llm_installer.docker_engine import connect, image_exists
from llm_installer.errors import DockerUnavailableError


@pytest.fixture(scope="session")
def docker_client():
    try:
        client = connect()
    except DockerUnavailableError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs a Docker engine: {exc}")
        pytest.skip(f"no Docker engine: {exc}")
    yield client
    client.close()


@pytest.fixture(scope="session")
def rootfs_image(docker_client) -> str:
    """The offline base image (debootstrap → docker import), built once per engine."""
    spec = RootfsSpec()
    if not image_exists(docker_client, spec.tag):
        build_rootfs_image(docker_client, spec)
    return spec.tag
