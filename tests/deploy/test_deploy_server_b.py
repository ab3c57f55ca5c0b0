"""Deploy, redeploy, verify, rollback, undeploy and export/import against server B.

Server B is a second, empty dockerd; the first deploy goes over ``ssh://`` (a real sshd) and has
to carry the base, dependency and model image layers itself. The tests run in file order and
share B's state, as a user's successive commands would.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest
from deploy_helpers import FAKE_TOKEN, assert_no_token, free_port, run_installer

pytestmark = [pytest.mark.docker, pytest.mark.slow]
CHAT = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 3}
PORT = free_port()
NAME = "deploytest-tiny"


def deploy_json(env: dict, host: str, *extra: str) -> dict:
    result = run_installer(
        env,
        "deploy",
        "deploy-tiny",
        "--host",
        host,
        "--port",
        str(PORT),
        "--name",
        NAME,
        "--json",
        *extra,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def labels_on_b(server_b) -> dict:
    return server_b.client().containers.get(NAME).labels


def test_lock_written_by_install_and_verify(deploy_home, installed_tiny):
    lock = json.loads((installed_tiny / "llm.lock.json").read_text())
    assert set(lock["files"]) >= {"config.json", "model.safetensors", "tokenizer.json"}
    assert lock["images"]["model"]["id"].startswith("sha256:")
    assert lock["serve"]["command"][:3] == ["python", "-m", "llm_runtime"]
    result = run_installer(deploy_home["env"], "verify", "deploy-tiny")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 files" in result.stdout or "files in" in result.stdout


def test_first_deploy_over_ssh_sends_the_layers_and_serves(
    deploy_home, installed_tiny, server_b, sshd
):
    assert server_b.client().images.list() == [], "server B must start without images"
    record = deploy_json(sshd.env(deploy_home["env"]), sshd.url)
    assert record["started"] is True
    assert record["bytes_sent"] > 100_000_000  # base + deps + model layers and the weights
    reply = httpx.post(f"http://127.0.0.1:{PORT}/v1/chat/completions", json=CHAT, timeout=120)
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"] is not None
    labels = labels_on_b(server_b)
    assert labels["org.llm-installer.lock-hash"] == record["lock_hash"]
    container = server_b.client().containers.get(NAME)
    assert container.attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert container.attrs["HostConfig"]["PortBindings"]["8000/tcp"][0]["HostIp"] == "127.0.0.1"
    assert FAKE_TOKEN not in json.dumps(container.attrs)  # neither in its env nor its labels
    mounts = {m["Destination"]: m for m in container.attrs["Mounts"]}
    assert mounts["/model"]["Type"] == "volume" and mounts["/model"]["RW"] is False


def test_second_deploy_of_the_same_lock_sends_nothing(deploy_home, installed_tiny, server_b):
    before = server_b.client().containers.get(NAME).id
    record = deploy_json(deploy_home["env"], server_b.url)
    assert record["bytes_sent"] == 0
    assert record["started"] is False
    assert server_b.client().containers.get(NAME).id == before  # not restarted


def test_an_image_sharing_layers_sends_only_its_own(installed_tiny, server_b, local_engine):
    """Like a second model of the same family: every layer but the last is on B already."""
    import io

    from llm_installer.deploy.images import send_image

    lock = json.loads((installed_tiny / "llm.lock.json").read_text())
    dockerfile = f"FROM {lock['images']['model']['id']}\nRUN echo second-model > /tmp/marker\n"
    tag = "deploytest/second-model:local"
    image, _ = local_engine.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True)
    try:
        sent = send_image(local_engine, server_b.client(), tag, image.id)
        assert sent.layers_sent == 1 and sent.layers_skipped == len(
            lock["images"]["model"]["layers"]
        )
        assert sent.bytes_sent < 1_000_000, sent
        output = server_b.client().containers.run(tag, ["cat", "/tmp/marker"], remove=True)
        assert output.strip() == b"second-model"
    finally:
        local_engine.images.remove(tag, force=True)
        server_b.client().images.remove(tag, force=True)


def test_a_changed_byte_on_b_is_refused_with_the_file_named(deploy_home, installed_tiny, server_b):
    client = server_b.client()
    volume = next(
        m["Name"]
        for m in client.containers.get(NAME).attrs["Mounts"]
        if m["Destination"] == "/model"
    )
    image = client.containers.get(NAME).image.id
    script = (
        "p='/model/config.json'; d=bytearray(open(p,'rb').read()); d[3]^=1; open(p,'wb').write(d)"
    )
    client.containers.run(
        image,
        ["python", "-c", script],
        user="0",
        remove=True,
        volumes={volume: {"bind": "/model", "mode": "rw"}},
    )
    env = deploy_home["env"]
    for args in (
        ("verify", "deploy-tiny", "--host", server_b.url),
        ("deploy", "deploy-tiny", "--host", server_b.url, "--name", NAME, "--port", str(PORT)),
    ):
        result = run_installer(env, *args)
        assert result.returncode == 67, result.stdout + result.stderr
        assert "config.json" in result.stderr and "Traceback" not in result.stderr
    record = deploy_json(env, server_b.url, "--resend-weights")
    assert 0 < record["bytes_sent"] < 5_000_000  # the weights again, no image layer
    assert run_installer(env, "verify", "deploy-tiny", "--host", server_b.url).returncode == 0


def test_local_change_needs_a_new_lock_then_rollback_returns(deploy_home, installed_tiny, server_b):
    env = deploy_home["env"]
    info = json.loads((installed_tiny / "model_info.json").read_text())
    generation = Path(info["weights_path"]) / "generation_config.json"
    first = labels_on_b(server_b)["org.llm-installer.lock-hash"]
    data = json.loads(generation.read_text())
    generation.write_text(json.dumps({**data, "max_new_tokens": 9}))
    refused = run_installer(
        env, "deploy", "deploy-tiny", "--host", server_b.url, "--name", NAME, "--port", str(PORT)
    )
    assert refused.returncode == 61 and "generation_config.json" in refused.stderr
    assert run_installer(env, "lock", "deploy-tiny").returncode == 0
    second = deploy_json(env, server_b.url)
    assert second["started"] and second["lock_hash"] != first
    result = run_installer(env, "rollback", "deploy-tiny", "--host", server_b.url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert labels_on_b(server_b)["org.llm-installer.lock-hash"] == first
    assert httpx.get(f"http://127.0.0.1:{PORT}/health/ready", timeout=10).status_code == 200
    listed = run_installer(env, "deployments", "--host", server_b.url, "--json")
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert (
        rows[NAME]["lock_hash"] == first
        and rows[f"{NAME}-previous"]["lock_hash"] == second["lock_hash"]
    )


def test_k8s_manifests_of_the_installed_model_validate(deploy_home, installed_tiny, tmp_path):
    import kubernetes_validate
    import yaml

    result = run_installer(deploy_home["env"], "k8s", "deploy-tiny", "-o", str(tmp_path / "k8s"))
    assert result.returncode == 0, result.stdout + result.stderr
    documents = [
        d
        for f in sorted((tmp_path / "k8s").glob("*.yaml"))
        for d in yaml.safe_load_all(f.read_text())
    ]
    for document in documents:
        if document["kind"] != "Kustomization":
            kubernetes_validate.validate(document, "1.30", strict=True)
    lock = json.loads((installed_tiny / "llm.lock.json").read_text())
    deployment = next(
        d for d in documents if d["kind"] == "Deployment" and d["metadata"]["name"] == "deploy-tiny"
    )
    assert (
        deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        == lock["images"]["model"]["tag"]
    )
    assert FAKE_TOKEN not in "".join(f.read_text() for f in (tmp_path / "k8s").glob("*.yaml"))


def test_undeploy_removes_containers_and_volumes(deploy_home, server_b):
    result = run_installer(deploy_home["env"], "undeploy", NAME, "--host", server_b.url, "--purge")
    assert result.returncode == 0, result.stdout + result.stderr
    client = server_b.client()
    assert not client.containers.list(all=True, filters={"label": "org.llm-installer.deployment"})
    assert not [v for v in client.volumes.list() if v.name.startswith("llm-weights-")]
    again = run_installer(deploy_home["env"], "rollback", NAME, "--host", server_b.url)
    assert again.returncode == 66 and "not deployed" in again.stderr


def test_export_import_into_b_then_start_sh_serves(deploy_home, installed_tiny, server_b, tmp_path):
    env = deploy_home["env"]
    bundle = tmp_path / "tiny.llmb"
    result = run_installer(env, "export", "deploy-tiny", "-o", str(bundle), "--compress")
    assert result.returncode == 0, result.stdout + result.stderr
    truncated = tmp_path / "truncated.llmb"
    with bundle.open("rb") as source, truncated.open("wb") as cut:
        cut.write(source.read(bundle.stat().st_size // 2))
    models_b = tmp_path / "b-models"
    env_b = {**env, "LLM_INSTALLER_MODELS_DIR": str(models_b), "DOCKER_HOST": server_b.url}
    refused = run_installer(env_b, "import", str(truncated))
    assert (
        refused.returncode == 62
        and "truncated" in refused.stderr
        and str(truncated) in refused.stderr
    )
    assert not (models_b / "deploy-tiny").exists()
    result = run_installer(env_b, "import", str(bundle))
    assert result.returncode == 0, result.stdout + result.stderr
    folder = models_b / "deploy-tiny"
    assert (folder / ".install_complete").exists() and (
        folder / "model" / "model.safetensors"
    ).is_file()
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
        assert server_b.client().containers.list(
            filters={"name": "llm-deploy-tiny"}
        )  # on B, not here
    finally:
        run_installer(env_b, "stop", str(folder))
    scanned = assert_no_token(
        [
            bundle,
            *folder.rglob("*.json"),
            *deploy_home["home"].rglob("*.log"),
            *deploy_home["home"].rglob("*.jsonl"),
            installed_tiny / "llm.lock.json",
        ]
    )
    assert bundle in scanned and len(scanned) > 3
