"""The errors of lock, verify, export/import, deploy and push/pull, with their exit codes (60-72)."""

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


class RegistryUnreachableError(InstallerError):
    exit_code = 68
    hint = (
        "Check the registry's address (HOST:PORT/NAMESPACE) and that it answers: "
        "`curl https://HOST:PORT/v2/`; a plain-HTTP registry needs --insecure (loopback is allowed)."
    )


class RegistryAuthError(InstallerError):
    exit_code = 69
    hint = (
        "Log in with `docker login HOST:PORT`, or pass --username USER --password-stdin "
        "(the password on standard input); nothing of it is written to the lock or a log."
    )


class DigestMismatchError(InstallerError):
    exit_code = 71
    hint = (
        "What the registry sent is not what was pushed: push the model again "
        "(`llm-installer push MODEL REGISTRY/NAMESPACE`) and pull the new reference."
    )


class ArtifactMissingError(InstallerError):
    exit_code = 72
    hint = (
        "Check the reference (`llm-installer push` prints it and writes it into llm.lock.json "
        "under registry.weights); push the model again if the registry lost it."
    )
