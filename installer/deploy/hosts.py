"""Target Docker hosts: ``ssh://``, ``tcp://`` (TLS from DOCKER_CERT_PATH), ``unix://`` or a context."""

from __future__ import annotations

import os
import re

import docker
from docker.errors import DockerException

from llm_installer.deploy.errors import TargetUnavailableError

SCHEMES = ("ssh://", "tcp://", "unix://", "npipe://", "http://", "https://")
TIMEOUT_S = 600  # image loads of several GB go through one request


def connect_host(host: str | None, timeout: int = TIMEOUT_S) -> docker.DockerClient:
    """A client for HOST (a URL or a docker context name); None: DOCKER_HOST or the default."""
    try:
        if not host:
            client = docker.from_env(timeout=timeout)
        elif host.startswith(SCHEMES):
            client = _client_for_url(host, timeout)
        else:
            client = _client_for_context(host, timeout)
        client.ping()
    except (DockerException, OSError) as exc:
        raise TargetUnavailableError(
            f"No Docker engine answers at {host or 'DOCKER_HOST'}: {exc}"
        ) from exc
    return client


def _client_for_url(url: str, timeout: int) -> docker.DockerClient:
    if url.startswith("ssh://"):
        # The system ssh client: the user's ~/.ssh/config, agent and known_hosts apply.
        return docker.DockerClient(base_url=url, timeout=timeout, use_ssh_client=True)
    if url.startswith("tcp://") and os.environ.get("DOCKER_TLS_VERIFY"):
        env = {**os.environ, "DOCKER_HOST": url}
        return docker.from_env(timeout=timeout, environment=env)
    return docker.DockerClient(base_url=url, timeout=timeout)


def _client_for_context(name: str, timeout: int) -> docker.DockerClient:
    from docker.context import ContextAPI

    context = ContextAPI.get_context(name)
    if context is None:
        raise TargetUnavailableError(
            f"{name} is neither a Docker host URL nor a docker context",
            hint="Use ssh://user@server, tcp://host:2376, unix:///path/docker.sock, or a name "
            "from `docker context ls`.",
        )
    tls = context.TLSConfig if context.Host and context.Host.startswith("tcp://") else None
    use_ssh = bool(context.Host and context.Host.startswith("ssh://"))
    return docker.DockerClient(
        base_url=context.Host, tls=tls or False, timeout=timeout, use_ssh_client=use_ssh
    )


def host_key(host: str | None) -> str:
    """A file-name-safe key for a host, for the local deployment records."""
    name = host or os.environ.get("DOCKER_HOST") or "local"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "local"
