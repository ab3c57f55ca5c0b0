"""Moving an image to another engine, sending only the layers it lacks (docker save | load).

``docker save`` writes every layer; ``docker load`` skips a layer whose chain the target already
holds without reading its file. So the save stream is passed through a filter that drops each
``layer.tar`` the target has (recognised by its sha256, which is the layer's diff ID), and the
rest is streamed into the target's ``/images/load`` as it is read: nothing lands on disk here.
"""

from __future__ import annotations

import hashlib
import tarfile
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from docker.errors import ImageNotFound

from llm_installer.deploy.streams import Pipe, Reader

CHUNK = 1024 * 1024
SPOOL_IN_MEMORY = 64 * 1024 * 1024


@dataclass
class ImageTransfer:
    image: str
    bytes_sent: int = 0
    layers_sent: int = 0
    layers_skipped: int = 0
    already_there: bool = False


def chain_ids(diff_ids: Iterable[str]) -> list[str]:
    """The chain ID of each layer prefix (how an engine names a layer stack)."""
    chains: list[str] = []
    for diff in diff_ids:
        chain = (
            diff
            if not chains
            else "sha256:" + hashlib.sha256(f"{chains[-1]} {diff}".encode()).hexdigest()
        )
        chains.append(chain)
    return chains


def engine_chains(client) -> set[str]:
    chains: set[str] = set()
    for image in client.images.list(all=True):
        chains.update(chain_ids(image.attrs.get("RootFS", {}).get("Layers") or []))
    return chains


def has_image(client, image_id: str) -> bool:
    try:
        client.images.get(image_id)
    except ImageNotFound:
        return False
    return True


def missing_layers(source_image, target) -> set[str]:
    """Diff IDs of the image's layers whose chain the target lacks."""
    diffs = source_image.attrs["RootFS"]["Layers"]
    have = engine_chains(target)
    return {d for d, c in zip(diffs, chain_ids(diffs), strict=True) if c not in have}


def send_image(source, target, tag: str, image_id: str) -> ImageTransfer:
    """Make ``image_id`` (tagged ``tag``) exist on ``target``, sending only missing layers."""
    result = ImageTransfer(image=tag)
    if has_image(target, image_id):
        result.already_there = True
        _retag(target, image_id, tag)
        return result
    image = source.images.get(image_id)
    needed = missing_layers(image, target)
    name = tag if tag in (image.tags or []) else image_id
    stream = Pipe()
    worker = threading.Thread(
        target=_filter_save,
        args=(source.api.get_image(name, chunk_size=CHUNK), needed, stream, result),
        daemon=True,
    )
    worker.start()
    try:
        _consume(target.api.load_image(stream.chunks(result)))
    finally:
        stream.close()
        worker.join(timeout=30)
    if stream.error:
        raise stream.error
    _retag(target, image_id, tag)
    return result


def _retag(client, image_id: str, tag: str) -> None:
    if tag and ":" in tag:
        repository, _, version = tag.rpartition(":")
        client.images.get(image_id).tag(repository, version)


def _consume(replies) -> None:
    """Read the load's progress; an error in it raises."""
    from docker.errors import APIError

    for reply in replies or ():
        if isinstance(reply, dict) and reply.get("error"):
            raise APIError(reply["error"])


def _filter_save(
    chunks: Iterator[bytes], needed: set[str], out: Pipe, result: ImageTransfer
) -> None:
    try:
        with (
            tarfile.open(fileobj=Reader(chunks), mode="r|") as source,  # type: ignore[call-overload]  # stream mode reads/writes only; typeshed wants seek/tell
            tarfile.open(fileobj=out, mode="w|") as sink,  # type: ignore[call-overload]
        ):
            for member in source:
                if member.isfile() and member.name.endswith("layer.tar"):
                    _copy_layer(source, sink, member, needed, result)
                else:
                    sink.addfile(member, source.extractfile(member) if member.isfile() else None)
    except BaseException as exc:  # reported by send_image once the upload ends
        out.error = exc
    finally:
        out.finish()


def _copy_layer(source, sink, member, needed: set[str], result: ImageTransfer) -> None:
    """Hash the layer into a spool file; pass it on only when the target lacks it."""
    digest = hashlib.sha256()
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
        handle = source.extractfile(member)
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            spool.write(chunk)
        if "sha256:" + digest.hexdigest() not in needed:
            result.layers_skipped += 1
            return
        spool.seek(0)
        sink.addfile(member, spool)
        result.layers_sent += 1
