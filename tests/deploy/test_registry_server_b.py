"""push → a real local registry (docker-registry) → pull by digest into server B, which serves.

The registry is Debian's distribution on a loopback port; server B is the second dockerd of the
deploy tests. The weights travel as a ModelPack artifact, the image by digest; a tampered blob,
an unknown digest, a dead registry and a wrong password are refused with their own exit codes.
"""

from __future__ import annotations

import json
import subprocess

import httpx
import pytest
from conftest import REGISTRY_USER
from deploy_helpers import assert_no_token, free_port, run_installer

pytestmark = [pytest.mark.docker, pytest.mark.slow]
CHAT = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 3}
ARTIFACT_TYPE = "application/vnd.cncf.model.manifest.v1+json"


@pytest.fixture(scope="module")
def pushed(deploy_home, installed_tiny, registry, local_engine):
    host, _ = registry
    before = json.loads((installed_tiny / "llm.lock.json").read_text())
    result = run_installer(deploy_home["env"], "push", "deploy-tiny", f"{host}/team", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    refs = json.loads(result.stdout)
    yield refs, before
    local_engine.images.remove(refs["image"].split("@")[0] + ":" + _tag(before), force=True)


def _tag(lock: dict) -> str:
    from llm_installer.deploy.lock import lock_hash

    return lock_hash(lock)[:16]


def _manifest(host: str, ref: str) -> dict:
    name, digest = ref.split("@")
    repository = name.split("/", 1)[1]
    reply = httpx.get(
        f"http://{host}/v2/{repository}/manifests/{digest}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_push_records_digests_and_the_artifact_is_modelpack(pushed, installed_tiny, registry):
    from llm_installer.deploy.lock import lock_hash

    refs, before = pushed
    host, _ = registry
    assert refs["image"].startswith(f"{host}/team/deploy-tiny@sha256:")
    assert refs["weights"].startswith(f"{host}/team/deploy-tiny-weights@sha256:")
    after = json.loads((installed_tiny / "llm.lock.json").read_text())
    assert after["registry"] == refs and lock_hash(after) == lock_hash(before)
    manifest = _manifest(host, refs["weights"])
    assert manifest["artifactType"] == ARTIFACT_TYPE
    assert manifest["config"]["mediaType"] == "application/vnd.cncf.model.config.v1+json"
    layers = {
        layer["annotations"]["org.cncf.model.filepath"]: layer for layer in manifest["layers"]
    }
    for name, facts in before["files"].items():
        assert layers[name]["digest"] == f"sha256:{facts['sha256']}"
    assert layers["model.safetensors"]["mediaType"] == "application/vnd.cncf.model.weight.v1.raw"
    assert layers["config.json"]["mediaType"] == "application/vnd.cncf.model.weight.config.v1.raw"
    assert "llm.lock.json" in layers and "model_info.json" in layers


def test_pull_by_digest_into_b_then_start_sh_serves(
    pushed, deploy_home, server_b, registry, tmp_path
):
    refs, before = pushed
    models_b = tmp_path / "b-models"
    env_b = {
        **deploy_home["env"],
        "LLM_INSTALLER_MODELS_DIR": str(models_b),
        "DOCKER_HOST": server_b.url,
    }
    result = run_installer(env_b, "pull", refs["weights"])
    assert result.returncode == 0, result.stdout + result.stderr
    folder = models_b / "deploy-tiny"
    assert (folder / ".install_complete").exists()
    assert server_b.client().images.get(before["images"]["model"]["id"])  # pulled by digest
    port = free_port()
    started = subprocess.run(
        [str(folder / "start.sh"), "--detach", "--no-browser", "--port", str(port)],
        env=env_b,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        reply = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=CHAT, timeout=120)
        assert reply.status_code == 200, reply.text
        assert server_b.client().containers.list(filters={"name": "llm-deploy-tiny"})
    finally:
        run_installer(env_b, "stop", str(folder))
    _, storage = registry
    scanned = assert_no_token(
        [
            *storage.rglob("data"),
            *folder.rglob("*.json"),
            *deploy_home["home"].rglob("*.log"),
        ]
    )
    assert len(scanned) > 5


def test_a_tampered_blob_is_refused_with_the_file_named(pushed, deploy_home, registry, tmp_path):
    refs, before = pushed
    _, storage = registry
    sha = before["files"]["config.json"]["sha256"]
    blob = next(storage.rglob(f"blobs/sha256/{sha[:2]}/{sha}/data"))
    original = blob.read_bytes()
    blob.write_bytes(original.replace(b"{", b"[", 1))
    models_b = tmp_path / "b-models"
    env_b = {**deploy_home["env"], "LLM_INSTALLER_MODELS_DIR": str(models_b)}
    try:
        refused = run_installer(env_b, "pull", refs["weights"])
    finally:
        blob.write_bytes(original)
    assert refused.returncode == 71, refused.stdout + refused.stderr
    assert "config.json" in refused.stderr and "Traceback" not in refused.stderr
    assert not (models_b / "deploy-tiny").exists()


def test_unknown_digest_dead_registry_and_wrong_password_have_their_codes(
    pushed, deploy_home, registry, auth_registry, tmp_path
):
    refs, _ = pushed
    env = {**deploy_home["env"], "LLM_INSTALLER_MODELS_DIR": str(tmp_path / "m")}
    name = refs["weights"].split("@")[0]
    missing = run_installer(env, "pull", f"{name}@sha256:{'0' * 64}")
    assert missing.returncode == 72 and "has no" in missing.stderr, missing.stderr
    dead = run_installer(deploy_home["env"], "push", "deploy-tiny", f"127.0.0.1:{free_port()}/team")
    assert dead.returncode == 68 and "does not answer" in dead.stderr, dead.stderr
    wrong = subprocess.run(
        [*_cli(), "push", "deploy-tiny", f"{auth_registry}/team", "-u", REGISTRY_USER]
        + ["--password-stdin"],
        input="not-the-password\n",
        env=deploy_home["env"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert wrong.returncode == 69, wrong.stdout + wrong.stderr
    assert "not-the-password" not in wrong.stdout + wrong.stderr
    for text in (missing, dead, wrong):
        assert "Traceback" not in text.stderr


def _cli() -> list[str]:
    import sys

    return [sys.executable, "-m", "llm_installer"]


def test_deploy_with_registry_pulls_the_layers_there(pushed, deploy_home, server_b, registry):
    """deploy --registry: B pulls the image by digest from the registry; only weights go direct."""
    refs, before = pushed
    host, _ = registry
    client = server_b.client()
    name, port = "regtest-tiny", free_port()
    image_id = before["images"]["model"]["id"]
    for container in client.containers.list(all=True):
        if container.attrs["Image"] == image_id:  # start.sh's from the pull test, if left
            container.remove(force=True)
    client.images.remove(image_id, force=True)
    result = run_installer(
        deploy_home["env"], "deploy", "deploy-tiny", "--host", server_b.url, "--name", name,
        "--port", str(port), "--registry", f"{host}/team", "--json",
    )  # fmt: skip
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        record = json.loads(result.stdout)
        assert record["started"] and record["bytes_sent"] < 5_000_000  # weights only, no layer
        assert client.images.get(image_id).id == image_id
        reply = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=CHAT, timeout=120)
        assert reply.status_code == 200, reply.text
    finally:
        run_installer(deploy_home["env"], "undeploy", name, "--host", server_b.url, "--purge")


def test_preflight_measures_free_disk_on_b_and_refuses_too_much(pushed, server_b):
    """The df probe runs in an image B holds; lacking more than B's free space is refused."""
    from llm_installer.deploy.errors import PreflightError
    from llm_installer.deploy.preflight import decide, gather, raise_problems

    refs, lock = pushed
    repository, digest = refs["image"].split("@")
    server_b.client().images.pull(repository, tag=digest)  # held already when run in file order
    facts = gather(server_b.client(), lock, wants_gpu=False, lacking=1)
    assert facts.free_disk and facts.free_disk > 1_000_000  # measured there, in bytes
    assert facts.driver is None  # no NVIDIA runtime on B: nvidia-smi is never probed
    too_much = gather(server_b.client(), lock, wants_gpu=False, lacking=facts.free_disk * 2)
    with pytest.raises(PreflightError, match="free in its Docker data root"):
        raise_problems(decide(too_much, lock, wants_gpu=False), force=True)
