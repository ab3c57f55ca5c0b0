"""A second Docker engine ("server B") and an sshd in front of it, for deploy tests and bench.

Server B has its own socket, data root, exec root, pid file and bridge (``br-llmb``); it never
touches the first engine's ``docker0`` or data. It starts with no images at all.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import docker

SOCKET = "/var/run/llm-test-b.sock"
BRIDGE = "br-llmb"
BRIDGE_ADDRESS = "10.231.0.1/24"


@dataclass
class ServerB:
    url: str
    root: Path
    process: subprocess.Popen
    made_bridge: bool
    bridge: str = BRIDGE

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.url, timeout=600)


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, check=False)


def _ensure_bridge(bridge: str = BRIDGE, address: str = BRIDGE_ADDRESS) -> bool:
    """Create the bridge (ours alone) when absent; True when this call made it."""
    if _run("ip", "link", "show", bridge).returncode == 0:
        return False
    for command in (
        ("ip", "link", "add", bridge, "type", "bridge"),
        ("ip", "addr", "add", address, "dev", bridge),
        ("ip", "link", "set", bridge, "up"),
    ):
        done = _run(*command)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {done.stderr}")
    return True


def start_server_b(
    timeout: float = 60,
    *,
    socket: str = SOCKET,
    bridge: str = BRIDGE,
    address: str = BRIDGE_ADDRESS,
    extra_args: tuple[str, ...] = (),
) -> ServerB:
    """A dockerd on ``socket`` and ``bridge`` (server B by default; the Swarm tests pass their own)."""
    if os.path.exists(socket):
        probe = docker.DockerClient(base_url=f"unix://{socket}", timeout=5)
        try:
            probe.ping()
            raise RuntimeError(
                f"{socket} already answers: another engine runs there; stop it first"
            )
        except docker.errors.DockerException:
            os.unlink(socket)  # a stale socket of a killed run
    made_bridge = _ensure_bridge(bridge, address)
    root = Path(tempfile.mkdtemp(prefix="llmb-", dir="/var/tmp"))
    command = [
        "dockerd", "-H", f"unix://{socket}", "--data-root", str(root / "data"),
        "--exec-root", str(root / "exec"), "--pidfile", str(root / "dockerd.pid"),
        "--bridge", bridge, "--iptables=false", "--ip-masq=false", "--ip6tables=false",
        *extra_args,
    ]  # fmt: skip
    log = (root / "dockerd.log").open("wb")
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
    server = ServerB(f"unix://{socket}", root, process, made_bridge, bridge)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            server.client().ping()
            return server
        except docker.errors.DockerException:
            time.sleep(0.5)
    text = (root / "dockerd.log").read_text(errors="replace")[-3000:]
    stop_server_b(server)
    raise RuntimeError(f"server B's dockerd did not start:\n{text}")


def stop_server_b(server: ServerB) -> None:
    """Stop B's containers and dockerd, remove its folders and the bridge it made."""
    try:
        client = server.client()
        for container in client.containers.list(all=True):
            container.remove(force=True)
        if client.info().get("Swarm", {}).get("LocalNodeState") == "active":
            client.swarm.leave(force=True)
    except docker.errors.DockerException:
        pass
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
    _run("umount", "-R", str(server.root / "exec"))
    for namespace in (server.root / "exec" / "netns").glob("*"):  # Swarm's lb_* namespaces
        _run("umount", str(namespace))
    # Tens of thousands of image files: delete in the background rather than hold up the run.
    subprocess.Popen(["rm", "-rf", str(server.root)], start_new_session=True)
    if server.made_bridge:
        _run("ip", "link", "del", server.bridge)


@dataclass
class Sshd:
    port: int
    root: Path
    process: subprocess.Popen
    bin_dir: Path  # put first on PATH: its `ssh` uses this server's key and config

    @property
    def url(self) -> str:
        return f"ssh://root@127.0.0.1:{self.port}"

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(base if base is not None else os.environ)
        env["PATH"] = f"{self.bin_dir}:{env.get('PATH', '')}"
        return env


def start_sshd(port: int, docker_host: str) -> Sshd:
    """sshd on 127.0.0.1:PORT (test keys only); its sessions see DOCKER_HOST=docker_host."""
    root = Path(tempfile.mkdtemp(prefix="llm-sshd-"))
    for name in ("host_key", "client_key"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / name)], check=True
        )
    (root / "authorized_keys").write_text((root / "client_key.pub").read_text())
    (root / "authorized_keys").chmod(0o600)
    config = root / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {root / 'host_key'}\n"
        f"AuthorizedKeysFile {root / 'authorized_keys'}\nPidFile {root / 'sshd.pid'}\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\nStrictModes no\nUsePAM no\n"
        f"SetEnv DOCKER_HOST={docker_host}\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)
    process = subprocess.Popen(
        ["/usr/sbin/sshd", "-D", "-e", "-f", str(config)], stderr=(root / "sshd.log").open("wb")
    )
    client_config = root / "ssh_config"
    client_config.write_text(
        f"Host 127.0.0.1\n  IdentityFile {root / 'client_key'}\n  IdentitiesOnly yes\n"
        f"  StrictHostKeyChecking no\n  UserKnownHostsFile {root / 'known_hosts'}\n  LogLevel ERROR\n"
    )
    bin_dir = root / "bin"
    bin_dir.mkdir()
    (bin_dir / "ssh").write_text(f'#!/bin/sh\nexec /usr/bin/ssh -F {client_config} "$@"\n')
    (bin_dir / "ssh").chmod(0o755)
    sshd = Sshd(port=port, root=root, process=process, bin_dir=bin_dir)
    _wait_port(port, process, root / "sshd.log")
    return sshd


def _wait_port(port: int, process: subprocess.Popen, log: Path) -> None:
    import socket

    for _ in range(50):
        if process.poll() is not None:
            break
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"sshd did not start: {log.read_text(errors='replace')}")


def stop_sshd(sshd: Sshd) -> None:
    sshd.process.terminate()
    sshd.process.wait(timeout=10)
    shutil.rmtree(sshd.root, ignore_errors=True)
