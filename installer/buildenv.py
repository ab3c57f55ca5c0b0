"""What the host's pip needs to reach its packages, carried into a Docker build context.

Users behind proxies or private indexes (and this project's CI) only reach PyPI from inside a
build when the host's CA bundle and pip settings come along: index URLs, trusted hosts, timeouts,
and find-links folders (copied into the context). Secrets never do: credentials in index URLs are
stripped with a warning, and HTTP(S)_PROXY travel as Docker's predefined build args, which the
image history does not record. The HF token is never part of any build.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

log = logging.getLogger(__name__)

CONTAINER_DIR = "/etc/llm-installer"
CA_CANDIDATES = ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE")
DEFAULT_CA = Path("/etc/ssl/certs/ca-certificates.crt")
CARRIED_KEYS = ("index-url", "extra-index-url", "find-links", "trusted-host", "timeout", "default-timeout", "retries")
PROXY_ARGS = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")
CONFIG_LINE = re.compile(r"^(?:[\w:-]*)\.([\w-]+)='(.*)'$")


@dataclass(frozen=True)
class PipSettings:
    """The host's effective pip settings that matter inside a build."""

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    trusted_hosts: tuple[str, ...] = ()
    timeout: str | None = None
    retries: str | None = None
    ca_bundle: Path | None = None
    notes: tuple[str, ...] = field(default=(), compare=False)


def host_pip_settings() -> PipSettings:
    """Read ``pip config list`` (files and PIP_* variables) and find the CA bundle."""
    values = _pip_config_values()
    notes: list[str] = []
    index = _carryable_url(values.get("index-url", ""), notes)
    extras = tuple(u for u in (_carryable_url(x, notes) for x in values.get("extra-index-url", "").split()) if u)
    return PipSettings(
        index_url=index,
        extra_index_urls=extras,
        find_links=tuple(values.get("find-links", "").split()),
        trusted_hosts=tuple(values.get("trusted-host", "").split()),
        timeout=values.get("timeout") or values.get("default-timeout"),
        retries=values.get("retries"),
        ca_bundle=_ca_bundle(values.get("cert")),
        notes=tuple(notes),
    )


def _pip_config_values() -> dict[str, str]:
    """Effective pip settings; later sources (env) win, as in pip itself."""
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return {}
    values: dict[str, str] = {}
    for line in result.stdout.splitlines():
        match = CONFIG_LINE.match(line.strip())
        if match and match.group(1) in (*CARRIED_KEYS, "cert"):
            values[match.group(1)] = match.group(2)
    return values


def _carryable_url(url: str, notes: list[str]) -> str | None:
    """An index URL usable inside the build: http(s) only, credentials stripped."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        notes.append(f"index {url} is local to this host and is not carried into builds")
        return None
    if parts.username or parts.password:
        notes.append(f"credentials were stripped from index {parts.hostname}: images must not hold secrets")
        netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def _ca_bundle(configured: str | None) -> Path | None:
    candidates = [configured, *(os.environ.get(name) for name in CA_CANDIDATES), str(DEFAULT_CA)]
    return next((Path(c) for c in candidates if c and Path(c).is_file()), None)


def proxy_build_args() -> dict[str, str]:
    """Proxy variables as Docker's predefined build args (not recorded in the image history)."""
    return {name: os.environ[name] for name in PROXY_ARGS if os.environ.get(name)}


def write_buildenv(
    settings: PipSettings, context: Path, *, wheels: tuple[str, ...] = (), wheel_files: tuple[Path, ...] = ()
) -> Path:
    """Write ``buildenv/`` into a build context: pip.conf, the CA bundle, and matching wheels.

    ``wheels`` names the packages whose files are copied from find-links folders; ``wheel_files``
    are exact files (the base image's torch build); every other local find-links file stays on
    the host.
    """
    target = context / "buildenv"
    (target / "wheels").mkdir(parents=True, exist_ok=True)
    lines = ["[global]", f"find-links = {CONTAINER_DIR}/wheels"]
    if settings.index_url:
        lines.append(f"index-url = {settings.index_url}")
    if settings.extra_index_urls:
        lines.append("extra-index-url = " + " ".join(settings.extra_index_urls))
    if settings.trusted_hosts:
        lines.append("trusted-host = " + " ".join(settings.trusted_hosts))
    if settings.timeout:
        lines.append(f"timeout = {settings.timeout}")
    if settings.retries:
        lines.append(f"retries = {settings.retries}")
    if settings.ca_bundle:
        shutil.copyfile(settings.ca_bundle, target / "ca-certificates.crt")
        lines.append(f"cert = {CONTAINER_DIR}/ca-certificates.crt")
    (target / "pip.conf").write_text("\n".join(lines) + "\n")
    for wheel in (*local_wheels(settings, wheels), *wheel_files):
        _link_or_copy(wheel, target / "wheels" / wheel.name)
    return target


def local_wheels(settings: PipSettings, packages: tuple[str, ...]) -> list[Path]:
    """Files in local find-links folders whose distribution name is one of ``packages``."""
    wanted = {_normalise(p) for p in packages}
    found = []
    for link in settings.find_links:
        folder = Path(link.removeprefix("file://"))
        if folder.is_dir():
            found += [f for f in sorted(folder.iterdir()) if _normalise(f.name.split("-")[0]) in wanted]
    return found


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
