"""A third Docker engine as a one-node Swarm that advertises a fake GPU, for the Swarm stack tests.

It is started by serverb.py's code with its own socket, data and exec roots and bridge
(``br-llmswarm``, 10.232.0.1/24), plus ``--node-generic-resource NVIDIA-GPU=GPU-fake0``. Its
``docker_gwbridge`` is made before ``swarm init`` with the interface name ``br-llmswgw``, so the
host-wide name ``docker_gwbridge`` (and the first engine's ``docker0``) are never touched.
"""

from __future__ import annotations

import subprocess
import time

from serverb import ServerB, _run, start_server_b, stop_server_b

SOCKET = "/var/run/llm-test-swarm.sock"
BRIDGE = "br-llmswarm"
ADDRESS = "10.232.0.1"
GW_BRIDGE = "br-llmswgw"
GW_SUBNET = "10.233.0.0/24"
FAKE_GPU = "GPU-fake0"


def start_swarm_node() -> ServerB:
    """The engine, its gateway bridge, ``swarm init`` and the node label ``gpu=true``."""
    if _run("ip", "link", "show", GW_BRIDGE).returncode == 0:
        raise RuntimeError(f"{GW_BRIDGE} exists: another Swarm test engine runs; stop it first")
    node = start_server_b(
        socket=SOCKET,
        bridge=BRIDGE,
        address=f"{ADDRESS}/24",
        extra_args=("--node-generic-resource", f"NVIDIA-GPU={FAKE_GPU}"),
    )
    try:
        client = node.client()
        client.networks.create(
            "docker_gwbridge",
            driver="bridge",
            ipam={"Config": [{"Subnet": GW_SUBNET}]},
            options={
                "com.docker.network.bridge.name": GW_BRIDGE,
                "com.docker.network.bridge.enable_icc": "false",
                "com.docker.network.bridge.enable_ip_masquerade": "false",
            },
        )
        client.swarm.init(advertise_addr=ADDRESS, listen_addr=f"{ADDRESS}:2377")
        me = client.nodes.get(client.info()["Swarm"]["NodeID"])
        spec = me.attrs["Spec"]
        me.update({**spec, "Labels": {**spec.get("Labels", {}), "gpu": "true"}})
    except Exception:
        stop_swarm_node(node)
        raise
    return node


def stop_swarm_node(node: ServerB) -> None:
    """Remove the services (and wait for their containers), ``swarm leave --force``, stop the
    engine, remove both bridges."""
    client = node.client()
    for service in client.services.list():
        service.remove()
    deadline = time.monotonic() + 60
    while client.containers.list(all=True) and time.monotonic() < deadline:
        time.sleep(1)
    subprocess.run(
        ["docker", "-H", node.url, "swarm", "leave", "--force"],
        capture_output=True,
        check=False,
        timeout=60,
    )
    stop_server_b(node)
    _run("ip", "link", "del", GW_BRIDGE)
