"""Deploy's preflight: can the target run the lock? NVIDIA runtime and driver, memory, free disk.

``gather`` asks the target (``docker info``; a probe container only where it can tell more: an
``nvidia-smi`` one only when the NVIDIA runtime exists, a ``df`` one for the data root's free
space), ``decide`` is the pure decision over those facts, unit-tested with faked answers.
A fact that cannot be learnt (no image on the target to probe with yet) is ``None``: not a
refusal, and the weights' own free-space check still runs before any weight is sent.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from packaging.version import InvalidVersion, Version

from llm_installer.deploy.errors import PreflightError

log = logging.getLogger(__name__)
DISK_MARGIN = 1.1  # unpacked layers and the volume's files take a little more than their bytes


@dataclass(frozen=True)
class Facts:
    runtimes: tuple[str, ...]
    mem_total: int  # bytes; 0 when the engine does not say
    driver: str | None = None  # the NVIDIA driver version nvidia-smi reports there
    free_disk: int | None = None  # bytes free in the target's Docker data root
    lacking: int = 0  # bytes of layers and weights the target does not hold yet


@dataclass(frozen=True)
class Problem:
    message: str
    hint: str
    forceable: bool = False


def driver_ok(found: str, minimum: str | None) -> bool:
    if not minimum:
        return True
    try:
        return Version(found) >= Version(minimum)
    except InvalidVersion:
        return True  # an unparsable answer is not a reason to refuse


def decide(facts: Facts, lock: Mapping[str, Any], wants_gpu: bool) -> list[Problem]:
    """Every reason the target cannot run the lock (empty: go ahead)."""
    gpu = lock.get("gpu") or {}
    minimum = gpu.get("min_nvidia_driver")
    problems = []
    if wants_gpu and "nvidia" not in facts.runtimes:
        problems.append(
            Problem(
                f"The model needs an NVIDIA GPU, and the target's Docker has no NVIDIA runtime "
                f"(driver >= {minimum or 'any'} needed)",
                "Install the NVIDIA Container Toolkit there, or deploy with --gpus none for CPU.",
            )
        )
    elif wants_gpu and facts.driver and not driver_ok(facts.driver, minimum):
        problems.append(
            Problem(
                f"The target's NVIDIA driver is {facts.driver}; this model's image needs >= {minimum}",
                "Update the driver on the target (or install the model with an older CUDA base "
                "image here, then deploy again).",
            )
        )
    needed = gpu.get("memory_estimate_bytes") or 0
    if not wants_gpu and needed and facts.mem_total and needed > facts.mem_total:
        problems.append(
            Problem(
                f"The target has {facts.mem_total / 1e9:.1f} GB of memory; the model needs about {needed / 1e9:.1f} GB",
                "Deploy to a bigger host, or add --force to try anyway.",
                forceable=True,
            )
        )
    if facts.free_disk is not None and facts.lacking * DISK_MARGIN > facts.free_disk:
        problems.append(
            Problem(
                f"The target has {facts.free_disk / 1e9:.2f} GB free in its Docker data root; "
                f"the layers and weights it lacks take {facts.lacking / 1e9:.2f} GB",
                "Free space there (`docker system df`, `docker image prune`), then deploy again.",
            )
        )
    return problems


def raise_problems(problems: list[Problem], force: bool) -> None:
    blocking = [p for p in problems if not (force and p.forceable)]
    if blocking:
        first = blocking[0]
        rest = "".join(f"\n  also: {p.message}" for p in blocking[1:])
        raise PreflightError(first.message + rest, hint=first.hint)


# ── asking the target ───────────────────────────────────────────────────────────────────


def gather(target, lock: Mapping[str, Any], wants_gpu: bool, lacking: int) -> Facts:
    info = target.info()
    runtimes = tuple(sorted(info.get("Runtimes") or {}))
    probe_driver_now = wants_gpu and "nvidia" in runtimes
    probe = probe_image(target, lock) if probe_driver_now or lacking else None
    driver = probe_driver(target, probe) if probe_driver_now and probe else None
    free = probe_free_disk(target, probe) if lacking and probe else None  # a redeploy: no probe
    return Facts(runtimes, info.get("MemTotal") or 0, driver, free, lacking)


def probe_image(target, lock: Mapping[str, Any]) -> str | None:
    """An image already on the target to run probes with: the lock's own, else any tagged one."""
    from llm_installer.deploy.images import has_image

    images = lock.get("images") or {}
    for role in ("model", "deps", "base"):
        image_id = (images.get(role) or {}).get("id")
        if image_id and has_image(target, image_id):
            return image_id
    tagged = [i for i in target.images.list() if i.tags]
    return tagged[0].id if tagged else None


def _run_probe(target, image: str, command: list[str], **kwargs) -> str | None:
    from docker.errors import DockerException

    try:
        output = target.containers.run(
            image, command, remove=True, network_disabled=True, entrypoint=[], **kwargs
        )
    except DockerException as exc:
        log.debug("Probe %s on the target failed: %s", command[0], exc)
        return None
    return output.decode(errors="replace").strip()


def probe_driver(target, image: str) -> str | None:
    """The driver version from nvidia-smi in a probe container (the runtime mounts it in)."""
    from docker.types import DeviceRequest

    answer = _run_probe(
        target,
        image,
        ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
        device_requests=[DeviceRequest(count=-1, capabilities=[["gpu"]])],
    )
    return answer.splitlines()[0].strip() if answer else None


def probe_free_disk(target, image: str) -> int | None:
    """Free bytes under the target's data root: ``df`` of a container's root (the same disk)."""
    return parse_df(_run_probe(target, image, ["df", "-Pk", "/"]) or "")


def parse_df(text: str) -> int | None:
    lines = text.strip().splitlines()
    try:
        return int(lines[-1].split()[3]) * 1024
    except (IndexError, ValueError):
        return None


def lacking_bytes(source_image, target, lock: Mapping[str, Any]) -> int:
    """Bytes of the image layers the target lacks plus the weights, when their volume is absent."""
    from docker.errors import NotFound

    from llm_installer.deploy.images import missing_layers
    from llm_installer.deploy.volumes import volume_name

    missing = missing_layers(source_image, target)
    sizes = layer_sizes(source_image)
    if not missing:
        layers = 0
    elif sizes:
        layers = sum(sizes.get(d, 0) for d in missing)
    else:  # history and layers do not line up: count the whole image, to be safe
        layers = source_image.attrs.get("Size", 0)
    try:
        target.volumes.get(volume_name(lock))
        weights = 0
    except NotFound:
        weights = sum(f["size"] for f in lock["files"].values())
    return layers + weights


def layer_sizes(image) -> dict[str, int]:
    """{diff ID: bytes} from the image's history, when its non-empty steps match its layers."""
    diffs = image.attrs["RootFS"]["Layers"]
    steps = [h for h in reversed(image.history()) if h.get("Size", 0) > 0]
    if len(steps) != len(diffs):
        return {}
    return {d: s["Size"] for d, s in zip(diffs, steps, strict=True)}
