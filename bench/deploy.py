"""Deploy time and bytes sent: first and second deploy of a model (and a second model of the same
family) to an empty second Docker engine, side by side with plain ``docker save | docker load`` +
a copy of the weights on the same machine.

    python bench/deploy.py MODEL [SECOND_MODEL]      (installed models; needs root for server B)

Server B is the tests' second dockerd (tests/deploy/serverb.py): its own socket, data root and
bridge, started empty and removed afterwards.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "deploy"))

from serverb import start_server_b, stop_server_b  # noqa: E402

from llm_installer.deploy.lock import installed, read_lock  # noqa: E402
from llm_installer.settings import load_settings  # noqa: E402


def deploy(model: str, host: str, port: int) -> dict:
    command = [
        sys.executable,
        "-m",
        "llm_installer",
        "deploy",
        model,
        "--host",
        host,
        "--port",
        str(port),
        "--json",
    ]
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"deploy failed: {result.stdout}{result.stderr}")
    record = json.loads(result.stdout)
    return {"seconds": time.monotonic() - started, "bytes": record["bytes_sent"]}


def plain_copy(image: str, weights: Path, host: str) -> dict:
    """docker save | docker load into B, and cp -r of the weights (what people do by hand)."""
    started = time.monotonic()
    save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
    load = subprocess.Popen(
        ["docker", "-H", host, "load"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL
    )
    sent = 0
    while chunk := save.stdout.read(1 << 20):
        load.stdin.write(chunk)
        sent += len(chunk)
    load.stdin.close()
    if save.wait() or load.wait():
        sys.exit(f"docker save | docker load failed ({save.returncode}, {load.returncode})")
    with tempfile.TemporaryDirectory(dir="/var/tmp") as target:
        shutil.copytree(weights, Path(target) / "model")
    sent += sum(p.stat().st_size for p in weights.rglob("*") if p.is_file())
    return {"seconds": time.monotonic() - started, "bytes": sent}


def row(name: str, figures: dict, baseline: dict) -> str:
    ratio = figures["bytes"] / baseline["bytes"] if baseline["bytes"] else 0
    return f"{name:<34} {figures['seconds']:>8.2f} s {figures['bytes'] / 1e6:>12.3f} MB   {ratio:>6.3f}× bytes of plain"


def main() -> None:
    models = sys.argv[1:]
    if not models:
        sys.exit(__doc__)
    settings = load_settings(None)
    model_dir, _, weights = installed(models[0], settings)
    lock = read_lock(model_dir)
    server = start_server_b()
    try:
        baseline = plain_copy(lock["images"]["model"]["id"], weights, server.url)
        client = server.client()
        client.images.remove(lock["images"]["model"]["id"], force=True)
        assert not client.images.list(), "server B must be empty again"
        print(f"{'':<34} {'time':>10} {'sent':>15}")
        print(row("plain docker save|load + cp", baseline, baseline), flush=True)
        print(row("deploy, first", deploy(models[0], server.url, 18701), baseline), flush=True)
        print(
            row("deploy, same lock again", deploy(models[0], server.url, 18701), baseline),
            flush=True,
        )
        if len(models) > 1:
            figures = deploy(models[1], server.url, 18702)
            print(row("deploy, second model (same family)", figures, baseline), flush=True)
    finally:
        stop_server_b(server)


if __name__ == "__main__":
    main()
