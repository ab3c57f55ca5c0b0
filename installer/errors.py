"""Every error the user can meet, as an exception type with its message, hint and exit code.

Library code raises these; the CLI turns them into a message in exactly one place
(``llm_installer.cli``). Tracebacks are shown only when ``LLM_INSTALLER_DEBUG=1``.
"""

from __future__ import annotations


class InstallerError(Exception):
    """Base class: ``message`` says what went wrong, ``hint`` what to do next."""

    exit_code = 1
    hint = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint


class ModelNotFoundError(InstallerError):
    exit_code = 10
    hint = "Check the spelling of the model id (owner/name) or the path of the local folder."


class PrivateModelError(InstallerError):
    exit_code = 11
    hint = "Set HF_TOKEN (or huggingface_token in config.yaml) to a token that can read it."


class GatedModelError(InstallerError):
    exit_code = 12
    hint = "Accept the model's terms on its Hub page, then set HF_TOKEN to a token of that account."


class RevisionNotFoundError(InstallerError):
    exit_code = 13
    hint = "List the repo's branches and tags on the Hub, or drop --revision to use main."


class NoConfigError(InstallerError):
    exit_code = 14
    hint = "A model repo needs config.json, model_index.json, modules.json or *.gguf files."


class MalformedConfigError(InstallerError):
    exit_code = 15
    hint = "The file is not valid JSON; fix it (local folder) or report it to the repo's author."


class UnsupportedArchitectureError(InstallerError):
    exit_code = 16


class HubUnreachableError(InstallerError):
    exit_code = 17
    hint = (
        "Check your network or HF_ENDPOINT. With HF_HUB_OFFLINE=1 only models already in the "
        "cache or local folders can be checked."
    )


class LocalFolderError(InstallerError):
    exit_code = 18
    hint = "Point check or install at the folder that holds the model's config.json and weights."


class DockerUnavailableError(InstallerError):
    exit_code = 20
    hint = (
        "Start the engine (`sudo systemctl start docker`, or `dockerd &`) and check `docker info`."
    )


class ConfigFileError(InstallerError):
    exit_code = 2
    hint = "Fix config.yaml (see config.yaml.example) or remove the offending key."


class UsageError(InstallerError):
    """Bad command-line arguments that typer cannot catch (an empty model name …)."""

    exit_code = 2
    hint = "See the command's --help."


class NotBuiltYetError(InstallerError):
    exit_code = 3
