"""Commands lock, verify, export, import, push, pull, deploy, deployments, rollback, undeploy.

``COMMANDS`` is registered by ``installer/cli/__init__.py`` like every other command; each parses,
calls one library function of ``installer/deploy/`` and prints; ``run_command`` turns errors into
messages.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from llm_installer.cli.common import run_command
from llm_installer.cli.options import ConfigOpt, InstalledModelArg, JsonOpt
from llm_installer.console import Output, simple_table
from llm_installer.settings import Settings

TargetOpt = Annotated[
    str | None,
    typer.Option(
        "--host",
        help="A Docker host: ssh://user@server, tcp://host:2376 (TLS from DOCKER_CERT_PATH), "
        "unix:///path/docker.sock, or a docker context name.",
    ),
]
RequiredTargetOpt = Annotated[str, TargetOpt.__metadata__[0]]
ReplaceOpt = Annotated[bool, typer.Option("--yes", "-y", help="Replace an existing model folder.")]
log = logging.getLogger(__name__)


def _run(json_mode: bool, config: str | None, body: Callable[[Settings, Output], None]) -> None:
    def guarded(settings: Settings, output: Output) -> None:
        from docker.errors import DockerException
        from requests.exceptions import RequestException

        from llm_installer.deploy.errors import DeployFailedError

        try:
            body(settings, output)
        except (DockerException, RequestException) as exc:
            explanation = getattr(exc, "explanation", None) or exc
            raise DeployFailedError(f"The Docker engine refused: {explanation}") from exc
        except BrokenPipeError as exc:  # click would exit 1 without a word
            log.debug("Connection to the Docker host lost", exc_info=True)
            raise DeployFailedError(f"The connection to the Docker host broke: {exc}") from exc

    run_command(json_mode, config, guarded)


def lock(model: InstalledModelArg, config: ConfigOpt = None) -> None:
    """Write llm.lock.json in the model folder: weights' hashes, image IDs, versions, serve arguments."""
    from llm_installer.deploy.lock import installed, lock_install

    def body(settings: Settings, output: Output) -> None:
        model_dir, info, _ = installed(model, settings)
        path = lock_install(model_dir, info)
        output.info(f"Wrote {path}")

    _run(False, config, body)


def verify(model: InstalledModelArg, host: TargetOpt = None, config: ConfigOpt = None) -> None:
    """Re-hash the weights against llm.lock.json (with --host: the deployed weights there)."""

    def body(settings: Settings, output: Output) -> None:
        if host:
            output.info(f"Weights on {host} match the lock: {_verify_remote(model, host)}")
            return
        from llm_installer.deploy.lock import installed, verify_local

        model_dir, _, weights = installed(model, settings)
        lock_data = verify_local(model_dir, weights)
        output.info(
            f"[green]✓[/] {len(lock_data['files'])} files in {weights} match {model_dir / 'llm.lock.json'}"
        )

    _run(False, config, body)


def _verify_remote(model: str, host: str) -> str:
    import json

    from llm_installer.deploy.deploy import LABEL, labels_of
    from llm_installer.deploy.hosts import connect_host
    from llm_installer.deploy.manage import find_deployment
    from llm_installer.deploy.volumes import verify_volume

    client = connect_host(host)
    lock_data = json.loads(
        labels_of(find_deployment(client, model, host)).get(f"{LABEL}.lock", "{}")
    )
    return verify_volume(client, lock_data["images"]["model"]["id"], lock_data)


def export(
    model: InstalledModelArg,
    output_file: Annotated[Path, typer.Option("--output", "-o", help="The bundle file to write.")],
    compress: Annotated[bool, typer.Option("--compress", help="zstd-compress the bundle.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Write one bundle file (image, weights, lock) for an air-gapped server: `import` it there."""
    from llm_installer.deploy.bundle import export_model
    from llm_installer.run.listing import human_size

    def body(settings: Settings, output: Output) -> None:
        manifest = export_model(model, output_file, settings, output, compress=compress)
        size = human_size(Path(output_file).stat().st_size)
        output.info(
            f"Wrote {output_file} ({size}, lock {manifest['lock_hash'][:12]}); on the server: llm-installer import {Path(output_file).name}"
        )

    _run(False, config, body)


def import_bundle(
    bundle: Annotated[Path, typer.Argument(help="A bundle made by `llm-installer export`.")],
    host: TargetOpt = None,
    yes: ReplaceOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Check a bundle's every hash, load its image (DOCKER_HOST or --host), make the model folder."""
    from llm_installer.deploy.bundle import import_bundle as run_import

    def body(settings: Settings, output: Output) -> None:
        folder = run_import(bundle, settings, output, host=host, yes=yes)
        output.info(f"[green]✓[/] Imported into {folder}; start it with {folder / 'start.sh'}")

    _run(False, config, body)


UsernameOpt = Annotated[
    str | None,
    typer.Option("--username", "-u", help="Registry user (default: `docker login`'s config)."),
]
PasswordStdinOpt = Annotated[
    bool, typer.Option("--password-stdin", help="Read the registry password from standard input.")
]
InsecureOpt = Annotated[
    bool,
    typer.Option("--insecure", help="Plain HTTP to the registry (loopback registries always are)."),
]


def _credentials(username: str | None, password_stdin: bool, insecure: bool):
    import sys

    from llm_installer.deploy.errors import RegistryAuthError
    from llm_installer.deploy.registry import Credentials

    if password_stdin and not username:
        raise RegistryAuthError("--password-stdin needs --username")
    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else None
    return Credentials(username=username, password=password, insecure=insecure)


def push(
    model: InstalledModelArg,
    target: Annotated[
        str, typer.Argument(help="REGISTRY/NAMESPACE, e.g. registry.example.com/team.")
    ],
    username: UsernameOpt = None,
    password_stdin: PasswordStdinOpt = False,
    insecure: InsecureOpt = False,
    json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Push the model's image (by digest) and weights (a ModelPack OCI artifact) to a registry."""
    from llm_installer.deploy.registry import push_model

    def body(settings: Settings, output: Output) -> None:
        creds = _credentials(username, password_stdin, insecure)
        refs = push_model(model, target, settings, output, creds)
        text = (
            f"[green]✓[/] Pushed; both digests are in llm.lock.json (registry).\n"
            f"  image:   {refs['image']}\n  weights: {refs['weights']}\n"
            f"On a server: llm-installer pull {refs['weights']}"
        )
        output.result(refs, text)

    _run(json, config, body)


def pull(
    ref: Annotated[
        str,
        typer.Argument(help="What push printed: REGISTRY/NAMESPACE/NAME-weights@sha256:DIGEST."),
    ],
    host: TargetOpt = None,
    username: UsernameOpt = None,
    password_stdin: PasswordStdinOpt = False,
    insecure: InsecureOpt = False,
    yes: ReplaceOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Pull a pushed model: weights hashed against its lock, image by digest (DOCKER_HOST or --host)."""
    from llm_installer.deploy.registry import pull_model

    def body(settings: Settings, output: Output) -> None:
        creds = _credentials(username, password_stdin, insecure)
        folder = pull_model(ref, settings, output, creds, host=host, yes=yes)
        output.info(f"[green]✓[/] Pulled into {folder}; start it with {folder / 'start.sh'}")

    _run(False, config, body)


def deploy(
    model: InstalledModelArg,
    host: RequiredTargetOpt,
    port: Annotated[int, typer.Option("--port", "-p", help="Port on the target.")] = 8000,
    gpus: Annotated[
        str | None, typer.Option("--gpus", help="all, 0,1 or none (default: what the lock needs).")
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Container name on the target.")
    ] = None,
    bind: Annotated[
        str,
        typer.Option(
            "--bind", help="Address on the target to publish on; not 127.0.0.1 needs an API key."
        ),
    ] = "127.0.0.1",
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="LLM_API_KEY",
            help="Require this key (generated with --bind when absent).",
        ),
    ] = None,
    restart: Annotated[
        bool, typer.Option("--restart", help="Restart even when the same lock runs there.")
    ] = False,
    resend_weights: Annotated[
        bool, typer.Option("--resend-weights", help="Replace the weights volume on the target.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Deploy although the target's memory looks too small.")
    ] = False,
    registry: Annotated[
        str | None,
        typer.Option(
            "--registry",
            help="REGISTRY/NAMESPACE: push the image there, the target pulls it by digest.",
        ),
    ] = None,
    json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Deploy an installed model to another Docker host: only what it lacks is sent, all is verified."""
    from llm_installer.deploy.deploy import DeployOptions, deploy_model

    options = DeployOptions(
        host=host, port=port, gpus=gpus, name=name, bind=bind, api_key=api_key, restart=restart,
        resend_weights=resend_weights, force=force, registry=registry,
    )  # fmt: skip

    def body(settings: Settings, output: Output) -> None:
        result = deploy_model(model, options, settings, output)
        record = result.record(model, host)
        text = f"[bold green]Deployed[/] {result.name} on {host}: {result.url} (lock {result.lock_hash[:12]}, {record['bytes_sent']} bytes sent, {record['seconds']} s)"
        if result.api_key and not api_key:
            text += f"\nAPI key (shown once; clients send it as a Bearer token): {result.api_key}"
        output.result(record, text)

    _run(json, config, body)


def deployments(host: TargetOpt = None, json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """List what runs where: model, lock hash, status, URL (without --host: every host deployed to)."""
    from llm_installer.deploy.manage import deployments as list_deployments

    def body(settings: Settings, output: Output) -> None:
        from llm_installer.deploy.deploy import local_records
        from llm_installer.deploy.manage import deployments_everywhere

        rows = list_deployments(host) if host else deployments_everywhere(local_records(settings))
        where = host or "every host deployed to from here"
        columns = ["Host", "Name", "Model", "Lock", "Status", "URL"]
        cells = [
            [r["host"], r["name"], r["model"], r["lock_hash"][:12], r["status"], r["url"]]
            for r in rows
        ]
        table = simple_table(f"Deployments on {where}", columns, cells)
        output.result(rows, table if rows else f"Nothing deployed on {where}")

    _run(json, config, body)


def rollback(model: InstalledModelArg, host: RequiredTargetOpt, config: ConfigOpt = None) -> None:
    """Return MODEL on HOST to its previous lock (run again to go forward)."""
    from llm_installer.deploy.manage import rollback as run_rollback

    def body(settings: Settings, output: Output) -> None:
        done = run_rollback(model, host, output)
        output.info(
            f"[green]✓[/] {done['name']} on {host} runs lock {done['lock_hash'][:12]} again: {done['url']}"
        )

    _run(False, config, body)


def undeploy(
    model: InstalledModelArg,
    host: RequiredTargetOpt,
    purge: Annotated[
        bool, typer.Option("--purge", help="Also remove its weights and logs volumes.")
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Remove MODEL's deployment from HOST (containers; with --purge its volumes)."""
    from llm_installer.deploy.manage import undeploy as run_undeploy

    def body(settings: Settings, output: Output) -> None:
        removed = run_undeploy(model, host, purge=purge)
        output.info(f"Removed from {host}: {', '.join(removed)}")

    _run(False, config, body)


def k8s(
    models: Annotated[
        list[str], typer.Argument(help="Installed models (id, folder name or path).")
    ],
    output_dir: Annotated[Path, typer.Option("--output", "-o", help="Folder for the manifests.")],
    name: Annotated[
        str | None, typer.Option("--name", help="Stack name (labels, the gateway's name).")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Write Kubernetes manifests (Deployment + Service per model, weights PVC, gateway): kubectl apply -k DIR."""
    from llm_installer.deploy.k8s import write_k8s

    def body(settings: Settings, output: Output) -> None:
        written = write_k8s(models, output_dir, settings, name)
        output.info(
            f"Wrote {len(written)} files to {output_dir}; apply with: kubectl apply -k {output_dir}"
        )

    _run(False, config, body)


# (name, function), in the order ``--help`` lists them.
COMMANDS = (
    ("lock", lock),
    ("verify", verify),
    ("export", export),
    ("import", import_bundle),
    ("push", push),
    ("pull", pull),
    ("deploy", deploy),
    ("deployments", deployments),
    ("rollback", rollback),
    ("undeploy", undeploy),
    ("k8s", k8s),
)
