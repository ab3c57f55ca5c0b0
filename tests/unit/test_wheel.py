"""The wheel (`pip wheel .`) holds every module and data file, and reads its data from itself."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
from test_runargs import INFO, MAC, PATHS
from wheel_build import CHECKOUT, build_wheel

from llm_installer.run.start_plan import StartOptions, plan_start

DATA_FOLDERS = ("dockerfiles", "base-images", "compose")
PACKAGES = {"installer": "llm_installer", "runtime": "llm_runtime"}
PROBE = """
import hashlib, json, sys
import llm_installer, llm_runtime
from llm_installer.resources import data_file, templates
paths = json.loads(sys.argv[1])
env = templates()
print(json.dumps({
    "installer": llm_installer.__file__, "runtime": llm_runtime.__file__,
    "files": {p: [str(data_file(*p.split("/"))),
                  hashlib.sha256(data_file(*p.split("/")).read_bytes()).hexdigest()] for p in paths},
    "templates": {n: env.get_template(n).filename for n in env.list_templates() if n.endswith(".j2")},
}))
"""


def checkout_files() -> list[str]:
    """Every file of the data folders and the two packages, as repository paths."""
    found = []
    for folder in (*DATA_FOLDERS, *PACKAGES):
        for path in sorted((CHECKOUT / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                found.append(path.relative_to(CHECKOUT).as_posix())
    return found


def wheel_name(repo_path: str) -> str:
    """Where the wheel keeps a repository file (pyproject.toml's mapping)."""
    top, rest = repo_path.split("/", 1)
    if top in PACKAGES:
        return f"{PACKAGES[top]}/{rest}"
    return f"llm_installer/_data/{top.replace('-', '_')}/{rest}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


def test_the_wheel_lists_every_module_template_table_and_constraints_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [p for p in checkout_files() if wheel_name(p) not in names]
    assert not missing, (
        f"not in the wheel: {missing} (a new package goes into [tool.setuptools] packages "
        "and its data files into package-data, in pyproject.toml)"
    )
    for required in (
        "llm_installer/_data/dockerfiles/constraints.txt",
        "llm_installer/_data/dockerfiles/model.Dockerfile.j2",
        "llm_installer/_data/base_images/table.json",
        "llm_installer/_data/compose/stack.yml.j2",
        "llm_installer/check/vllm_architectures.json",
        "llm_runtime/ui/index.html",
    ):
        assert required in names
    entry = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    script = zipfile.ZipFile(wheel).read(entry).decode()
    module = script.split("llm-installer = ", 1)[1].split(":", 1)[0]
    assert (
        f"{module.replace('.', '/')}.py" in names
        or f"{module.replace('.', '/')}/__init__.py" in names
    )


def test_an_unpacked_wheel_reads_every_data_file_and_template_from_itself(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    wanted = [p for p in checkout_files() if p.split("/", 1)[0] in DATA_FOLDERS]
    wanted.append("installer/check/vllm_architectures.json")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(site)}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(wanted)], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    probe = json.loads(result.stdout)
    assert Path(probe["installer"]).is_relative_to(site)
    assert Path(probe["runtime"]).is_relative_to(site)
    for repo_path, (found, digest) in probe["files"].items():
        assert Path(found).is_relative_to(site), repo_path
        assert digest == _sha256(CHECKOUT / repo_path), repo_path
    templates = {p.rsplit("/", 1)[1] for p in wanted if p.endswith(".j2")}
    assert set(probe["templates"]) == templates
    assert all(Path(f).is_relative_to(site) for f in probe["templates"].values())


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_mac_venv_gets_the_runtime_from_a_wheel_install(wheel, tmp_path):
    """macOS native start from a pip/pipx install: no checkout to install editable, so the runtime
    package is copied from site-packages (as into the image) beside its extra's requirements."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    plan = plan_start(INFO, replace(PATHS, installer_dir=site), MAC, StartOptions())
    assert not any("-e" in step for step in plan.setup)
    copy = next(step for step in plan.setup if "llm_runtime" in " ".join(step[1:]))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    subprocess.run([python, *copy[1:]], check=True, timeout=60)
    found = subprocess.run(
        [python, "-c", "import llm_runtime.ui; print(llm_runtime.ui.index_html()[:200])"],
        cwd=tmp_path, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert "<html" in found.stdout.lower()
    install = plan.setup[-1]
    assert (
        Path(install[install.index("--constraint") + 1]).read_text()
        == (CHECKOUT / "dockerfiles" / "constraints.txt").read_text()
    )
    (metadata,) = site.glob("llm_installer-*.dist-info/METADATA")
    runtime = [
        line.split(" ", 1)[1].split(";")[0].strip()
        for line in metadata.read_text().splitlines()
        if line.startswith("Requires-Dist:") and 'extra == "runtime"' in line
    ]
    assert len(runtime) > 10 and set(runtime) <= set(install), runtime
