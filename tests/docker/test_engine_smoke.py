"""The engine works: an offline base image, a generated Dockerfile, a docker-py build, a run."""

from __future__ import annotations

import uuid
from pathlib import Path

import jinja2
import pytest

pytestmark = pytest.mark.docker

HERE = Path(__file__).parent
SCRIPT = """
import os, platform, sys
print(os.environ["GREETING"], platform.python_version(), os.getuid(), sys.prefix)
"""


def test_build_and_run_generated_image(docker_client, rootfs_image, tmp_path):
    greeting = f"hello-{uuid.uuid4().hex[:8]}"
    template = jinja2.Template((HERE / "smoke.Dockerfile.j2").read_text())
    (tmp_path / "Dockerfile").write_text(
        template.render(base_image=rootfs_image, script="hello.py", greeting=greeting)
    )
    (tmp_path / "hello.py").write_text(SCRIPT)
    tag = f"llm-installer-smoke:{greeting}"

    image, _ = docker_client.images.build(path=str(tmp_path), tag=tag, rm=True)
    try:
        output = docker_client.containers.run(image.id, remove=True).decode()
        assert image.attrs["Config"]["User"] == "app"
    finally:
        docker_client.images.remove(image.id, force=True)

    message, python_version, uid, prefix = output.split()
    assert message == greeting
    assert python_version.startswith("3.11")
    assert uid == "1000"  # non-root
    assert prefix == "/opt/venv"
