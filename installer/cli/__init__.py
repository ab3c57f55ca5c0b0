"""The ``llm-installer`` command line: thin commands that parse, call a library function, print."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Annotated

import click
import typer

from llm_installer import __version__
from llm_installer.cli.options import ConfigOpt, JsonOpt, ModelArg, RevisionOpt
from llm_installer.console import Output, simple_table
from llm_installer.errors import InstallerError
from llm_installer.logs import setup_logging
from llm_installer.settings import Settings, load_settings

app = typer.Typer(
    name="llm-installer",
    help="Check, install, serve and fine-tune Hugging Face models in Docker.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: wraps at any width, never cuts option names
)
log = logging.getLogger("llm_installer")
UNEXPECTED_EXIT = 70  # sysexits' EX_SOFTWARE: a bug of ours
UNEXPECTED_HINT = "This is a bug: the traceback is in installer.log (logs_dir); LLM_INSTALLER_DEBUG=1 prints it here."


def _version(value: bool) -> None:
    if value:
        print(f"llm-installer {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version."
    ),
) -> None:
    """Check, install, serve and fine-tune Hugging Face models in Docker."""


def run_command(
    json_mode: bool, config_path: str | None, body: Callable[[Settings, Output], None]
) -> None:
    """Load settings, set up logging, run ``body``; turn every known error into a message."""
    output = Output(json_mode=json_mode)
    try:
        settings = load_settings(config_path)
        setup_logging(settings)
        body(settings, output)
    except InstallerError as exc:
        log.error("%s: %s", type(exc).__name__, exc.message)
        if os.environ.get("LLM_INSTALLER_DEBUG"):
            raise
        if json_mode:
            output.error_json(exc.message, exc.hint, exc.exit_code, type(exc).__name__)
        else:
            output.error(exc.message, exc.hint)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        output.error("Interrupted.")
        raise typer.Exit(130) from None
    except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
        raise  # typer's own exits and usage errors
    except Exception as exc:  # noqa: BLE001 - the last net: a message, never a traceback
        if os.environ.get("LLM_INSTALLER_DEBUG"):
            raise
        log.exception("Unexpected error")
        message = f"Unexpected error: {type(exc).__name__}: {str(exc)[:500]}"
        if json_mode:
            output.error_json(message, UNEXPECTED_HINT, UNEXPECTED_EXIT, "UnexpectedError")
        else:
            output.error(message, UNEXPECTED_HINT)
        raise typer.Exit(UNEXPECTED_EXIT) from None


@app.command()
def check(
    model: ModelArg,
    revision: RevisionOpt = None,
    json: JsonOpt = False,
    config: ConfigOpt = None,
    base: Annotated[
        str | None, typer.Option(help="A PEFT adapter's base model (Hub id or folder).")
    ] = None,
) -> None:
    """Check a model's family, requirements and whether this machine can run it (no weights)."""
    from llm_installer.check.checker import run_check
    from llm_installer.check.report import render_report

    def body(settings: Settings, output: Output) -> None:
        result = run_check(model, revision=revision, settings=settings, output=output, base=base)
        output.result(result.profile, render_report(result.profile))

    run_command(json, config, body)


@app.command()
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

        shared = connect().images.get(info["image"]["deps_image"]).attrs.get("Size", 0)
        output.info(summary(info, shared))

    run_command(False, config, body)


base_app = typer.Typer(help="Shared base images (OS + Python + torch).", no_args_is_help=True)
app.add_typer(base_app, name="base")


@base_app.command("build")
def base_build(
    flavour: Annotated[
        str,
        typer.Argument(
            help="cpu, cuda or cuda-devel (the CUDA line for this host's driver and GPUs), or a row of base-images/table.json."
        ),
    ] = "cpu",
    rootfs: Annotated[
        bool, typer.Option("--rootfs", help="Make the OS layer with debootstrap: no registry.")
    ] = False,
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Build even when the image exists.")
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Build a base image from the table: cpu, cuda or cuda-devel."""
    from llm_installer.build.base_images import ensure_base_image
    from llm_installer.build.base_images import flavour_for_this_host as find_flavour
    from llm_installer.docker_engine import connect

    def body(settings: Settings, output: Output) -> None:
        row = find_flavour(flavour)
        client = connect()
        log_path = settings.logs_path / "base-images.log"
        built = ensure_base_image(
            client, row, rootfs=rootfs, console=output.out, log_path=log_path, rebuild=rebuild
        )
        tag = built if isinstance(built, str) else built.tag
        output.info(f"Base image ready: [bold]{tag}[/] (build log: {log_path})")

    run_command(False, config, body)


@app.command(name="list")
def list_models(json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """List installed models with family, status and size."""
    from llm_installer.run.listing import installed_models

    def body(settings: Settings, output: Output) -> None:
        models = installed_models(settings.models_path)
        rows = [
            [
                m["name"],
                m["family"],
                m["image"],
                m["status"] + (f"\n{m['url']}" if m.get("url") else ""),
                m["size"],
            ]
            for m in models
        ]
        columns = ["Folder", "Family", "Image", "Status", "Size"]
        table = simple_table(f"Installed models in {settings.models_path}", columns, rows)
        output.result(models, table if models else f"No models installed in {settings.models_path}")

    run_command(json, config, body)


@app.command(name="config")
def show_config(json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Print the effective configuration and where each value came from."""

    def body(settings: Settings, output: Output) -> None:
        values = settings.public_dict()
        data = {"config_file": settings.config_file, "values": values, "sources": settings.sources}
        rows = [[key, value, settings.sources[key]] for key, value in values.items()]
        title = f"Configuration (file: {settings.config_file or 'none, defaults used'})"
        output.result(data, simple_table(title, ["Key", "Value", "Source"], rows))

    run_command(json, config, body)


def _register_more_commands() -> None:
    """Commands that live in their own modules (kept out of this file to keep it thin)."""
    try:
        from llm_installer.cli.run_commands import register
    except ImportError:  # pragma: no cover - while the module is being written
        return
    register(app, run_command)
    from llm_installer.run.stack import register as register_stack

    register_stack(app, run_command)
    from llm_installer.cli.deploy import register as register_deploy  # lock … undeploy

    register_deploy(app, run_command)


_register_more_commands()


def main() -> None:
    app(prog_name="llm-installer")


if __name__ == "__main__":
    main()
