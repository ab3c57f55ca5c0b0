"""Generated Dockerfiles against golden files, and the base image table (UPDATE_GOLDEN=1 rewrites)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from llm_installer import __version__
from llm_installer.build.base_images import (
    base_table,
    choose_flavour,
    flavours,
    render_base_dockerfile,
)
from llm_installer.build.buildenv import PipSettings, write_buildenv
from llm_installer.build.image import (
    dependency_set,
    needs_compiler,
    plan_image,
    render_model_dockerfile,
)

GOLDEN = Path(__file__).parent / "golden_dockerfiles"
PROFILE = {
    "model_id": "Qwen/Qwen3-0.6B",
    "family": "text-generation",
    "sha": "c1899de289a04d12100db370d81485cdf75e47ca",
    "revision": None,
    "requirements": {
        "packages": ["torch", "transformers", "accelerate"],
        "architecture": [],
    },
}
FREEZE = "accelerate==1.15.0\ntransformers==5.23.0\ntorch==2.13.0+cpu\n"


def golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") or not path.exists():
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"{path} differs; UPDATE_GOLDEN=1 regenerates it"


@pytest.mark.parametrize("name", sorted(base_table()["flavours"]))
def test_base_dockerfiles(name):
    row = flavours()[name]
    golden(
        f"base-{name}.Dockerfile",
        render_base_dockerfile(row, os_image=row.os_image, torch_index=row.torch_index),
    )


def test_base_dockerfile_offline_uses_the_rootfs_and_no_index():
    row = flavours()["cpu"]
    text = render_base_dockerfile(row, os_image=base_table()["rootfs_image"], torch_index=None)
    assert (
        text.startswith("# llm-installer base image")
        and "FROM llm-installer/rootfs:bookworm AS os" in text
    )
    assert "--extra-index-url" not in text


def test_dependency_and_model_dockerfiles():
    plan = plan_image(PROFILE, "llm-installer/base:cpu-torch2.13.0")
    golden("deps-text-generation.Dockerfile", plan.deps_dockerfile)
    model = render_model_dockerfile(PROFILE, plan, FREEZE)
    golden("model-qwen3.Dockerfile", model.replace(__version__, "<version>"))
    assert "COPY model_info.json" in model and "USER llm" in model and "HEALTHCHECK" in model
    assert "HF_HUB_OFFLINE=1" in model and "/model" in model
    assert "safetensors" not in model.split("# model-specific")[1].lower()  # never weights


def test_cuda_images_install_a_pinned_bitsandbytes_and_cpu_images_do_not():
    """QLoRA, --use-8bit, the 8-bit optimizers and --load-in-4bit need it; only CUDA runs them."""
    cuda = plan_image(PROFILE, "llm-installer/base:cuda-torch2.13.0", cuda=True)
    golden("deps-text-generation-cuda.Dockerfile", cuda.deps_dockerfile)
    assert "bitsandbytes" in cuda.packages and "bitsandbytes" in cuda.deps_dockerfile
    cpu = plan_image(PROFILE, "llm-installer/base:cpu-torch2.13.0")
    assert "bitsandbytes" not in cpu.packages and "bitsandbytes" not in cpu.deps_dockerfile
    assert cuda.deps_tag != cpu.deps_tag
    assert "--constraint /etc/llm-installer/constraints.txt" in cuda.deps_dockerfile
    assert "bitsandbytes" in _pins()


def test_same_family_same_dependency_image():
    other = {**PROFILE, "model_id": "meta-llama/Llama-3.2-1B", "sha": "0" * 40}
    one, two = (plan_image(p, "base:x") for p in (PROFILE, other))
    assert one.deps_tag == two.deps_tag and one.model_tag != two.model_tag
    embedding = {
        **PROFILE,
        "requirements": {"packages": ["torch", "sentence-transformers"], "architecture": []},
    }
    assert plan_image(embedding, "base:x").deps_tag != one.deps_tag
    assert "torch" not in dependency_set(PROFILE)  # in the base image already
    assert list(dependency_set(PROFILE)) == sorted(dependency_set(PROFILE))


def test_model_image_tag_is_unique_per_llm_home(tmp_path):
    """Two LLM homes holding a model folder of the same name (a local model, no revision) must
    not share a tag: the second build would replace the image the first home's start.sh runs."""
    local = {**PROFILE, "model_id": "my-model", "sha": None, "revision": None}
    first = tmp_path / "home-a" / "LLM" / "my-model"
    second = tmp_path / "home-b" / "LLM" / "my-model"
    tags = [plan_image(local, "base:x", model_dir=d).model_tag for d in (first, second)]
    assert tags[0] != tags[1]
    assert all(t.startswith("llm-installer/model-my-model:local-") for t in tags)
    again = plan_image(local, "base:x", model_dir=tmp_path / "home-a" / "LLM" / "." / "my-model")
    assert again.model_tag == tags[0]  # a reinstall in the same home keeps (replaces) its image
    vllm = plan_image(local, "base:x", engine="vllm", model_dir=second).model_tag
    assert vllm == tags[1]
    name, _, version = tags[0].partition(":")
    assert re.fullmatch(r"[a-z0-9._/-]+", name) and re.fullmatch(
        r"[a-z0-9][a-z0-9._-]{0,127}", version
    )


def _pins() -> set[str]:
    text = (Path(__file__).parents[2] / "dockerfiles" / "constraints.txt").read_text()
    return {line.split("==")[0].lower() for line in text.splitlines() if "==" in line}


def test_every_dependency_is_pinned():
    assert {p.lower() for p in dependency_set(PROFILE, cuda=True)} <= _pins()


def test_base_table_rows_are_consistent():
    for name, row in flavours().items():
        assert row.torch and row.os_image
        if row.cuda:
            assert row.torch_index.endswith("cu" + row.cuda.replace(".", "")), name
            assert row.min_driver
        else:
            assert row.torch_index.endswith("/cpu")
    assert choose_flavour("cpu").name == "cpu"
    assert choose_flavour("cuda").name == "cuda-cu130"  # no GPU to judge: the table's first line
    assert choose_flavour("cuda", needs_compiler=True).name == "cuda-devel-cu130"
    readme = (Path(__file__).parents[2] / "base-images" / "README.md").read_text()
    for name, row in flavours().items():
        assert f"`{name}`" in readme and row.torch in readme  # the table is documented


def test_compiled_packages_pick_the_devel_base():
    mamba = {
        **PROFILE,
        "requirements": {
            "packages": ["mamba-ssm"],
            "architecture": ["mamba-ssm (requires CUDA compilation)"],
        },
    }
    assert needs_compiler(mamba) and not needs_compiler(PROFILE)


def test_buildenv_carries_pip_settings_and_ca_but_no_credentials(tmp_path):
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "torch-2.13.0+cpu-cp311-cp311-linux_x86_64.whl").write_bytes(b"wheel")
    (wheels / "numpy-2.0-cp311-linux_x86_64.whl").write_bytes(b"other")
    settings = PipSettings(
        index_url="https://mirror.example/simple", extra_index_urls=("https://extra.example/simple",),
        find_links=(str(wheels),), trusted_hosts=("mirror.example",), timeout="120", ca_bundle=ca,
    )  # fmt: skip
    target = write_buildenv(settings, tmp_path / "context", wheels=("torch",))
    conf = (target / "pip.conf").read_text()
    assert (
        "index-url = https://mirror.example/simple" in conf
        and "trusted-host = mirror.example" in conf
    )
    assert "cert = /etc/llm-installer/ca-certificates.crt" in conf
    assert (target / "ca-certificates.crt").read_text() == ca.read_text()
    assert sorted(p.name for p in (target / "wheels").iterdir()) == [
        "torch-2.13.0+cpu-cp311-cp311-linux_x86_64.whl"
    ]


def test_credentials_are_stripped_from_index_urls(monkeypatch):
    from llm_installer.build import buildenv

    monkeypatch.setattr(
        buildenv,
        "_pip_config_values",
        lambda: {"index-url": "https://user:s3cret@mirror.example/simple"},
    )
    settings = buildenv.host_pip_settings()
    assert settings.index_url == "https://mirror.example/simple"
    assert any("credentials were stripped" in note for note in settings.notes)
