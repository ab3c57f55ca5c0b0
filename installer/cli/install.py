"""``llm-installer install MODEL``: download, build the image, smoke-test, write start.sh / train.sh."""

from __future__ import annotations

from typing import Annotated

import typer

from llm_installer.cli.common import run_command
from llm_installer.cli.options import ConfigOpt, ModelArg, RevisionOpt
from llm_installer.console import Output
from llm_installer.settings import Settings


def install(
    model: ModelArg,
    revision: RevisionOpt = None,
    quantization: Annotated[
        str | None, typer.Option(help="4bit or 8bit (bitsandbytes, CUDA only).")
    ] = None,
    device: Annotated[
        str | None, typer.Option(help="auto, cuda or cpu (default: config default_device).")
    ] = None,
    base_image: Annotated[
        str | None, typer.Option(help="cpu, cuda, cuda-devel, or an image tag.")
    ] = None,
    yes: Annotated[
        bool,
        typer.Option(
            "--yes",
            "-y",
            help="Answer yes: reinstall, make local weights readable, build the base offline.",
        ),
    ] = False,
    trust_remote_code: Annotated[
        bool,
        typer.Option("--trust-remote-code", help="Allow the repo's own Python code (auto_map)."),
    ] = False,
    rootfs: Annotated[
        bool,
        typer.Option(
            "--rootfs", envvar="LLM_INSTALLER_ROOTFS", help="Make a missing base image offline."
        ),
    ] = False,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Rebuild the dependency layer from scratch.")
    ] = False,
    base: Annotated[
        str | None,
        typer.Option(
            help="A PEFT adapter's base model (Hub id or folder); default: its adapter_config.json."
        ),
    ] = None,
    quant: Annotated[
        str | None,
        typer.Option(
            help="A GGUF repo's quantization, e.g. Q4_K_M; default: the largest that fits."
        ),
    ] = None,
    engine: Annotated[
        str,
        typer.Option(
            help="auto, vllm or transformers: what generates (auto: vLLM where it serves the model)."
        ),
    ] = "auto",
    config: ConfigOpt = None,
) -> None:
    """Download a model, build its Docker image, smoke-test it and write start.sh / train.sh."""
    from llm_installer.build.install import InstallOptions, install_model, summary

    if quantization not in (None, "4bit", "8bit"):
        raise typer.BadParameter("--quantization must be 4bit or 8bit")
    if engine not in ("auto", "vllm", "transformers"):
        raise typer.BadParameter("--engine must be auto, vllm or transformers")

    def body(settings: Settings, output: Output) -> None:
        options = InstallOptions(
            revision=revision, quantization=quantization, device=device, base_image=base_image,
            yes=yes, trust_remote_code=trust_remote_code, rootfs=rootfs, no_cache=no_cache, base=base, quant=quant, engine=engine,
        )  # fmt: skip
        info = install_model(model, options, settings, output)
        from llm_installer.docker_engine import connect

        shared = connect().images.get(info.image["deps_image"]).attrs.get("Size", 0)
        output.info(summary(info, shared))

    run_command(False, config, body)
