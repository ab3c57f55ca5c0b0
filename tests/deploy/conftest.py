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
    from llm_installer.build.rootfs import RootfsSpec, build_rootfs_image
    from llm_installer.docker_engine import image_exists

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


# ── a local OCI registry (Debian's docker-registry, i.e. distribution) ──────────────────

REGISTRY_USER = "deployer"
REGISTRY_PASSWORD = "registry-test-password-41"  # a throwaway for the auth registry only


def _start_registry(root: Path, htpasswd: bool = False):
    """docker-registry on a free 127.0.0.1 port with its own storage and config; (url, process)."""
    import subprocess
    import time
    import warnings

    import httpx

    port = free_port()
    auth = ""
    if htpasswd:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt  # glibc's bcrypt ($2b$), which distribution's htpasswd reader accepts

        hashed = crypt.crypt(REGISTRY_PASSWORD, crypt.mksalt(crypt.METHOD_BLOWFISH))
        (root / "htpasswd").write_text(f"{REGISTRY_USER}:{hashed}\n")
        auth = f"auth:\n  htpasswd:\n    realm: llm-test\n    path: {root / 'htpasswd'}\n"
    (root / "config.yml").write_text(
        "version: 0.1\nlog:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'storage'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  secret: llm-test-{port}\n{auth}"
    )
    process = subprocess.Popen(
        ["docker-registry", "serve", str(root / "config.yml")],
        stdout=(root / "registry.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    for _ in range(100):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=1).status_code in (200, 401):
                return f"127.0.0.1:{port}", process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.terminate()
    raise RuntimeError(f"docker-registry did not start: {(root / 'registry.log').read_text()}")


def _stop_registry(process) -> None:
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    """An open registry on loopback (engines allow 127.0.0.0/8 over plain HTTP): (host, storage)."""
    _require(shutil.which("docker-registry") is not None, "apt-get install -y docker-registry")
    root = tmp_path_factory.mktemp("registry")
    host, process = _start_registry(root)
    yield host, root / "storage"
    _stop_registry(process)


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory):
    """A registry that wants REGISTRY_USER / REGISTRY_PASSWORD (htpasswd, basic auth)."""
    _require(shutil.which("docker-registry") is not None, "apt-get install -y docker-registry")
    root = tmp_path_factory.mktemp("auth-registry")
    host, process = _start_registry(root, htpasswd=True)
    yield host
    _stop_registry(process)
