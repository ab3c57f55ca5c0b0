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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

log = logging.getLogger(__name__)

CONTAINER_DIR = "/etc/llm-installer"
CA_CANDIDATES = ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE")
DEFAULT_CA = Path("/etc/ssl/certs/ca-certificates.crt")
CARRIED_KEYS = (
    "index-url",
    "extra-index-url",
    "find-links",
    "trusted-host",
    "timeout",
    "default-timeout",
    "retries",
)
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
    extras = tuple(
        u
        for u in (_carryable_url(x, notes) for x in values.get("extra-index-url", "").split())
        if u
    )
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
            [sys.executable, "-m", "pip", "config", "list"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
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
        notes.append(
            f"credentials were stripped from index {parts.hostname}: images must not hold secrets"
        )
        netloc = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def _ca_bundle(configured: str | None) -> Path | None:
    candidates = [configured, *(os.environ.get(name) for name in CA_CANDIDATES), str(DEFAULT_CA)]
    return next((Path(c) for c in candidates if c and Path(c).is_file()), None)


def proxy_build_args() -> dict[str, str]:
    """Proxy variables as Docker's predefined build args (not recorded in the image history)."""
    return {name: os.environ[name] for name in PROXY_ARGS if os.environ.get(name)}


def write_buildenv(
    settings: PipSettings,
    context: Path,
    *,
    wheels: tuple[str, ...] = (),
    wheel_files: tuple[Path, ...] = (),
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
            found += [
                f for f in sorted(folder.iterdir()) if _normalise(f.name.split("-")[0]) in wanted
            ]
    return found


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


# ── packages that compile against CUDA (the cuda-devel base) ─────────────────────────────────
COMPILED_PACKAGES = ("causal-conv1d", "flash-attn", "mamba-ssm")  # causal-conv1d before mamba-ssm
BUILD_TOOLS = ("ninja", "packaging", "psutil", "setuptools", "wheel", "einops")
GIB_PER_COMPILE_JOB = 8  # nvcc on flash-attn's kernels peaks at several GB per job


@dataclass(frozen=True)
class CompileSettings:
    """How the dependency layer compiles CUDA extensions: against the image's torch
    (``--no-build-isolation``), for the host's GPU architectures only, in ``max_jobs`` jobs."""

    packages: tuple[str, ...]
    arch_list: str  # TORCH_CUDA_ARCH_LIST, e.g. "8.6;9.0+PTX"
    max_jobs: int
    cuda: str

    @property
    def tools(self) -> tuple[str, ...]:
        return BUILD_TOOLS


def compile_settings(
    packages: tuple[str, ...], hardware: dict, cuda: str, environ: Mapping[str, str] | None = None
) -> CompileSettings | None:
    """The compile step for ``packages`` on a host with ``hardware`` (a check profile's), or None
    when none of them compiles. TORCH_CUDA_ARCH_LIST and LLM_INSTALLER_MAX_JOBS override."""
    environ = os.environ if environ is None else environ
    compiled = tuple(p for p in COMPILED_PACKAGES if p in packages)
    if not compiled:
        return None
    return CompileSettings(
        packages=compiled,
        arch_list=environ.get("TORCH_CUDA_ARCH_LIST") or arch_list(hardware),
        max_jobs=int(environ.get("LLM_INSTALLER_MAX_JOBS") or max_jobs(hardware)),
        cuda=cuda,
    )


def arch_list(hardware: dict) -> str:
    """The host GPUs' compute capabilities, newest with +PTX (so a newer GPU can still JIT)."""
    found = sorted(
        {
            tuple(g["compute_capability"])
            for g in hardware.get("gpus") or ()
            if g.get("compute_capability")
        }
    )
    if not found:
        return "8.0;8.6;9.0+PTX"  # no GPU seen: Ampere and Hopper, PTX for newer
    names = [f"{major}.{minor}" for major, minor in found]
    return ";".join(names[:-1] + [names[-1] + "+PTX"])


def max_jobs(hardware: dict) -> int:
    """Parallel compile jobs: no more than the cores, nor than available RAM / 8 GB each."""
    cores = int(hardware.get("cpu_cores") or os.cpu_count() or 1)
    by_memory = int(hardware.get("ram_available") or 0) // (GIB_PER_COMPILE_JOB * 1024**3)
    return max(1, min(cores, by_memory))
