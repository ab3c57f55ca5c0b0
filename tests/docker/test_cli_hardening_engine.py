"""The real CLI against the real engine when the base image's registry cannot be reached
(issue 14, item 9): the base is made from the root filesystem, and the output says so.

The registry is made unreachable for sure with a base table (LLM_INSTALLER_BASE_TABLE) whose
OS images live under ``registry.invalid`` (a name that never resolves), so the engine's own
registry lookup fails as it does on an offline host.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import docker
import pytest

from llm_installer.build.base_images import flavour
from llm_installer.settings import PROJECT_DIR

pytestmark = [pytest.mark.docker]


@pytest.fixture
def unreachable_table(tmp_path: Path, llm_home: Path) -> dict[str, str]:
    table = json.loads((PROJECT_DIR / "base-images" / "table.json").read_text())
    for row in table["flavours"].values():
        row["os_image"] = "registry.invalid/" + row["os_image"]
    path = tmp_path / "table.json"
    path.write_text(json.dumps(table))
    env = {**os.environ, "LLM_INSTALLER_BASE_TABLE": str(path), "COLUMNS": "200"}
    env.pop("LLM_INSTALLER_ROOTFS", None)
    return env


def base_build(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "llm_installer", "base", "build", *args],
        capture_output=True, text=True, env=env, timeout=1800, check=False,
    )  # fmt: skip


def test_unreachable_registry_makes_the_base_offline(
    unreachable_table, docker_client, rootfs_image
):
    result = base_build(unreachable_table, "cpu")
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    assert result.returncode == 0, output[-3000:]
    rootfs_tag = flavour("cpu").tag(rootfs=True)
    assert "The registry of registry.invalid/python:3.11-slim-bookworm cannot be reached" in output
    assert "no such host" in output and "--rootfs" in output
    assert f"Base image ready: {rootfs_tag}" in " ".join(output.split())
    assert docker_client.images.get(rootfs_tag)


def test_unreachable_registry_for_a_registry_only_base(unreachable_table, docker_client):
    result = base_build(unreachable_table, "cuda-devel")
    assert "Traceback" not in result.stdout + result.stderr
    assert result.returncode == 28, result.stderr[-3000:]
    assert "its registry cannot be reached" in result.stderr
    assert "docker save" in result.stderr


@pytest.fixture
def empty_os_image(docker_client):
    """A local image with no files at all: any RUN step of a build on it fails at once."""
    import io
    import tarfile
    import uuid

    tag = f"harden-cli/empty-os:{uuid.uuid4().hex[:8]}"
    archive = io.BytesIO()
    tarfile.open(fileobj=archive, mode="w").close()
    repository, version = tag.split(":")
    docker_client.api.import_image_from_data(archive.getvalue(), repository=repository, tag=version)
    image_id = docker_client.images.get(tag).id
    yield tag
    _remove_with_children(docker_client, image_id)


def _remove_with_children(client, image_id: str) -> None:
    """The failed build's cached steps are this image's children: remove them first."""
    for child in client.images.list(all=True):
        if image_id in (child.attrs.get("ParentId"), child.attrs.get("Parent")):
            _remove_with_children(client, child.id)
    with contextlib.suppress(docker.errors.ImageNotFound):  # pruned with its last child
        client.images.remove(image_id, force=True)


def test_failed_build_names_its_log(empty_os_image, tmp_path, llm_home):
    table = json.loads((PROJECT_DIR / "base-images" / "table.json").read_text())
    table["flavours"]["cpu"].update(os_image=empty_os_image, torch="0.0.0")
    (tmp_path / "table.json").write_text(json.dumps(table))
    env = {**os.environ, "LLM_INSTALLER_BASE_TABLE": str(tmp_path / "table.json"), "COLUMNS": "250"}
    result = base_build(env, "cpu")
    assert "Traceback" not in result.stdout + result.stderr
    assert result.returncode == 22, result.stderr[-3000:]
    log = llm_home / "logs" / "base-images.log"
    assert f"Read the build log {log}" in " ".join(result.stderr.split())
    assert log.is_file() and "ERROR" in log.read_text()


def test_compose_names_the_container_holding_a_port(
    docker_client, rootfs_image, llm_home, tmp_path
):
    """Item 12: a port published by a running container (what start.sh makes) is named before `up`."""
    import socket
    import uuid

    for folder, model_id in (("org_alpha", "org/alpha"), ("beta", "beta")):
        (llm_home / "models" / folder / "model").mkdir(parents=True)
        info = {
            "model_id": model_id,
            "family": "text-generation",
            "device": "cpu",
            "image": {"tag": "img:1"},
        }
        (llm_home / "models" / folder / "model_info.json").write_text(json.dumps(info))
        (llm_home / "models" / folder / ".install_complete").write_text("")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    name = f"harden-cli-port-{uuid.uuid4().hex[:8]}"
    holder = docker_client.containers.run(
        rootfs_image,
        ["sleep", "120"],
        name=name,
        detach=True,
        ports={"8000/tcp": ("127.0.0.1", port)},
    )
    try:
        result = subprocess.run(
            [sys.executable, "-m", "llm_installer", "compose", "org/alpha", "beta",
             "--port-base", str(port), "--gateway-port", str(port + 2), "--output", str(tmp_path / "stack")],
            capture_output=True, text=True, env={**os.environ, "COLUMNS": "250"}, timeout=60, check=False,
        )  # fmt: skip
    finally:
        holder.remove(force=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Port {port} (container {name}) on 127.0.0.1 is already in use" in result.stderr
