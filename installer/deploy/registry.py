"""``push`` / ``pull``: a model through an OCI registry — its image by digest, its weights as a
ModelPack artifact — so one private registry (Harbor, distribution) serves many servers.

Push: verify the weights against the lock, ``docker push`` the model image (its digest comes
back in the push stream), push every file as a raw layer whose digest is the lock's sha256, then
record both references under ``registry`` in llm.lock.json (outside the lock's hash: where a
model is stored does not change what it is). Pull: fetch the manifest and check its digest,
download each layer hashing it, compare everything with the lock inside the artifact, pull the
image by digest into the target engine and check its ID, and only then make the model folder the
way ``import`` does. Credentials come from ``docker login``'s config or ``--username`` with the
password on stdin; they are sent to the registry and never written anywhere.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from llm_installer.console import Output
from llm_installer.deploy import modelpack
from llm_installer.deploy.errors import (
    ArtifactMissingError,
    DeployFailedError,
    DigestMismatchError,
    RegistryAuthError,
    RegistryUnreachableError,
)
from llm_installer.deploy.lock import LOCK_NAME, canonical, compare_files, lock_hash, read_lock
from llm_installer.settings import Settings

CHUNK = 1024 * 1024
BIG_BLOB = 64 * 1024 * 1024  # larger files are uploaded in chunks, not read into memory
FOLDER_FILES = ("model_info.json", "Dockerfile")
TIMEOUT_S = 30
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class Credentials:
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    insecure: bool = False  # plain HTTP (loopback registries always are)

    def docker_auth(self) -> dict[str, str] | None:
        if not self.username:
            return None  # docker-py reads `docker login`'s config itself
        return {"username": self.username, "password": self.password or ""}


@dataclass(frozen=True)
class Reference:
    registry: str
    repository: str  # namespace/name, without the registry
    reference: str  # a tag or sha256:…

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        sep = "@" if self.by_digest else ":"
        return f"{self.name}{sep}{self.reference}"

    @property
    def by_digest(self) -> bool:
        return bool(DIGEST.match(self.reference))


def parse_target(text: str) -> tuple[str, str]:
    """REGISTRY/NAMESPACE → (registry host[:port], namespace)."""
    host, _, namespace = text.strip().strip("/").partition("/")
    if not _is_registry_host(host) or not namespace:
        raise RegistryUnreachableError(
            f"{text!r} is not REGISTRY/NAMESPACE",
            hint="Give the registry's host (and port) and a namespace: registry.example.com/team "
            "or 127.0.0.1:5000/models.",
        )
    return host, namespace.lower()


def parse_reference(text: str) -> Reference:
    """REGISTRY/NAMESPACE/NAME@sha256:… or …:TAG (what push prints)."""
    text = text.strip()
    name, at, digest = text.partition("@")
    if not at:
        slash = name.rfind("/")
        colon = name.rfind(":")
        name, digest = (name[:colon], name[colon + 1 :]) if colon > slash else (name, "latest")
    host, _, repository = name.partition("/")
    if not _is_registry_host(host) or not repository or (at and not DIGEST.match(digest)):
        raise ArtifactMissingError(
            f"{text!r} is not a registry reference",
            hint="Give what `llm-installer push` printed: REGISTRY/NAMESPACE/NAME@sha256:….",
        )
    return Reference(host, repository, digest)


def _is_registry_host(host: str) -> bool:
    return bool(host) and ("." in host or ":" in host or host == "localhost")


def is_loopback(registry: str) -> bool:
    host = registry.rsplit(":", 1)[0].strip("[]") if registry.count(":") <= 1 else registry
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def repository_name(folder: str) -> str:
    """A model folder's name as an OCI repository component ([a-z0-9._-])."""
    name = re.sub(r"[^a-z0-9._-]+", "-", folder.lower()).strip("._-")
    return name or "model"


# ── the registry's HTTP API (through oras, without its minutes-long retry loop) ─────────


class RegistryClient:
    """oras's Registry for one host: auth from docker's config or the given credentials."""

    def __init__(self, registry: str, credentials: Credentials) -> None:
        import oras.provider

        self.registry = registry
        insecure = credentials.insecure or is_loopback(registry)
        self.base = f"{'http' if insecure else 'https'}://{registry}"
        backend = "basic" if self._challenge().lower().startswith("basic") else "token"
        self.oras = oras.provider.Registry(registry, insecure=insecure, auth_backend=backend)
        self.explicit = bool(credentials.username)
        if self.explicit:
            self.oras.auth.set_basic_auth(credentials.username, credentials.password or "")

    def _challenge(self) -> str:
        try:
            reply = requests.get(f"{self.base}/v2/", timeout=TIMEOUT_S)
        except requests.RequestException as exc:
            raise RegistryUnreachableError(
                f"The registry {self.registry} does not answer: {_short(exc)}"
            ) from None
        if reply.status_code not in (200, 401):
            raise RegistryUnreachableError(
                f"{self.base}/v2/ answered HTTP {reply.status_code}: not an OCI registry"
            )
        return reply.headers.get("Www-Authenticate", "")

    def request(self, method: str, repository: str, path: str, **kwargs) -> requests.Response:
        import oras.container

        if not self.explicit:  # `docker login`'s config (its credential helpers too)
            self.oras.auth.load_configs(oras.container.Container(f"{self.registry}/{repository}"))
        url = path if path.startswith("http") else f"{self.base}/v2/{repository}/{path}"
        request = type(self.oras).do_request.__wrapped__  # one try: failures are reported now
        try:
            reply = request(self.oras, url, method, **kwargs)
        except requests.RequestException as exc:
            raise RegistryUnreachableError(
                f"The registry {self.registry} broke off: {_short(exc)}"
            ) from None
        except ValueError as exc:  # oras: a 401 it cannot answer
            raise RegistryAuthError(f"The registry {self.registry} refused: {exc}") from None
        if reply.status_code in (401, 403):
            raise RegistryAuthError(
                f"The registry {self.registry} refused access to {repository} (HTTP {reply.status_code})"
            )
        return reply

    def blob_exists(self, repository: str, digest: str) -> bool:
        return self.request("HEAD", repository, f"blobs/{digest}").status_code == 200

    def upload_blob(self, repository: str, digest: str, size: int, source) -> None:
        """POST a session, then PUT the bytes (a file streamed, or bytes) with their digest."""
        if self.blob_exists(repository, digest):
            return
        started = self.request("POST", repository, "blobs/uploads/")
        location = started.headers.get("Location", "")
        if started.status_code != 202 or not location:
            raise _http_error(self.registry, "start an upload", started)
        if location.startswith("/"):
            location = self.base + location
        location += ("&" if "?" in location else "?") + f"digest={digest}"
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        done = self.request("PUT", repository, location, data=source, headers=headers)
        if done.status_code != 201:
            if "DIGEST_INVALID" in done.text:
                raise DigestMismatchError(f"The registry computed another digest than {digest}")
            raise _http_error(self.registry, f"store the blob {digest[:19]}", done)

    def put_manifest(self, repository: str, tag: str, body: bytes, media_type: str) -> str:
        headers = {"Content-Type": media_type}
        reply = self.request("PUT", repository, f"manifests/{tag}", data=body, headers=headers)
        if reply.status_code != 201:
            raise _http_error(self.registry, "store the manifest", reply)
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        answered = reply.headers.get("Docker-Content-Digest")
        if answered and answered != digest:
            raise DigestMismatchError(
                f"The registry stored the manifest as {answered}, not {digest}"
            )
        return digest

    def get_manifest(self, ref: Reference) -> tuple[dict[str, Any], str]:
        headers = {"Accept": modelpack.MANIFEST_MEDIA_TYPE}
        reply = self.request("GET", ref.repository, f"manifests/{ref.reference}", headers=headers)
        if reply.status_code == 404:
            raise ArtifactMissingError(f"The registry has no {ref}")
        if reply.status_code != 200:
            raise _http_error(self.registry, f"read {ref}", reply)
        digest = "sha256:" + hashlib.sha256(reply.content).hexdigest()
        if ref.by_digest and digest != ref.reference:
            raise DigestMismatchError(
                f"The manifest the registry sent for {ref} hashes to {digest}: it is not the one pushed"
            )
        try:
            return json.loads(reply.content), digest
        except ValueError:
            raise DigestMismatchError(f"The manifest of {ref} is not JSON") from None

    def download(self, repository: str, layer: Mapping[str, Any], target: Path, label: str) -> None:
        """Stream one blob to TARGET, hashing it; a wrong digest or size names LABEL."""
        digest = layer["digest"]
        with self.request("GET", repository, f"blobs/{digest}", stream=True) as reply:
            if reply.status_code == 404:
                raise ArtifactMissingError(
                    f"{label} ({digest[:19]}…) is missing from {self.registry}/{repository}"
                )
            if reply.status_code != 200:
                raise _http_error(self.registry, f"read {label}", reply)
            target.parent.mkdir(parents=True, exist_ok=True)
            hasher, size = hashlib.sha256(), 0
            with target.open("wb") as out:
                for chunk in reply.iter_content(CHUNK):
                    hasher.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
        if f"sha256:{hasher.hexdigest()}" != digest or size != layer["size"]:
            target.unlink(missing_ok=True)
            raise DigestMismatchError(
                f"{label} from the registry does not match its digest {digest[:19]}… "
                f"(got sha256:{hasher.hexdigest()[:12]}…, {size} bytes)"
            )


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) < 300 else text[:300] + "…"


def _http_error(registry: str, what: str, reply: requests.Response) -> DeployFailedError:
    return DeployFailedError(
        f"The registry {registry} could not {what}: HTTP {reply.status_code} {reply.text[:300]}",
        hint="Check the registry's log and free space, then push again.",
    )


# ── docker push / pull through the engine ───────────────────────────────────────────────


def engine_stream(replies, registry: str, what: str) -> str | None:
    """Read a push/pull progress stream; returns the digest it reports; errors are classified."""
    digest = None
    for reply in replies or ():
        if not isinstance(reply, dict):
            continue
        if reply.get("error") or reply.get("errorDetail"):
            raise classify_engine_error(
                reply.get("error") or str(reply["errorDetail"]), registry, what
            )
        aux = reply.get("aux") or {}
        digest = aux.get("Digest") or digest
        status = reply.get("status") or ""
        if status.startswith("Digest: "):
            digest = status.split()[1]
    return digest


def classify_engine_error(text: str, registry: str, what: str) -> Exception:
    """The engine's words for a failed push/pull as one of our errors (unit-tested)."""
    lowered = text.lower()
    message = f"{what} through {registry} failed: {text}"
    if any(
        w in lowered for w in ("unauthorized", "denied", "authentication required", "no basic auth")
    ):
        return RegistryAuthError(message)
    if any(
        w in lowered for w in ("manifest unknown", "not found", "name unknown", "does not exist")
    ):
        return ArtifactMissingError(message)
    if "digest" in lowered and any(w in lowered for w in ("mismatch", "invalid", "verification")):
        return DigestMismatchError(message)
    unreachable = ("connection refused", "no such host", "dial tcp", "timeout", "i/o timeout")
    if any(w in lowered for w in (*unreachable, "http response to https client", "eof")):
        return RegistryUnreachableError(message)
    return DeployFailedError(message, hint="Read the engine's message above; then push again.")


def push_image(
    client, lock: Mapping[str, Any], repository: str, tag: str, creds: Credentials
) -> str:
    """Tag and push the model image; returns REPOSITORY@sha256:… as the registry stored it."""
    from docker.errors import APIError, ImageNotFound

    from llm_installer.deploy.errors import VerifyFailedError

    image_id = lock["images"]["model"]["id"]
    try:
        image = client.images.get(image_id)
    except ImageNotFound:
        raise VerifyFailedError(
            f"The image {image_id[:19]} named by llm.lock.json is not in the local Docker",
            hint="Reinstall the model (`llm-installer install MODEL --yes`), which writes a new lock.",
        ) from None
    image.tag(repository, tag)
    registry = repository.split("/", 1)[0]
    try:
        replies = client.api.push(
            repository, tag=tag, stream=True, decode=True, auth_config=creds.docker_auth()
        )
        digest = engine_stream(replies, registry, f"Pushing the image {repository}:{tag}")
    except APIError as exc:
        raise classify_engine_error(
            str(exc.explanation or exc), registry, "Pushing the image"
        ) from None
    if not digest:
        raise DeployFailedError(f"The engine pushed {repository}:{tag} but reported no digest")
    return f"{repository}@{digest}"


def pull_image(client, image_ref: str, lock: Mapping[str, Any], creds: Credentials) -> None:
    """Pull IMAGE_REF (by digest) into the engine, check its ID against the lock, tag it."""
    from docker.errors import APIError

    repository, _, digest = image_ref.partition("@")
    registry = repository.split("/", 1)[0]
    try:
        replies = client.api.pull(
            repository, tag=digest, stream=True, decode=True, auth_config=creds.docker_auth()
        )
        engine_stream(replies, registry, f"Pulling the image {image_ref}")
        found = client.images.get(image_ref)
    except APIError as exc:
        raise classify_engine_error(
            str(exc.explanation or exc), registry, "Pulling the image"
        ) from None
    wanted = lock["images"]["model"]
    if found.id != wanted["id"]:
        raise DigestMismatchError(
            f"The image {image_ref} has ID {found.id[:19]}…, llm.lock.json says {wanted['id'][:19]}…"
        )
    if wanted.get("tag") and ":" in wanted["tag"]:
        name, _, version = wanted["tag"].rpartition(":")
        found.tag(name, version)


# ── push ────────────────────────────────────────────────────────────────────────────────


def push_model(
    model: str, target: str, settings: Settings, output: Output, creds: Credentials
) -> dict[str, str]:
    """Push MODEL's image and weights to REGISTRY/NAMESPACE; returns the references, in the lock."""
    from llm_installer.deploy.lock import installed, verify_local, write_lock
    from llm_installer.docker_engine import connect

    registry, namespace = parse_target(target)
    model_dir, _, weights = installed(model, settings)
    with output.out.status("Checking the weights against llm.lock.json…"):
        lock = verify_local(model_dir, weights, use_cache=True)
    client = RegistryClient(registry, creds)
    repository = f"{namespace}/{repository_name(model_dir.name)}"
    tag = lock_hash(lock)[:16]
    with output.out.status(f"Pushing the image to {registry}/{repository}…"):
        image = push_image(connect(timeout=600), lock, f"{registry}/{repository}", tag, creds)
    lock = {**lock, "registry": {"image": image}}
    with output.out.status(f"Pushing the weights to {registry}/{repository}-weights…"):
        digest = push_artifact(client, f"{repository}-weights", tag, lock, model_dir, weights)
    refs = {"image": image, "weights": f"{registry}/{repository}-weights@{digest}"}
    write_lock(model_dir, {**lock, "registry": refs})
    return refs


def push_artifact(
    client: RegistryClient, repository: str, tag: str, lock: dict, model_dir: Path, weights: Path
) -> str:
    """Every weight file as a raw layer (digest = the lock's sha256), the folder files, the manifest."""
    folder_files = {LOCK_NAME: canonical(lock).encode()}
    folder_files.update(
        {n: (model_dir / n).read_bytes() for n in FOLDER_FILES if (model_dir / n).is_file()}
    )
    files = lock["files"]
    for name, facts in sorted(files.items()):
        path = weights / name
        with path.open("rb") as handle:
            source = handle if facts["size"] > BIG_BLOB else handle.read()
            client.upload_blob(repository, f"sha256:{facts['sha256']}", facts["size"], source)
    config = modelpack.model_config(lock, files)
    for data in (config, *folder_files.values()):
        client.upload_blob(repository, f"sha256:{modelpack.sha256_bytes(data)}", len(data), data)
    annotations = {
        modelpack.IMAGE_ANNOTATION: lock["registry"]["image"],
        modelpack.LOCK_HASH_ANNOTATION: lock_hash(lock),
    }
    manifest = modelpack.build_manifest(config, files, folder_files, annotations)
    body = modelpack.canonical_bytes(manifest)
    return client.put_manifest(repository, tag, body, modelpack.MANIFEST_MEDIA_TYPE)


# ── pull ────────────────────────────────────────────────────────────────────────────────


def pull_model(
    ref_text: str,
    settings: Settings,
    output: Output,
    creds: Credentials,
    *,
    host: str | None = None,
    yes: bool = False,
) -> Path:
    """Pull the artifact REF and its image into HOST's engine; the folder is made only when all match."""
    from llm_installer.deploy.bundle import _finish_folder, _place, _refuse_existing, _safe_folder
    from llm_installer.deploy.hosts import connect_host

    ref = parse_reference(ref_text)
    engine = connect_host(host)
    client = RegistryClient(ref.registry, creds)
    manifest, digest = client.get_manifest(ref)
    problems = modelpack.check_manifest(manifest)
    if problems:
        raise ArtifactMissingError(
            f"{ref} is not a model pushed by llm-installer: {'; '.join(problems)}"
        )
    settings.models_path.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=settings.models_path, prefix=".pull-") as scratch:
        with output.out.status(f"Downloading and checking {ref.name}@{digest[:19]}…"):
            lock = _download_layers(client, ref, manifest, Path(scratch))
        folder = settings.models_path / _safe_folder(lock["model"]["folder"])
        _refuse_existing(folder, yes)
        image_ref = (manifest.get("annotations") or {}).get(modelpack.IMAGE_ANNOTATION, "")
        if "@sha256:" not in image_ref:
            raise ArtifactMissingError(
                f"{ref} names no image digest ({modelpack.IMAGE_ANNOTATION})"
            )
        with output.out.status(f"Pulling the image {image_ref}…"):
            pull_image(engine, image_ref, lock, creds)
        _place(Path(scratch), folder)
    _finish_folder(folder)
    return folder


def _download_layers(
    client: RegistryClient, ref: Reference, manifest: Mapping[str, Any], scratch: Path
) -> dict[str, Any]:
    """Every layer hashed on arrival, then the model files compared with the artifact's lock."""
    for layer in manifest["layers"]:
        try:
            path = modelpack.layer_path(layer)
        except ValueError as exc:
            raise DigestMismatchError(f"{ref}: {exc}") from None
        client.download(ref.repository, layer, scratch / path, path)
    if not (scratch / LOCK_NAME).is_file():
        raise ArtifactMissingError(f"{ref} carries no {LOCK_NAME}")
    lock = read_lock(scratch)
    annotated = (manifest.get("annotations") or {}).get(modelpack.LOCK_HASH_ANNOTATION)
    if annotated and annotated != lock_hash(lock):
        raise DigestMismatchError(f"The {LOCK_NAME} in {ref} is not the one its manifest names")
    got = {
        modelpack.layer_path(layer).removeprefix(modelpack.MODEL_PREFIX): {
            "sha256": layer["digest"].removeprefix("sha256:"),
            "size": layer["size"],
        }
        for layer in manifest["layers"]
        if layer.get("mediaType") != modelpack.FOLDER_MEDIA_TYPE
    }
    problems = compare_files(lock["files"], got)
    if problems:
        missing = [p for p in problems if p.endswith(": missing")]
        error = (
            ArtifactMissingError
            if missing and len(missing) == len(problems)
            else DigestMismatchError
        )
        raise error(
            f"The files of {ref} do not match its {LOCK_NAME}:\n  " + "\n  ".join(problems[:20])
        )
    return lock
