"""`compose --swarm` without an engine: the stack file's text for CPU and GPU models.

test_swarm.py deploys the file on a real Swarm; here its keys are checked one by one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from llm_installer.cli import app

runner = CliRunner()
TOKEN = "hf_swarmStackTestToken0123456789"


def fake_install(models: Path, folder: str, model_id: str, device: str) -> Path:
    model_dir = models / folder
    (model_dir / "model").mkdir(parents=True)
    info = {"model_id": model_id, "family": "text-generation", "device": device}
    info["image"] = {"tag": f"img/{folder}:1"}
    (model_dir / "model_info.json").write_text(json.dumps(info))
    (model_dir / ".install_complete").write_text("")
    return model_dir


@pytest.fixture
def models(llm_home, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.delenv("LLM_API_KEY", raising=False)
    root = llm_home / "models"
    return fake_install(root, "cpu_m", "org/cpu$m", "cpu"), fake_install(root, "gpu_m", "g", "cuda")


def swarm(*args: str):
    return runner.invoke(app, ["compose", "cpu_m", "gpu_m", "--swarm", "--name", "fleet", *args])


def test_gpu_models_reserve_generic_resources_and_ports_are_host_mode(models, llm_home):
    cpu_dir, gpu_dir = models
    result = swarm(
        "--replicas", "3", "--constraint", "node.labels.gpu==true", "--port-base", "9100"
    )
    assert result.exit_code == 0, result.output
    printed = " ".join(result.output.split())
    assert "docker stack deploy --resolve-image never -c" in printed
    assert "docker stack rm llm-stack-fleet" in printed and "No API key" in printed
    folder = llm_home / "stacks" / "fleet"
    text = (folder / "docker-stack.yml").read_text()
    assert TOKEN not in text and "org/cpu$$m" in text  # `$` doubled: stack files interpolate
    stack = yaml.safe_load(text)
    cpu, gpu, gateway = (stack["services"][k] for k in ("cpu_m", "gpu_m", "gateway"))
    assert "resources" not in cpu["deploy"]
    assert gpu["deploy"]["resources"]["reservations"]["generic_resources"] == [
        {"discrete_resource_spec": {"kind": "NVIDIA-GPU", "value": 1}}
    ]
    for service, port in ((cpu, 9100), (gpu, 9101)):
        assert service["ports"] == [
            {"target": 8000, "published": port, "protocol": "tcp", "mode": "host"}
        ]
        assert service["deploy"]["replicas"] == 3 and service["deploy"]["endpoint_mode"] == "dnsrr"
        assert service["deploy"]["restart_policy"]["condition"] == "any"
        assert service["deploy"]["placement"]["constraints"] == ["node.labels.gpu==true"]
        assert "/health" in " ".join(service["healthcheck"]["test"])
        assert "secrets" not in service and service["command"][0] == "python"
    assert cpu["volumes"][0] == {
        "type": "bind", "source": str(cpu_dir / "model"), "target": "/model", "read_only": True
    }  # fmt: skip
    assert gpu["volumes"][2]["tmpfs"]["size"] == 2 * 2**30  # /dev/shm
    assert gateway["deploy"]["replicas"] == 1 and gateway["ports"][0]["published"] == 8080
    routes = json.loads(gateway["environment"]["LLM_GATEWAY_ROUTES"].replace("$$", "$"))
    assert [r["url"] for r in routes] == ["http://cpu_m:8000", "http://gpu_m:8000"]
    assert {c["target"] for c in gateway["configs"]} == {
        "/gateway/gateway.py",
        "/gateway/gateway_ui.html",
    }
    assert set(stack["configs"]) == {"gateway_py", "gateway_ui"} and "secrets" not in stack
    assert (folder / "gateway.py").is_file() and not (folder / "api_key").exists()


def test_api_key_is_a_secret_file_never_in_the_stack(models, llm_home):
    result = swarm("--api-key", "k3y-for-swarm", "--gpus", "0", "--weights", "bind")
    assert result.exit_code == 0, result.output
    folder = llm_home / "stacks" / "fleet"
    text = (folder / "docker-stack.yml").read_text()
    assert "k3y-for-swarm" not in text and "k3y-for-swarm" not in result.output
    assert (folder / "api_key").read_text() == "k3y-for-swarm"
    assert (folder / "api_key").stat().st_mode & 0o777 == 0o600
    stack = yaml.safe_load(text)
    assert stack["secrets"]["api_key"]["file"] == "./api_key"
    for service in stack["services"].values():
        assert service["secrets"] == [{"source": "api_key", "target": "llm_api_key"}]
        assert service["command"][:2] == ["sh", "-c"]  # LLM_API_KEY from /run/secrets
        assert "resources" not in service["deploy"]  # --gpus 0
    first = stack["secrets"]["api_key"]["name"]
    assert swarm("--api-key", "another-key").exit_code == 0  # a new key, a new secret name
    again = yaml.safe_load((folder / "docker-stack.yml").read_text())
    assert again["secrets"]["api_key"]["name"] != first
    assert swarm().exit_code == 0 and not (folder / "api_key").exists()  # no key: none lingers


def test_weights_volume_needs_the_lock(models):
    result = swarm("--weights", "volume")
    assert result.exit_code == 60, result.output
    assert "llm-installer lock" in result.output


def test_swarm_options_without_swarm_exit_2(models, llm_home):
    result = runner.invoke(app, ["compose", "cpu_m", "--replicas", "2"])
    assert result.exit_code == 2 and "--swarm" in result.output
    assert not (llm_home / "stacks").exists()
