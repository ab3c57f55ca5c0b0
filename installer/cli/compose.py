"""``llm-installer compose MODEL…``: write a docker compose (or Swarm) stack of installed models
behind a gateway."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llm_installer.cli.common import run_command
from llm_installer.cli.options import ApiKeyOpt, ConfigOpt, HostOpt
from llm_installer.console import Output
from llm_installer.run.stack import (
    GATEWAY_PORT,
    StackOptions,
    StackUsageError,
    compose_commands,
    held_ports,
    write_stack,
)
from llm_installer.settings import Settings

SwarmReplicasOpt = Annotated[
    int, typer.Option("--replicas", help="--swarm: tasks per model service.")
]
SwarmConstraintOpt = Annotated[
    list[str] | None,
    typer.Option("--constraint", help="--swarm: placement constraint, e.g. node.labels.gpu==true."),
]
SwarmGpusOpt = Annotated[
    int | None,
    typer.Option(
        "--gpus", help="--swarm: NVIDIA-GPU generic resources per task (default: the model's need)."
    ),
]
SwarmWeightsOpt = Annotated[
    str,
    typer.Option(
        "--weights",
        help="--swarm: bind (the model folder's path on every node) or volume (llm-weights-<hash>).",
    ),
]


def compose(
    models: Annotated[
        list[str],
        typer.Argument(help="Installed models: ids (owner/name), folder names or paths."),
    ],
    output: Annotated[
        Path | None, typer.Option("--output", help="Stack folder (default ~/LLM/stacks/NAME).")
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Stack name (default: the models' folders).")
    ] = None,
    port_base: Annotated[
        int, typer.Option("--port-base", help="Host port of the first model; +1 for each next.")
    ] = 8000,
    gateway_port: Annotated[
        int, typer.Option("--gateway-port", help="Host port of the gateway.")
    ] = GATEWAY_PORT,
    host: HostOpt = "127.0.0.1",
    config: ConfigOpt = None,
    swarm: Annotated[
        bool, typer.Option("--swarm", help="Write a Swarm stack (docker stack deploy) instead.")
    ] = False,
    replicas: SwarmReplicasOpt = 1,
    constraint: SwarmConstraintOpt = None,
    gpus: SwarmGpusOpt = None,
    weights: SwarmWeightsOpt = "bind",
    api_key: ApiKeyOpt = None,
) -> None:
    """Write a docker compose stack (or a Swarm stack): the models plus a gateway routing by "model"."""

    def body(settings: Settings, output_: Output) -> None:
        options = StackOptions(name, output, port_base, gateway_port, host)
        if swarm:
            from llm_installer.deploy.swarm import SwarmOptions, report_swarm_stack

            wanted = SwarmOptions(replicas, tuple(constraint or ()), gpus, weights, api_key)
            report_swarm_stack(models, settings, options, wanted, output_)
            return
        if replicas != 1 or constraint or gpus is not None or weights != "bind":
            raise StackUsageError(
                "--replicas, --constraint, --gpus and --weights apply to Swarm stacks only",
                hint="Add --swarm, or drop them for a docker compose stack.",
            )
        folder, stack = write_stack(models, settings, options)
        commands = compose_commands(folder, stack)
        ports = [port_base + i for i in range(len(models))] + [gateway_port]
        for held in held_ports(host, ports):
            output_.warning(
                f"Port {held} on {host} is already in use: `up` will fail until it is free "
                "(stop what holds it, e.g. `llm-installer stop MODEL`, or rerun compose with "
                "--port-base / --gateway-port)."
            )
        output_.info(
            f"Stack written to [bold]{folder}[/]\n"
            f"  start: {commands['start']}   (or docker-compose)\n"
            f'  API:   http://{host}:{gateway_port}/v1 (the request\'s "model" picks the model)\n'
            f"  UI:    http://{host}:{gateway_port}/ (a model picker; each model under /m/<name>/)\n"
            f"  stop:  {commands['stop']}"
        )

    run_command(False, config, body)
