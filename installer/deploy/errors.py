"""The errors of lock, verify, export/import and deploy, with their exit codes (60-69)."""

from __future__ import annotations

from llm_installer.errors import InstallerError


class LockMissingError(InstallerError):
    exit_code = 60
    hint = "Write it with `llm-installer lock MODEL` (install writes it too)."


class VerifyFailedError(InstallerError):
    exit_code = 61
    hint = (
        "If you changed the weights on purpose, run `llm-installer lock MODEL`; otherwise "
        "restore the file (reinstall with `llm-installer install MODEL --yes`)."
    )


class BundleError(InstallerError):
    exit_code = 62
    hint = (
        "The bundle is truncated or damaged: copy it again (compare its sha256 with the source's)."
    )


class TargetUnavailableError(InstallerError):
    exit_code = 63
    hint = (
        "Check that the host runs Docker and that you can reach it: "
        "`docker -H HOST info` (ssh://user@server, tcp://host:2376, unix:///path, or a context name)."
    )


class PreflightError(InstallerError):
    exit_code = 64


class DeployFailedError(InstallerError):
    exit_code = 65
    hint = "Read the container's log lines above; `llm-installer rollback MODEL --host HOST` returns to the previous lock."


class NotDeployedError(InstallerError):
    exit_code = 66
    hint = "See what runs there with `llm-installer deployments --host HOST`."


class TargetVerifyError(InstallerError):
    exit_code = 67
    hint = "Send the weights again with `llm-installer deploy MODEL --host HOST --resend-weights`."
