"""`compose --swarm` against a real one-node Swarm (a third dockerd advertising a fake GPU).

The generated stack is deployed with the real `docker stack deploy`; the gateway answers a chat
with the API key from the stack's Swarm secret; of two replicas that each reserve one
NVIDIA-GPU, one runs on the node that advertises it and the other stays pending.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import httpx
import pytest
import yaml
from deploy_helpers import FAKE_TOKEN, assert_no_token, free_port, run_installer

pytestmark = [pytest.mark.docker, pytest.mark.slow]
KEY = "swarm-test-key-0123456789"
CHAT = {"model": "deploy-tiny", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 3}
STACK = "llm-stack-swarmtest"


@pytest.fixture(scope="module")
def swarm_node(server_b_requirements):
    from swarmnode import start_swarm_node, stop_swarm_node

    node = start_swarm_node()
    yield node
    stop_swarm_node(node)


@pytest.fixture(scope="module")
def server_b_requirements():
    import shutil

    if os.geteuid() != 0 or not shutil.which("dockerd"):
        if os.environ.get("CI"):
            pytest.fail("CI needs root and dockerd (the Swarm test engine)")
        pytest.skip("root and dockerd (the Swarm test engine)")


def compose_swarm(env: dict, folder, *extra: str):
    return run_installer(
        env, "compose", "deploy-tiny", "--swarm", "--output", str(folder), *extra, timeout=120
    )


def test_bad_swarm_options_exit_2_and_write_nothing(deploy_home, installed_tiny, tmp_path):
    for extra, words in (
        (("--replicas", "-1"), "--replicas"),
        (("--weights", "nfs"), "--weights"),
        (("--constraint", "node.labels.gpu"), "=="),
    ):
        result = compose_swarm(deploy_home["env"], tmp_path / "bad", *extra)
        assert result.returncode == 2, result.stdout + result.stderr
        assert words in result.stdout + result.stderr
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "bad").exists()


def _tasks(node, service: str) -> list[dict]:
    return node.client().api.tasks(filters={"service": service})


def _wait(what: str, check, timeout: float = 150):
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (httpx.HTTPError, OSError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(2)
    raise AssertionError(f"{what} did not happen in {timeout} s (last: {last!r})")


def _chat(port: int) -> httpx.Response | None:
    reply = httpx.post(
        f"http://127.0.0.1:{port}/v1/chat/completions",
        json=CHAT,
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=60,
    )
    return reply if reply.status_code == 200 else None


def test_stack_deploys_serves_and_schedules_the_fake_gpu(
    deploy_home, installed_tiny, swarm_node, local_engine, tmp_path
):
    model_port, gateway_port = free_port(), free_port()
    result = compose_swarm(
        deploy_home["env"], tmp_path, "--name", "swarmtest", "--gpus", "1", "--replicas", "2",
        "--constraint", "node.labels.gpu==true", "--api-key", KEY,
        "--port-base", str(model_port), "--gateway-port", str(gateway_port),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    printed = " ".join(result.stdout.split())
    assert (
        f"docker stack deploy --resolve-image never -c {tmp_path / 'docker-stack.yml'}" in printed
    )
    assert f"docker stack rm {STACK}" in printed
    stack_text = (tmp_path / "docker-stack.yml").read_text()
    assert KEY not in stack_text and (tmp_path / "api_key").stat().st_mode & 0o077 == 0
    assert_no_token(tmp_path.iterdir())
    spec = yaml.safe_load(stack_text)["services"]["deploy-tiny"]
    assert spec["deploy"]["resources"]["reservations"]["generic_resources"] == [
        {"discrete_resource_spec": {"kind": "NVIDIA-GPU", "value": 1}}
    ]

    image = json.loads((installed_tiny / "llm.lock.json").read_text())["images"]["model"]
    saved = local_engine.images.get(image["id"]).save(chunk_size=1 << 20, named=image["tag"])
    swarm_node.client().images.load(saved)  # docker save | docker load, through docker-py
    assert swarm_node.client().images.get(image["tag"]).id == image["id"]
    env = {**deploy_home["env"], "DOCKER_HOST": swarm_node.url}
    deploy = subprocess.run(
        ["docker", "stack", "deploy", "--resolve-image", "never", "-c", "docker-stack.yml", STACK],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    assert "unsupported" not in deploy.stdout + deploy.stderr  # every key of the file is used
    try:
        reply = _wait("a chat through the gateway", lambda: _chat(gateway_port))
        assert reply.json()["choices"][0]["message"]["content"] is not None
        denied = httpx.post(f"http://127.0.0.1:{gateway_port}/v1/chat/completions", json=CHAT)
        assert denied.status_code == 401
        assert httpx.get(f"http://127.0.0.1:{model_port}/health", timeout=10).status_code == 200

        tasks = _tasks(swarm_node, f"{STACK}_deploy-tiny")
        running = [t for t in tasks if t["Status"]["State"] == "running"]
        pending = [t for t in tasks if t["Status"]["State"] == "pending"]
        assert len(running) == 1 and len(pending) == 1, [t["Status"] for t in tasks]
        container_id = running[0]["Status"]["ContainerStatus"]["ContainerID"]
        container = swarm_node.client().containers.get(container_id)
        assert "DOCKER_RESOURCE_NVIDIA-GPU=GPU-fake0" in container.attrs["Config"]["Env"]
        assert "insufficient resources" in pending[0]["Status"]["Err"]
        assert FAKE_TOKEN not in json.dumps(_tasks(swarm_node, f"{STACK}_gateway"))
    finally:
        removed = subprocess.run(
            ["docker", "stack", "rm", STACK], env=env, capture_output=True, text=True, timeout=60
        )
    assert removed.returncode == 0, removed.stderr
    assert not swarm_node.client().services.list()


def test_weights_volume_is_the_one_deploy_fills(deploy_home, installed_tiny, tmp_path):
    from llm_installer.deploy.lock import read_lock
    from llm_installer.deploy.volumes import volume_name

    result = compose_swarm(deploy_home["env"], tmp_path, "--weights", "volume")
    assert result.returncode == 0, result.stdout + result.stderr
    stack = yaml.safe_load((tmp_path / "docker-stack.yml").read_text())
    volume = volume_name(read_lock(installed_tiny))
    assert stack["services"]["deploy-tiny"]["volumes"][0]["source"] == volume
    assert stack["volumes"][volume] == {"external": True}
