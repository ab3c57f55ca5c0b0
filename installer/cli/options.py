"""CLI options declared once, as Annotated types shared by the commands."""

from __future__ import annotations

from typing import Annotated

import typer

ModelArg = Annotated[str, typer.Argument(help="Hub model id (owner/name) or a local model folder.")]
RevisionOpt = Annotated[
    str | None, typer.Option("--revision", "-r", help="Branch, tag or commit on the Hub.")
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print machine-readable JSON instead of a report.")
]
ConfigOpt = Annotated[
    str | None,
    typer.Option("--config", help="Path to config.yaml (default: see `llm-installer config`)."),
]

# Running an installed model (start, stop, remove, train).
InstalledModelArg = Annotated[
    str, typer.Argument(help="An installed model: its id (owner/name), folder name or path.")
]
PortOpt = Annotated[int, typer.Option("--port", "-p", help="Port on this machine for the API.")]
HostOpt = Annotated[
    str,
    typer.Option("--host", help="Address to publish on; 0.0.0.0 opens it to the network."),
]
DtypeOpt = Annotated[
    str | None, typer.Option("--dtype", help="auto, float16, bfloat16 or float32.")
]
RunDeviceOpt = Annotated[
    str | None,
    typer.Option("--device", help="auto, cuda, cpu or mps (default: what install chose)."),
]
WeightsOpt = Annotated[
    str,
    typer.Option(
        "--weights",
        help="auto, base or finetuned: finetuned/ holds a full fine-tune (train --method full); "
        "auto serves it when it is newer than lora/'s adapter.",
    ),
]
NoBrowserOpt = Annotated[
    bool, typer.Option("--no-browser", help="Do not open the web UI in a browser.")
]
LoadIn8bitOpt = Annotated[
    bool, typer.Option("--load-in-8bit", help="Quantize to 8 bits on load (CUDA).")
]
LoadIn4bitOpt = Annotated[
    bool, typer.Option("--load-in-4bit", help="Quantize to 4 bits on load (CUDA).")
]
ApiKeyOpt = Annotated[
    str | None,
    typer.Option(
        "--api-key", envvar="LLM_API_KEY", show_envvar=True, help="Require this key from clients."
    ),
]
DetachOpt = Annotated[
    bool, typer.Option("--detach", "-d", help="Run in the background; stop with `stop`.")
]
ForceOpt = Annotated[
    bool, typer.Option("--force", help="Run on CPU even when the model needs a GPU.")
]
AssumeYesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
