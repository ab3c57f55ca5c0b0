"""``llm-installer list``: the installed models with family, status and size."""

from __future__ import annotations

from llm_installer.cli.common import run_command
from llm_installer.cli.options import ConfigOpt, JsonOpt
from llm_installer.console import Output, simple_table
from llm_installer.settings import Settings


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
