"""A model folder as a CNCF ModelPack OCI artifact: one raw layer per file, digests = the lock's.

Media types from github.com/modelpack/model-spec (``specs-go/v1/mediatype.go``): the manifest's
``artifactType`` and config, ``weight`` layers for tensors, ``weight.config`` for the files that
describe them (config.json, tokenizer…), ``doc`` for READMEs and licences. Each layer is one raw
file named by ``org.cncf.model.filepath``, so its digest is exactly the sha256 in llm.lock.json.
The model folder's own files (lock, model_info.json, Dockerfile) ride along in our media types.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
ARTIFACT_TYPE = "application/vnd.cncf.model.manifest.v1+json"
CONFIG_MEDIA_TYPE = "application/vnd.cncf.model.config.v1+json"
WEIGHT_RAW = "application/vnd.cncf.model.weight.v1.raw"
WEIGHT_CONFIG_RAW = "application/vnd.cncf.model.weight.config.v1.raw"
DOC_RAW = "application/vnd.cncf.model.doc.v1.raw"
FOLDER_MEDIA_TYPE = "application/vnd.llm-installer.folder-file.v1"  # lock, model_info, Dockerfile
FILEPATH = "org.cncf.model.filepath"
TITLE = "org.opencontainers.image.title"
IMAGE_ANNOTATION = "org.llm-installer.image"
LOCK_HASH_ANNOTATION = "org.llm-installer.lock-hash"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth", ".ckpt", ".onnx", ".h5")
DOC_NAMES = ("readme", "license", "licence", "notice", "model_card")
MODEL_PREFIX = "model/"


def layer_media_type(name: str) -> str:
    """The ModelPack media type of one model file, by its name."""
    path = PurePosixPath(name.lower())
    if path.suffix in WEIGHT_SUFFIXES:
        return WEIGHT_RAW
    if path.stem in DOC_NAMES or path.suffix in (".md",):
        return DOC_RAW
    return WEIGHT_CONFIG_RAW


def descriptor(media_type: str, sha256: str, size: int, path: str | None = None) -> dict:
    found = {"mediaType": media_type, "digest": f"sha256:{sha256}", "size": size}
    if path is not None:
        found["annotations"] = {FILEPATH: path, TITLE: path}
    return found


def model_config(lock: Mapping[str, Any], files: Mapping[str, Mapping[str, Any]]) -> bytes:
    """The ModelPack config blob: descriptor, format and the files' diff IDs, in layer order."""
    model = lock.get("model") or {}
    weights = [n for n in sorted(files) if layer_media_type(n) == WEIGHT_RAW]
    config = {
        "descriptor": {
            "name": str(model.get("id") or model.get("folder")),
            "family": model.get("family") or "",
            "revision": model.get("commit") or "",
        },
        "config": {"format": _format(weights)},
        "modelfs": {
            "type": "layers",
            "diffIds": [f"sha256:{files[n]['sha256']}" for n in sorted(files)],
        },
    }
    return canonical_bytes(config)


def _format(weights: list[str]) -> str:
    suffixes = {PurePosixPath(n).suffix.lstrip(".") for n in weights}
    return suffixes.pop() if len(suffixes) == 1 else ""


def build_manifest(
    config: bytes,
    files: Mapping[str, Mapping[str, Any]],
    folder_files: Mapping[str, bytes],
    annotations: Mapping[str, str],
) -> dict[str, Any]:
    """The artifact manifest: weights' layers by the lock's hashes, then the folder's files."""
    layers = [
        descriptor(layer_media_type(n), f["sha256"], f["size"], n) for n, f in sorted(files.items())
    ]
    layers += [
        descriptor(FOLDER_MEDIA_TYPE, sha256_bytes(data), len(data), name)
        for name, data in sorted(folder_files.items())
    ]
    return {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "artifactType": ARTIFACT_TYPE,
        "config": descriptor(CONFIG_MEDIA_TYPE, sha256_bytes(config), len(config)),
        "layers": layers,
        "annotations": dict(sorted(annotations.items())),
    }


def layer_path(layer: Mapping[str, Any]) -> str:
    """Where a layer goes in the model folder: ``model/<file>`` for the model's own files."""
    path = (layer.get("annotations") or {}).get(FILEPATH) or ""
    parts = PurePosixPath(path).parts
    if not path or path.startswith("/") or ".." in parts:
        raise ValueError(f"the layer {layer.get('digest')} names no safe file path ({path!r})")
    return path if layer.get("mediaType") == FOLDER_MEDIA_TYPE else MODEL_PREFIX + path


def check_manifest(manifest: Mapping[str, Any]) -> list[str]:
    """What makes a manifest not one of ours (empty when it is)."""
    problems = []
    if manifest.get("artifactType") != ARTIFACT_TYPE:
        problems.append(f"artifactType is {manifest.get('artifactType')!r}, not {ARTIFACT_TYPE}")
    if not manifest.get("layers"):
        problems.append("it has no layers")
    return problems


def canonical_bytes(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
