"""``llm-installer config``: the effective configuration and where each value came from."""

from __future__ import annotations

from llm_installer.cli.common import run_command
from llm_installer.cli.options import ConfigOpt, JsonOpt
from llm_installer.console import Output, simple_table
from llm_installer.settings import Settings


def show_config(json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Print the effective configuration and where each value came from."""

    def body(settings: Settings, output: Output) -> None:
        values = settings.public_dict()
        data = {"config_file": settings.config_file, "values": values, "sources": settings.sources}
        rows = [[key, value, settings.sources[key]] for key, value in values.items()]
        title = f"Configuration (file: {settings.config_file or 'none, defaults used'})"
        output.result(data, simple_table(title, ["Key", "Value", "Source"], rows))

    run_command(json, config, body)
