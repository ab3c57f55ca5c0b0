"""Pure parts of deploy: the lock (deterministic, verify names files), layer chains, bundle
streams, and the Kubernetes manifests (validated offline against the API schemas; golden files).
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from llm_installer.deploy.errors import BundleError, VerifyFailedError
from llm_installer.deploy.images import chain_ids
from llm_installer.deploy.k8s import render, slug
from llm_installer.deploy.lock import build_lock, canonical, lock_hash, verify_local, write_lock
from llm_installer.deploy.streams import Reader
from llm_runtime.model_info import ModelInfo

GOLDEN = Path(__file__).parent / "golden"
IMAGES = {
    "base": {
        "digests": [],
        "id": "sha256:" + "1" * 64,
        "tag": "llm-installer/base:cpu-torch2.13.0-rootfs",
    },
    "deps": {"digests": [], "id": "sha256:" + "2" * 64, "tag": "llm-installer/deps:abc"},
    "model": {
        "digests": [],
        "id": "sha256:" + "3" * 64,
        "layers": ["sha256:" + "4" * 64],
        "tag": "llm-installer/model-tiny:local",
    },
}


def model_info(device: str, model_id: str = "test-org/tiny") -> ModelInfo:
    return ModelInfo.new(**{
        "model_id": model_id, "source": "hub", "revision": None, "sha": "c0ffee" * 6 + "abcd",
        "family": "text-generation", "installer_version": "0.1.0", "runtime_version": "0.1.0",
        "pip_freeze": ["transformers==4.56.0", "torch==2.13.0"], "device": device, "requires_gpu": device == "cuda",
        "image": {"flavour": "cuda-cu130" if device == "cuda" else "cpu"}, "quantization": None,
        "memory": {"inference": [{"dtype": "bfloat16", "total_cpu_bytes": 3 * 2**30, "total_cuda_bytes": 2 * 2**30}]},
    })  # fmt: skip


def weights_folder(root: Path) -> Path:
    folder = root / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "llama"}')
    (folder / "model.safetensors").write_bytes(bytes(range(256)) * 40)
    (folder / "sub" / "extra.json").write_text("{}")
    (folder / ".cache" / "huggingface").mkdir(parents=True)
    (folder / ".cache" / "huggingface" / "x.metadata").write_text("download bookkeeping")
    return folder


def make_lock(
    root: Path,
    device: str = "cpu",
    model_id: str = "test-org/tiny",
    at: str = "2026-01-01T00:00:00+00:00",
) -> dict:
    weights = root / "model" if (root / "model").exists() else weights_folder(root)
    return build_lock(model_info(device, model_id), weights, IMAGES, root, at)


def test_lock_is_deterministic_and_its_hash_ignores_the_timestamp(tmp_path):
    first = make_lock(tmp_path)
    second = make_lock(tmp_path, at="2027-05-05T00:00:00+00:00")
    assert canonical({**first, "locked_at": 0}) == canonical({**second, "locked_at": 0})
    assert lock_hash(first) == lock_hash(second)
    assert sorted(first["files"]) == [
        "config.json",
        "model.safetensors",
        "sub/extra.json",
    ]  # no .cache/
    assert first["gpu"] == {
        "device": "cpu",
        "required": False,
        "min_nvidia_driver": None,
        "memory_estimate_bytes": 3 * 2**30,
    }
    assert first["serve"]["command"][:4] == ["python", "-m", "llm_runtime", "serve"]
    assert "--device" in first["serve"]["command"] and first["pip_freeze"] == sorted(
        first["pip_freeze"]
    )
    cuda = make_lock(tmp_path, "cuda")
    assert cuda["gpu"]["min_nvidia_driver"] and cuda["gpu"]["required"] is True
    assert lock_hash(cuda) != lock_hash(first)


def test_verify_names_the_changed_missing_and_unexpected_files(tmp_path):
    lock = make_lock(tmp_path)
    write_lock(tmp_path, lock)
    weights = tmp_path / "model"
    assert verify_local(tmp_path, weights)["weights_digest"] == lock["weights_digest"]
    data = bytearray((weights / "model.safetensors").read_bytes())
    data[100] ^= 1  # same size, one bit
    (weights / "model.safetensors").write_bytes(data)
    (weights / "sub" / "extra.json").unlink()
    (weights / "new.bin").write_bytes(b"x")
    with pytest.raises(VerifyFailedError) as caught:
        verify_local(tmp_path, weights)
    message = caught.value.message
    assert "model.safetensors: sha256" in message and "sub/extra.json: missing" in message
    assert "new.bin: not in the lock" in message and "config.json" not in message


def test_hash_cache_is_used_only_while_size_and_mtime_match(tmp_path):
    lock = make_lock(tmp_path)
    write_lock(tmp_path, lock)
    weights = tmp_path / "model"
    target = weights / "config.json"
    stat = target.stat()
    target.write_text('{"model_type": "LLAMA"}')  # same size
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # and the same mtime: cache trusted
    verify_local(tmp_path, weights, use_cache=True)
    with pytest.raises(VerifyFailedError, match="config.json"):
        verify_local(tmp_path, weights)  # `verify` always re-reads every byte


def test_chain_ids_follow_the_engines_definition():
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    import hashlib

    assert chain_ids([a, b]) == [a, "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()]
    assert chain_ids([]) == []


def test_reader_serves_exact_sizes_across_chunks():
    reader = Reader(iter([b"abc", b"", b"defgh", b"i"]))
    assert reader.read(2) == b"ab" and reader.read(4) == b"cdef" and reader.read(-1) == b"ghi"
    assert reader.read(5) == b""


def _bundle(path: Path, members: dict[str, bytes], listed: dict[str, bytes]) -> None:
    import hashlib

    manifest = {
        "format": 1,
        "folder": "tiny",
        "members": {
            n: {"sha256": hashlib.sha256(d).hexdigest(), "size": len(d)} for n, d in listed.items()
        },
    }
    with tarfile.open(path, "w") as tar:
        for name, data in [("bundle.json", json.dumps(manifest).encode()), *members.items()]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_bundle_members_are_checked_and_a_damaged_one_is_named(tmp_path):
    from llm_installer.deploy.bundle import _extract

    good = {"model/config.json": b"{}", "image.tar": b"x" * 5000}
    _bundle(tmp_path / "ok.llmb", good, good)
    assert _extract(tmp_path / "ok.llmb", tmp_path / "out")["folder"] == "tiny"
    _bundle(
        tmp_path / "bad.llmb",
        {**good, "model/config.json": b"{ }"},
        {**good, "model/config.json": b"{}"},
    )
    with pytest.raises(BundleError, match="model/config.json"):
        _extract(tmp_path / "bad.llmb", tmp_path / "out2")
    data = (tmp_path / "ok.llmb").read_bytes()
    (tmp_path / "cut.llmb").write_bytes(data[:3000])
    with pytest.raises(BundleError, match="cut.llmb is truncated"):
        _extract(tmp_path / "cut.llmb", tmp_path / "out3")
    _bundle(tmp_path / "short.llmb", {"model/config.json": b"{}"}, good)
    with pytest.raises(BundleError, match="image.tar missing"):
        _extract(tmp_path / "short.llmb", tmp_path / "out4")


def _manifests(tmp_path: Path) -> dict[str, str]:
    locks = []
    for name, device in (("tiny-cpu", "cpu"), ("tiny-gpu", "cuda")):
        root = tmp_path / name
        root.mkdir(parents=True)
        locks.append((slug(f"test-org_{name}"), make_lock(root, device, f"test-org/{name}")))
    return render(locks, "llm", "# gateway.py\n")


def test_k8s_manifests_validate_offline_and_match_golden_files(tmp_path):
    files = _manifests(tmp_path)
    assert sorted(files) == [
        "gateway.yaml",
        "kustomization.yaml",
        "test-org-tiny-cpu.yaml",
        "test-org-tiny-gpu.yaml",
    ]
    kinds = []
    for name, text in files.items():
        for document in yaml.safe_load_all(text):
            if document["kind"] != "Kustomization":
                kubernetes_validate.validate(document, "1.30", strict=True)
            kinds.append(document["kind"])
        if os.environ.get("LLM_UPDATE_GOLDEN"):
            (GOLDEN / name).write_text(text)
        assert text == (GOLDEN / name).read_text(), (
            f"{name} differs from tests/deploy/golden/{name}"
        )
    assert (
        kinds.count("Deployment") == 3
        and kinds.count("Service") == 3
        and kinds.count("PersistentVolumeClaim") == 2
    )


def test_k8s_gpu_model_gets_a_gpu_limit_and_probes(tmp_path):
    files = _manifests(tmp_path)
    documents = list(yaml.safe_load_all(files["test-org-tiny-gpu.yaml"]))
    pod = next(d for d in documents if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["resources"]["limits"] == {"nvidia.com/gpu": 1}
    assert (
        pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        and pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    )
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}} in pod["volumes"]
    assert {"name": "weights", "mountPath": "/model", "readOnly": True} in container["volumeMounts"]
    gateway = list(yaml.safe_load_all(files["gateway.yaml"]))
    routes = json.loads(
        next(d for d in gateway if d["kind"] == "Deployment")["spec"]["template"]["spec"][
            "containers"
        ][0]["env"][1]["value"]
    )
    assert [r["url"] for r in routes] == [
        "http://test-org-tiny-cpu:8000",
        "http://test-org-tiny-gpu:8000",
    ]


def test_an_unreachable_host_is_a_message_not_a_traceback(llm_home, tmp_path):
    from deploy_helpers import run_installer

    env = {**os.environ, "LLM_INSTALLER_CONFIG": str(llm_home / "config.yaml")}
    for name in ("models", "cache", "logs"):
        env[f"LLM_INSTALLER_{name.upper()}_DIR"] = str(llm_home / name)
    result = run_installer(
        env, "deployments", "--host", f"unix://{tmp_path}/nothing.sock", timeout=60
    )
    assert result.returncode == 63, result.stdout + result.stderr
    assert "No Docker engine answers" in result.stderr and "Traceback" not in result.stderr
    missing = run_installer(env, "verify", "not-installed-model", timeout=60)
    assert missing.returncode == 33 and "Traceback" not in missing.stderr
    bad = run_installer(env, "import", str(tmp_path / "nope.llmb"), timeout=60)
    assert bad.returncode == 62 and "nope.llmb" in bad.stderr
