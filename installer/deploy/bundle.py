"""``export`` / ``import``: one file carrying a model to an air-gapped host, hash-checked on arrival.

A bundle is a tar (``--compress``: zstd) whose first member, ``bundle.json``, lists every other
member with its sha256 and size: ``llm.lock.json``, ``model_info.json``, ``Dockerfile``, the
weights under ``model/`` and ``image.tar`` (``docker save`` of the model's image). Import hashes
each member as it is read, refuses the bundle at the first difference or at a truncated end
(naming the file), loads the image, and only then puts the model folder in place.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, BinaryIO

from llm_installer.console import Output
from llm_installer.deploy.errors import BundleError, VerifyFailedError
from llm_installer.deploy.lock import (
    LOCK_NAME,
    canonical,
    lock_hash,
    read_lock,
    sha256_file,
    verify_local,
)
from llm_installer.settings import PROJECT_DIR, Settings
from llm_runtime.model_info import ModelInfoError, read_model_info, write_model_info

FORMAT = 1
MANIFEST = "bundle.json"
IMAGE_MEMBER = "image.tar"
FOLDER_FILES = ("model_info.json", "Dockerfile")
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
CHUNK = 1024 * 1024


# ── export ──────────────────────────────────────────────────────────────────────────────


def export_model(
    model: str, target: Path, settings: Settings, output: Output, *, compress: bool = False
) -> dict[str, Any]:
    """Write MODEL's bundle to TARGET; returns its manifest."""
    from llm_installer.deploy.lock import installed

    model_dir, info, weights = installed(model, settings)
    with output.out.status("Checking the weights against llm.lock.json…"):
        lock = verify_local(model_dir, weights, use_cache=True)
    target = Path(target).expanduser().resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".llm-export-") as scratch:
        image = Path(scratch) / IMAGE_MEMBER
        with output.out.status(f"Saving the image {lock['images']['model']['tag']}…"):
            _save_image(lock, image)
        sources = _sources(model_dir, weights, lock, image)
        manifest = _manifest(lock, model_dir.name, sources)
        partial = target.with_name(f".{target.name}.partial")
        with output.out.status(f"Writing {target}…"):
            _write_bundle(partial, manifest, sources, compress)
        os.replace(partial, target)
    return manifest


def _save_image(lock: Mapping[str, Any], path: Path) -> None:
    from llm_installer.docker_engine import connect

    image = lock["images"]["model"]
    client = connect(timeout=600)
    found = client.images.get(image["id"])
    name = image["tag"] if image["tag"] in (found.tags or []) else str(found.id)
    with path.open("wb") as handle:
        for chunk in client.api.get_image(name, chunk_size=CHUNK):
            handle.write(chunk)


def _sources(
    model_dir: Path, weights: Path, lock: Mapping[str, Any], image: Path
) -> dict[str, Path]:
    """{member name: file}: the lock first, then the folder's files, the weights, the image."""
    sources = {LOCK_NAME: model_dir / LOCK_NAME}
    sources.update(
        {name: model_dir / name for name in FOLDER_FILES if (model_dir / name).is_file()}
    )
    sources.update({f"model/{name}": weights / name for name in sorted(lock["files"])})
    sources[IMAGE_MEMBER] = image
    return sources


def _manifest(lock: Mapping[str, Any], folder: str, sources: Mapping[str, Path]) -> dict[str, Any]:
    members = {}
    for name, path in sources.items():
        known = (
            lock["files"].get(name.removeprefix("model/")) if name.startswith("model/") else None
        )
        members[name] = known or {"sha256": sha256_file(path), "size": path.stat().st_size}
    return {
        "format": FORMAT, "folder": folder, "model_id": lock["model"]["id"],
        "lock_hash": lock_hash(lock), "image": lock["images"]["model"], "members": members,
    }  # fmt: skip


def _write_bundle(
    path: Path, manifest: Mapping[str, Any], sources: Mapping[str, Path], compress: bool
) -> None:
    with (
        path.open("wb") as raw,
        _compressed(raw, compress) as stream,
        tarfile.open(fileobj=stream, mode="w|") as tar,
    ):
        data = canonical(dict(manifest)).encode()
        tar.addfile(_info(MANIFEST, len(data)), io.BytesIO(data))
        for name, source in sources.items():
            with source.open("rb") as handle:
                tar.addfile(_info(name, source.stat().st_size), handle)


@contextmanager
def _compressed(raw: BinaryIO, compress: bool) -> Iterator[BinaryIO]:
    if not compress:
        yield raw
        return
    import zstandard

    with zstandard.ZstdCompressor(level=3, threads=-1).stream_writer(raw, closefd=False) as writer:
        yield writer


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode = size, 0o644
    return info


# ── import ──────────────────────────────────────────────────────────────────────────────


def import_bundle(
    bundle: Path, settings: Settings, output: Output, *, host: str | None = None, yes: bool = False
) -> Path:
    """Check every member of BUNDLE, load its image into HOST's engine, make the model folder."""
    from llm_installer.deploy.hosts import connect_host

    bundle = Path(bundle).expanduser()
    if not bundle.is_file():
        raise BundleError(
            f"{bundle} is not a file",
            hint="Give the path of a bundle made by `llm-installer export`.",
        )
    client = connect_host(host)
    settings.models_path.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=settings.models_path, prefix=".import-") as scratch:
        with output.out.status(f"Reading and checking {bundle.name}…"):
            manifest = _extract(bundle, Path(scratch))
        folder = settings.models_path / _safe_folder(manifest["folder"])
        _refuse_existing(folder, yes)
        with output.out.status("Loading the image…"):
            _load_image(client, Path(scratch) / IMAGE_MEMBER, manifest)
        _place(Path(scratch), folder)
    _finish_folder(folder)
    return folder


def _safe_folder(name: str) -> str:
    if not name or "/" in name or name in (".", ".."):
        raise BundleError(f"The bundle names an invalid model folder: {name!r}")
    return name


def _extract(bundle: Path, scratch: Path) -> dict[str, Any]:
    member = MANIFEST
    try:
        with (
            bundle.open("rb") as raw,
            _decompressed(raw) as stream,
            tarfile.open(fileobj=stream, mode="r|") as tar,
        ):
            manifest, seen = None, set[str]()
            for info in tar:
                member = info.name
                manifest = _read_member(tar, info, manifest, scratch, seen)
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        if isinstance(exc, BundleError):
            raise
        raise BundleError(
            f"{bundle} is truncated or corrupted (while reading {member}): {exc}"
        ) from None
    missing = sorted(set((manifest or {}).get("members", {})) - seen)
    if manifest is None or missing:
        raise BundleError(f"{bundle} is incomplete: {', '.join(missing[:5]) or MANIFEST} missing")
    return manifest


def _read_member(
    tar: tarfile.TarFile, info: tarfile.TarInfo, manifest, scratch: Path, seen: set[str]
):
    if manifest is None:
        if info.name != MANIFEST:
            raise BundleError(
                f"The first member is {info.name}, not {MANIFEST}: this is not an llm-installer bundle"
            )
        manifest = json.loads(_member(tar, info).read())
        if manifest.get("format") != FORMAT:
            raise BundleError(
                f"Bundle format {manifest.get('format')} is not {FORMAT}: use the llm-installer that made it"
            )
        return manifest
    expected = manifest["members"].get(info.name)
    if expected is None or not info.isfile():
        raise BundleError(f"The bundle holds {info.name}, which its bundle.json does not list")
    path = scratch / info.name
    if scratch.resolve() not in path.resolve().parents:
        raise BundleError(f"The bundle member {info.name} points outside the model folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    actual = _copy_hashing(_member(tar, info), path)
    if actual != (expected["sha256"], expected["size"]):
        raise BundleError(
            f"{info.name} in the bundle does not match its sha256 in bundle.json: the file is damaged"
        )
    seen.add(info.name)
    return manifest


def _member(tar: tarfile.TarFile, info: tarfile.TarInfo) -> IO[bytes]:
    """A regular file's contents; a link or folder where a file belongs is not a bundle of ours."""
    handle = tar.extractfile(info)
    if handle is None:
        raise BundleError(f"The bundle member {info.name} is not a regular file")
    return handle


def _copy_hashing(source: IO[bytes], path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("wb") as out:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    return digest.hexdigest(), size


@contextmanager
def _decompressed(raw: BinaryIO) -> Iterator[BinaryIO]:
    head = raw.read(4)
    raw.seek(0)
    if head != ZSTD_MAGIC:
        yield raw
        return
    import zstandard

    with zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True) as reader:
        yield reader


def _refuse_existing(folder: Path, yes: bool) -> None:
    if folder.exists() and not yes:
        raise BundleError(
            f"{folder} already exists",
            hint="Add --yes to replace it (its lora/, checkpoints/ and logs/ are kept).",
        )


def _load_image(client, image: Path, manifest: Mapping[str, Any]) -> None:
    from llm_installer.deploy.images import _consume

    with image.open("rb") as handle:
        _consume(client.api.load_image(handle))
    image.unlink()
    wanted = manifest["image"]
    found = client.images.get(wanted["id"])
    if wanted.get("tag") and wanted["tag"] not in (found.tags or []):
        repository, _, tag = wanted["tag"].rpartition(":")
        found.tag(repository, tag)


def _place(scratch: Path, folder: Path) -> None:
    """Swap the checked files in; the user's lora/, checkpoints/ and logs/ stay."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".install_complete").unlink(missing_ok=True)
    shutil.rmtree(folder / "model", ignore_errors=True)
    for item in scratch.iterdir():
        os.replace(item, folder / item.name)
    for name in ("lora", "checkpoints", "logs"):
        (folder / name).mkdir(exist_ok=True)


def _finish_folder(folder: Path) -> None:
    """Point model_info at this host, write start.sh & co., check the lock, mark complete."""
    from llm_installer.run.scripts import write_run_scripts

    try:
        record = read_model_info(folder / "model_info.json")
    except ModelInfoError as exc:
        raise BundleError(f"The bundle's {exc}") from None
    record = record.replace(
        weights_path=str((folder / "model").resolve()), model_dir=str(folder.resolve()),
        installer_dir=str(PROJECT_DIR), installer_python=sys.executable,
    )  # fmt: skip
    write_model_info(folder / "model_info.json", record)
    write_run_scripts(folder, record)
    read_lock(folder)
    try:
        verify_local(folder, folder / "model")
    except (
        VerifyFailedError
    ) as exc:  # cannot happen after the member hashes, but never mark it complete
        raise BundleError(exc.message) from None
    (folder / ".install_complete").write_text("imported\n")
