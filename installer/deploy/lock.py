"""``llm.lock.json``: what pins an installed model byte for byte, and ``verify`` against it.

The lock is deterministic (sorted keys, one timestamp: ``locked_at``, left out of its hash) so
two locks of the same install are identical and a diff shows what changed.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llm_installer.deploy.errors import LockMissingError, VerifyFailedError
from llm_runtime.model_info import ModelInfo

LOCK_NAME = "llm.lock.json"
LOCK_VERSION = 1
HASH_CACHE = ".llm-hash-cache.json"  # size + mtime → sha256, so deploys need not re-read GBs
CHUNK = 1024 * 1024
CONTAINER_PORT = 8000


def weight_files(folder: Path) -> list[Path]:
    """Every file the model is made of, sorted; download metadata (.cache/) is not the model."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and not any(part.startswith(".cache") for part in p.relative_to(folder).parts)
    )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def hash_folder(folder: Path, cache_file: Path | None = None) -> dict[str, dict[str, Any]]:
    """{relative path: {sha256, size}}; with ``cache_file`` unchanged files are not re-read."""
    cache = _read_json(cache_file) if cache_file else {}
    files, fresh = {}, {}
    for path in weight_files(folder):
        name = path.relative_to(folder).as_posix()
        stat = path.stat()
        key = [stat.st_size, stat.st_mtime_ns]
        known = cache.get(name)
        sha = known[2] if known and known[:2] == key else sha256_file(path)
        files[name] = {"sha256": sha, "size": stat.st_size}
        fresh[name] = [*key, sha]
    if cache_file:
        _write_atomic(cache_file, json.dumps(fresh, sort_keys=True))
    return files


def weights_digest(files: Mapping[str, Mapping[str, Any]]) -> str:
    """One hash naming the whole weight set (the content-addressed volume's name on a target)."""
    lines = "".join(f"{name}\0{f['sha256']}\0{f['size']}\n" for name, f in sorted(files.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


UNHASHED = ("locked_at", "registry")  # when it was locked and where it was pushed: not what it is


def lock_hash(lock: Mapping[str, Any]) -> str:
    body = {k: v for k, v in lock.items() if k not in UNHASHED}
    return hashlib.sha256(canonical(body).encode()).hexdigest()


def canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def _read_json(path: Path | None) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text()) if path else {}
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        temporary.write_text(text)
        os.replace(temporary, path)
    except OSError:  # a read-only model folder: the cache is only an optimisation
        temporary.unlink(missing_ok=True)


def read_lock(model_dir: Path) -> dict[str, Any]:
    path = Path(model_dir) / LOCK_NAME
    try:
        lock = json.loads(path.read_text())
    except FileNotFoundError:
        raise LockMissingError(f"{path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise LockMissingError(f"{path} is not a readable lock file: {exc}") from None
    if not isinstance(lock, dict) or lock.get("lock_version") != LOCK_VERSION:
        raise LockMissingError(f"{path} is not a version {LOCK_VERSION} lock file")
    return lock


def write_lock(model_dir: Path, lock: Mapping[str, Any]) -> Path:
    path = Path(model_dir) / LOCK_NAME
    _write_atomic(path, canonical(dict(lock)))
    if not path.is_file():
        raise OSError(f"cannot write {path}")
    return path


def compare_files(
    expected: Mapping[str, Mapping[str, Any]], actual: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """One line per difference: changed, missing or unexpected files, by name."""
    problems = []
    for name in sorted(set(expected) | set(actual)):
        want, have = expected.get(name), actual.get(name)
        if have is None:
            problems.append(f"{name}: missing")
        elif want is None:
            problems.append(f"{name}: not in the lock")
        elif want["size"] != have["size"]:
            problems.append(f"{name}: size {have['size']}, the lock says {want['size']}")
        elif want["sha256"] != have["sha256"]:
            problems.append(
                f"{name}: sha256 {have['sha256'][:12]}…, the lock says {want['sha256'][:12]}…"
            )
    return problems


def raise_if_different(where: str, problems: list[str], error=VerifyFailedError) -> None:
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  … and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise error(f"{where} do not match llm.lock.json:\n  {shown}{more}")


def verify_local(model_dir: Path, weights: Path, *, use_cache: bool = False) -> dict[str, Any]:
    """Re-hash the weights against the lock; a difference raises with the files named."""
    lock = read_lock(model_dir)
    cache = Path(model_dir) / HASH_CACHE if use_cache else None
    actual = hash_folder(weights, cache)
    raise_if_different(f"The weights in {weights}", compare_files(lock["files"], actual))
    return lock


# ── building a lock from an install ─────────────────────────────────────────────────────


def build_lock(
    model_info: ModelInfo,
    weights: Path,
    images: Mapping[str, Any],
    model_dir: Path,
    locked_at: str,
) -> dict[str, Any]:
    """The lock of one install: model, files, images, versions, GPU need, serve arguments."""
    files = hash_folder(weights, Path(model_dir) / HASH_CACHE)
    image = model_info.image
    return {
        "lock_version": LOCK_VERSION,
        "locked_at": locked_at,
        "model": {
            "id": model_info.model_id,
            "source": model_info.source,
            "revision": model_info.revision,
            "commit": model_info.sha,
            "local_path": model_info.local_path,
            "family": model_info.family,
            "folder": Path(model_dir).name,
        },
        "files": files,
        "weights_digest": weights_digest(files),
        "images": dict(images),
        "versions": {
            "engine": model_info.engine or "transformers",
            "installer": model_info.installer_version,
            "runtime": model_info.runtime_version,
            "image_flavour": image.get("flavour"),
        },
        "pip_freeze": sorted(model_info.pip_freeze),
        "gpu": gpu_need(model_info),
        "serve": serve_section(model_info),
    }


def gpu_need(model_info: ModelInfo) -> dict[str, Any]:
    from llm_installer.build.base_images import flavours

    flavour = flavours().get(model_info.image.get("flavour") or "")
    device = model_info.device or "cpu"
    return {
        "device": device,
        "required": model_info.requires_gpu,
        "min_nvidia_driver": flavour.min_driver if flavour and device == "cuda" else None,
        "memory_estimate_bytes": memory_estimate(model_info, device),
    }


def memory_estimate(model_info: ModelInfo, device: str) -> int | None:
    """The smallest inference estimate on the install's device (the dtype it will load in)."""
    rows = model_info.memory.get("inference") or []
    totals = [r.get(f"total_{device}_bytes") for r in rows if r.get(f"total_{device}_bytes")]
    return min(totals) if totals else None


def serve_section(model_info: ModelInfo) -> dict[str, Any]:
    """The container's command, as start.sh runs it (weights at /model, logs at /logs)."""
    from llm_installer.run.start_plan import (
        RUNTIME,
        StartOptions,
        serve_args,
        with_installed_quantization,
    )

    device = model_info.device or "cpu"
    options, _ = with_installed_quantization(StartOptions(), model_info, device)
    args = serve_args(
        model="/model", host="0.0.0.0", port=CONTAINER_PORT, logs="/logs", lora=None,
        device=device, options=options,
    )  # fmt: skip
    return {"command": [*RUNTIME, *args], "container_port": CONTAINER_PORT, "env": {"HOME": "/tmp"}}


def image_facts(client, model_info: ModelInfo) -> dict[str, Any]:
    """IDs (and registry digests, where an image has them) of the base, deps and model images."""
    from docker.errors import ImageNotFound

    image = model_info.image
    facts = {}
    for role, key in (("base", "base_image"), ("deps", "deps_image"), ("model", "tag")):
        tag = image.get(key)
        try:
            found = client.images.get(tag) if tag else None
        except ImageNotFound:
            found = None
        facts[role] = {
            "tag": tag,
            "id": found.id if found else None,
            "digests": sorted(found.attrs.get("RepoDigests") or []) if found else [],
            "layers": list(found.attrs["RootFS"]["Layers"]) if found and role == "model" else None,
        }
        if facts[role]["layers"] is None:
            facts[role].pop("layers")
    return facts


# ── commands ────────────────────────────────────────────────────────────────────────────


def lock_install(model_dir: Path, model_info: ModelInfo, client=None) -> Path:
    """Write llm.lock.json for an install (install's last step, and ``llm-installer lock``)."""
    from datetime import datetime, timezone

    from llm_installer.docker_engine import connect
    from llm_installer.run.start_plan import model_paths

    weights = model_paths(Path(model_dir), model_info).weights
    images = image_facts(client or connect(timeout=120), model_info)
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return write_lock(model_dir, build_lock(model_info, weights, images, Path(model_dir), now))


def installed(model: str, settings) -> tuple[Path, ModelInfo, Path]:
    """(model folder, model_info, weights folder) of an installed MODEL, as ``start`` finds it."""
    from llm_installer.run.installed import require_installed, require_weights, resolve_model_dir
    from llm_installer.run.start_plan import model_paths

    model_dir = resolve_model_dir(model, settings.models_path)
    info = require_installed(model_dir)
    weights = model_paths(model_dir, info).weights
    require_weights(weights)
    return model_dir, info, weights
