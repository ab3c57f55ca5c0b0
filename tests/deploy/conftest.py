"""Fixtures for deploy tests: server B (a second dockerd), an sshd in front of it, a tiny install.

Server B starts empty (no images) for the session and is stopped after it; the sshd's sessions
reach B's socket, so ``ssh://root@127.0.0.1:PORT`` is a real SSH-reachable Docker host.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from deploy_helpers import FAKE_TOKEN, free_port, run_installer  # noqa: E402
from serverb import start_server_b, start_sshd, stop_server_b, stop_sshd  # noqa: E402


def _require(condition: bool, reason: str) -> None:
    if not condition:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def server_b():
    _require(
        os.geteuid() == 0 and shutil.which("dockerd") is not None, "root and dockerd (server B)"
    )
    server = start_server_b()
    yield server
    stop_server_b(server)


@pytest.fixture(scope="session")
def sshd(server_b):
    _require(Path("/usr/sbin/sshd").exists(), "openssh-server (apt-get install -y openssh-server)")
    daemon = start_sshd(free_port(), server_b.url)
    yield daemon
    stop_sshd(daemon)


@pytest.fixture(scope="session")
def local_engine():
    from llm_installer.docker_engine import connect
    from llm_installer.errors import DockerUnavailableError

    try:
        client = connect(timeout=600)  # a whole image is streamed through one request
    except DockerUnavailableError as exc:
        _require(False, f"a Docker engine: {exc}")
    yield client
    client.close()


@pytest.fixture(scope="session")
def rootfs_base(local_engine) -> str:
    """The offline base image (as tests/docker builds it), made once per engine."""
    from llm_installer.docker_engine import image_exists
    from llm_installer.rootfs import RootfsSpec, build_rootfs_image

    spec = RootfsSpec()
    if not image_exists(local_engine, spec.tag):
        build_rootfs_image(local_engine, spec)
    return spec.tag


@pytest.fixture(scope="session")
def deploy_home(tmp_path_factory, rootfs_base) -> dict:
    """A user's ~/LLM in a temp folder, with a (fake) HF token set as a user would have it."""
    home = tmp_path_factory.mktemp("deploy-home")
    (home / "config.yaml").write_text("{}\n")
    env = {
        **os.environ,
        "LLM_INSTALLER_MODELS_DIR": str(home / "models"),
        "LLM_INSTALLER_CACHE_DIR": str(home / "cache"),
        "LLM_INSTALLER_LOGS_DIR": str(home / "logs"),
        "LLM_INSTALLER_CONFIG": str(home / "config.yaml"),
        "LLM_INSTALLER_ROOTFS": "1",
        "HF_TOKEN": FAKE_TOKEN,
        "HF_HUB_OFFLINE": "1",
    }
    env.pop("LLM_INSTALLER_DEBUG", None)
    env.pop("DOCKER_HOST", None)
    return {"env": env, "home": home, "models": home / "models"}


@pytest.fixture(scope="session")
def installed_tiny(deploy_home, tmp_path_factory) -> Path:
    """A tiny llama installed from a local folder (the folder is the test's to change)."""
    from tiny_models import make_tiny_llama

    source = make_tiny_llama(tmp_path_factory.mktemp("deploy-src") / "deploy-tiny", seed=41)
    for path in [source.parent, source, *source.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o555 if path.is_dir() else path.stat().st_mode | 0o444)
    result = run_installer(deploy_home["env"], "install", str(source), "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    return deploy_home["models"] / "deploy-tiny"
