"""The base image build refuses a torch that is not the flavour's build (real engine, offline).

A row that claims CUDA 13.0 but pins the local CPU wheel (the only torch here) must fail at the
build's assertion step. (The CPU row's own build is what every install test starts from.)
"""

from __future__ import annotations

import dataclasses

import pytest
from rich.console import Console

from llm_installer.build.base_images import build_base_image, flavours
from llm_installer.build.buildenv import host_pip_settings
from llm_installer.build.builder import ImageBuildError

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture
def local_cpu_wheel():
    from llm_installer.build.base_images import matching_torch_wheels

    if not matching_torch_wheels(host_pip_settings(), flavours()["cpu"]):
        pytest.fail("these tests need the torch CPU wheel in PIP_FIND_LINKS (CI: /opt/wheels)")


def test_a_cuda_named_base_with_a_cpu_torch_fails_the_build(
    docker_client, rootfs_image, local_cpu_wheel, tmp_path
):
    fake = dataclasses.replace(
        flavours()["cpu"], name="gputest-fake-cu130", cuda="13.0"
    )  # CPU wheel, CUDA claim
    with pytest.raises(ImageBuildError) as caught:
        build_base_image(
            docker_client, fake, rootfs=True, console=Console(quiet=True), log_path=tmp_path / "log"
        )
    text = caught.value.log_tail + (tmp_path / "log").read_text()
    assert "is not the CUDA 13.0 build of gputest-fake-cu130" in text
    assert not docker_client.images.list(name="llm-installer/base:gputest-fake-cu130*")
