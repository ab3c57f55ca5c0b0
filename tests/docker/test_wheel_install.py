# ruff: noqa: F811 - install_env, imported from test_install, is a parameter of the test below
"""The wheel, installed (not editable) into a fresh venv, installs a tiny model and serves it.

No checkout is involved at run time: the installer, its templates and tables and the runtime
package copied into the model image all come from the venv (run from a folder outside the
checkout). The venv sees the third-party packages of this test's Python through a .pth file
instead of downloading them again.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from test_install import (  # noqa: F401 - install_env: a fixture
    chat_hello,
    free_port,
    install_env,
    readable,
    started,
)
from tiny_models import make_tiny_llama
from wheel_build import CHECKOUT, build_wheel

pytestmark = [pytest.mark.docker, pytest.mark.slow]
PROBE = (
    "import json, llm_installer, llm_runtime; from llm_installer.resources import data_file; "
    "print(json.dumps([llm_installer.__file__, llm_runtime.__file__, str(data_file('dockerfiles'))]))"
)


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed into it; its third-party packages through a .pth."""
    work = tmp_path_factory.mktemp("wheel-venv")
    wheel = build_wheel(work)
    venv = work / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], timeout=120)
    python = str(venv / "bin" / "python")
    run(
        [sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
         "--no-cache-dir", str(wheel)],
        timeout=300,
    )  # fmt: skip
    purelib = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    ours = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
    (Path(purelib.stdout.strip()) / "zz_test_dependencies.pth").write_text("\n".join(ours) + "\n")
    return venv


def test_the_installed_wheel_installs_starts_and_chats(
    install_env, wheel_venv, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # start.sh and the installer run outside the checkout
    env = {**install_env, "env": {k: v for k, v in install_env["env"].items() if k != "PYTHONPATH"}}
    python, cli = wheel_venv / "bin" / "python", wheel_venv / "bin" / "llm-installer"
    probe = json.loads(run([str(python), "-c", PROBE], env=env["env"], cwd=tmp_path).stdout)
    for path in probe:  # the wheel's copy: the installer, the runtime and the data files
        assert Path(path).is_relative_to(wheel_venv) and not Path(path).is_relative_to(CHECKOUT)

    folder = readable(make_tiny_llama(tmp_path / "wheel-tiny-llama", seed=31))
    began = time.monotonic()
    installed = run(
        [str(cli), "install", str(folder), "--yes"], env=env["env"], cwd=tmp_path, timeout=900
    )
    print(f"install from the wheel: {time.monotonic() - began:.0f} s")
    assert "Smoke test passed" in (install_env["models"] / folder.name / "install.log").read_text()
    model_dir = install_env["models"] / folder.name
    info = json.loads((model_dir / "model_info.json").read_text())
    assert info["installer_python"] == str(python), installed.stdout  # start.sh hands over to it

    url = started(env, model_dir, free_port())
    try:
        chat_hello(url)
        page = httpx.get(f"{url}/", timeout=30)  # the runtime's package data made it into the image
        assert page.status_code == 200 and "<html" in page.text.lower()
    finally:
        stopped = subprocess.run(
            [str(cli), "stop", str(model_dir)], env=env["env"], capture_output=True, text=True,
            timeout=120, check=False,
        )  # fmt: skip
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
