"""Pure logic of push/pull and deploy's preflight: references, ModelPack manifests, the engine's
error words, and the preflight decision over faked ``docker info`` answers."""

from __future__ import annotations

import hashlib

import pytest

from llm_installer.deploy import modelpack
from llm_installer.deploy.errors import (
    ArtifactMissingError,
    DigestMismatchError,
    PreflightError,
    RegistryAuthError,
    RegistryUnreachableError,
)
from llm_installer.deploy.preflight import (
    Facts,
    decide,
    driver_ok,
    gather,
    parse_df,
    raise_problems,
)
from llm_installer.deploy.registry import (
    classify_engine_error,
    is_loopback,
    parse_reference,
    parse_target,
    repository_name,
)

SHA = "a" * 64
GPU_LOCK = {"gpu": {"device": "cuda", "min_nvidia_driver": "525.60.13"}}
CPU_LOCK = {"gpu": {"device": "cpu", "memory_estimate_bytes": 8_000_000_000}}
INFO_NVIDIA = {"Runtimes": {"runc": {"path": "runc"}, "nvidia": {"path": "nvidia"}}, "MemTotal": 0}
INFO_PLAIN = {"Runtimes": {"runc": {"path": "runc"}}, "MemTotal": 4_000_000_000}


def test_references_parse_and_refuse():
    ref = parse_reference(f"127.0.0.1:5000/team/tiny-weights@sha256:{SHA}")
    assert (ref.registry, ref.repository, ref.by_digest) == (
        "127.0.0.1:5000",
        "team/tiny-weights",
        True,
    )
    tagged = parse_reference("registry.example.com/team/tiny-weights:v1")
    assert tagged.reference == "v1" and str(tagged) == "registry.example.com/team/tiny-weights:v1"
    assert parse_reference("localhost:5000/a/b").reference == "latest"
    for bad in ("tiny", "team/tiny@sha256:123", f"nohost/x@sha256:{SHA}"):
        with pytest.raises(ArtifactMissingError):
            parse_reference(bad)
    assert parse_target("127.0.0.1:5000/Team/") == ("127.0.0.1:5000", "team")
    with pytest.raises(RegistryUnreachableError):
        parse_target("127.0.0.1:5000")
    assert repository_name("Qwen_Qwen3-0.6B") == "qwen_qwen3-0.6b"
    assert (
        is_loopback("127.0.0.1:5000") and is_loopback("localhost") and not is_loopback("harbor.io")
    )


def test_modelpack_layers_use_the_lock_hashes_and_spec_media_types():
    files = {
        "model.safetensors": {"sha256": SHA, "size": 10},
        "config.json": {"sha256": "b" * 64, "size": 2},
        "README.md": {"sha256": "c" * 64, "size": 3},
    }
    lock = {"model": {"id": "org/tiny", "family": "llama"}, "files": files}
    config = modelpack.model_config(lock, files)
    folder = {"llm.lock.json": b"{}"}
    manifest = modelpack.build_manifest(config, files, folder, {"k": "v"})
    assert modelpack.check_manifest(manifest) == []
    types = {modelpack.layer_path(layer): layer["mediaType"] for layer in manifest["layers"]}
    assert types == {
        "model/model.safetensors": "application/vnd.cncf.model.weight.v1.raw",
        "model/config.json": "application/vnd.cncf.model.weight.config.v1.raw",
        "model/README.md": "application/vnd.cncf.model.doc.v1.raw",
        "llm.lock.json": modelpack.FOLDER_MEDIA_TYPE,
    }
    by_path = {layer["annotations"][modelpack.FILEPATH]: layer for layer in manifest["layers"]}
    assert by_path["model.safetensors"]["digest"] == f"sha256:{SHA}"
    assert by_path["llm.lock.json"]["digest"] == "sha256:" + hashlib.sha256(b"{}").hexdigest()
    assert manifest["config"]["digest"] == "sha256:" + hashlib.sha256(config).hexdigest()
    with pytest.raises(ValueError):
        modelpack.layer_path({"annotations": {modelpack.FILEPATH: "../etc/passwd"}})
    assert modelpack.check_manifest({"artifactType": "x", "layers": []})


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("unauthorized: authentication required", RegistryAuthError),
        ("denied: requested access to the resource is denied", RegistryAuthError),
        ("manifest unknown: manifest unknown", ArtifactMissingError),
        (
            'Get "http://127.0.0.1:1/v2/": dial tcp 127.0.0.1:1: connect: connection refused',
            RegistryUnreachableError,
        ),
        ("filesystem layer verification failed for digest sha256:abc", DigestMismatchError),
    ],
)
def test_engine_errors_are_classified(text, error):
    classified = classify_engine_error(text, "127.0.0.1:5000", "Pushing the image")
    assert isinstance(classified, error) and text in classified.message


def test_preflight_gpu_runtime_and_driver():
    no_runtime = decide(Facts(tuple(INFO_PLAIN["Runtimes"]), 0), GPU_LOCK, wants_gpu=True)
    assert len(no_runtime) == 1 and "no NVIDIA runtime" in no_runtime[0].message
    old = decide(Facts(("nvidia", "runc"), 0, driver="470.82.01"), GPU_LOCK, wants_gpu=True)
    assert len(old) == 1 and "470.82.01" in old[0].message and "525.60.13" in old[0].message
    assert decide(Facts(("nvidia", "runc"), 0, driver="550.54.15"), GPU_LOCK, wants_gpu=True) == []
    assert decide(Facts(("nvidia",), 0, driver=None), GPU_LOCK, wants_gpu=True) == []  # not probed
    assert driver_ok("535.104.05", "525.60.13") and not driver_ok("525.60.12", "525.60.13")
    assert driver_ok("garbage", "525.60.13") and driver_ok("470.1", None)


def test_preflight_memory_and_disk():
    small = decide(Facts(("runc",), 4_000_000_000), CPU_LOCK, wants_gpu=False)
    assert len(small) == 1 and small[0].forceable
    raise_problems(small, force=True)  # --force lets memory through
    with pytest.raises(PreflightError, match="memory"):
        raise_problems(small, force=False)
    full = decide(
        Facts(("runc",), 0, free_disk=1_000_000_000, lacking=2_000_000_000), CPU_LOCK, False
    )
    assert len(full) == 1 and "free in its Docker data root" in full[0].message
    with pytest.raises(PreflightError, match="2.00 GB"):
        raise_problems(full, force=True)  # disk is not forceable
    roomy = Facts(("runc",), 16_000_000_000, free_disk=10_000_000_000, lacking=2_000_000_000)
    assert decide(roomy, CPU_LOCK, wants_gpu=False) == []
    assert decide(Facts(("runc",), 0, free_disk=None, lacking=10**12), CPU_LOCK, False) == []
    assert (
        parse_df(
            "Filesystem 1024-blocks Used Available Capacity Mounted on\noverlay 100 40 60 40% /\n"
        )
        == 61440
    )
    assert parse_df("df: not found") is None


class FakeTarget:
    """A target engine that answers ``docker info`` with a canned dict and holds no image."""

    def __init__(self, info: dict) -> None:
        self._info = info
        self.images = self

    def info(self) -> dict:
        return self._info

    def list(self, **_) -> list:
        return []

    def get(self, name):
        from docker.errors import ImageNotFound

        raise ImageNotFound(name)


def test_gather_probes_nothing_without_an_image_or_a_runtime():
    lock = {**GPU_LOCK, "images": {"model": {"id": "sha256:" + SHA}}}
    facts = gather(FakeTarget(INFO_PLAIN), lock, wants_gpu=True, lacking=10)
    assert facts.runtimes == ("runc",) and facts.driver is None and facts.free_disk is None
    assert decide(facts, lock, wants_gpu=True)[0].message.startswith(
        "The model needs an NVIDIA GPU"
    )
    facts = gather(FakeTarget(INFO_NVIDIA), lock, wants_gpu=True, lacking=0)
    assert facts.runtimes == ("nvidia", "runc") and decide(facts, lock, wants_gpu=True) == []


def test_driver_floor_of_every_cuda_flavour_against_a_real_answer():
    """580.159.04 is what nvidia-smi printed on an H200 host; 570.x is below the cu130 floor."""
    from llm_installer.build.base_images import flavours

    floors = {name: f.min_driver for name, f in flavours().items() if f.min_driver}
    assert floors and all(driver_ok("580.159.04", floor) for floor in floors.values())
    assert not driver_ok("570.86.10", floors["cuda-cu130"]) and driver_ok(
        "570.86.10", floors["cuda-cu126"]
    )
    lock = {"gpu": {"device": "cuda", "min_nvidia_driver": floors["cuda-cu130"]}}
    refused = decide(Facts(("nvidia", "runc"), 0, driver="570.86.10"), lock, wants_gpu=True)
    assert len(refused) == 1 and floors["cuda-cu130"] in refused[0].message
