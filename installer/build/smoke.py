"""The install's smoke test: run the image once as ``start`` would, load, one tiny request.

The container is ``start``'s own plan (``runargs.plan_start``: the same serve arguments, device,
quantization, dtype, GPU flags, user and read-only weights), on a random local port and without
the logs mount. On failure it says whether the GPU, dependencies, memory or the model are to blame.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
import urllib.error
import urllib.request
import uuid
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
from docker.errors import DockerException

from llm_installer.errors import InstallerError
from llm_installer.run.container import ContainerSpec, docker_py_kwargs
from llm_runtime.contract import SmokeRequest, family_spec
from llm_runtime.model_info import ModelInfo

READY_TIMEOUT_S = 600
IMAGE_MODEL_INFO = "/opt/llm/model_info.json"  # LLM_MODEL_INFO in model.Dockerfile.j2
SMOKE_LABEL = "org.llm-installer.smoke-test"
CAUSES = (
    (
        "gpu",
        (
            "could not select device driver",
            "no kernel image is available",
            "CUDA driver version is insufficient",
            "Device 'cuda' is not available",
            "unresolvable CDI devices",
            "nvidia-container-cli",
        ),
    ),
    ("dependencies", ("ModuleNotFoundError", "ImportError", "No module named", "requires the")),
    ("memory", ("OutOfMemory", "out of memory", "CUDA out of memory", "Killed", "MemoryError")),
)


class SmokeTestError(InstallerError):
    exit_code = 24

    def __init__(self, message: str, *, cause: str, logs: str) -> None:
        hints = {
            "gpu": "The container could not use the GPU: check `nvidia-smi`, the NVIDIA Container Toolkit "
            "and `llm-installer check` (driver and CUDA build), or install with --device cpu.",
            "dependencies": "A package is missing from the image: see install.log; packages that compile need --base-image cuda-devel.",
            "memory": "Not enough memory: retry with --quantization 4bit or 8bit (CUDA), or a smaller model.",
            "model": "The model failed to load or answer: see install.log; check --trust-remote-code and the model card.",
        }
        tail = "\n".join("  | " + line for line in logs.strip().splitlines()[-8:])
        super().__init__(f"{message} (likely cause: {cause})\n{tail}", hint=hints[cause])
        self.cause, self.logs = cause, logs


@dataclass(frozen=True)
class SmokeResult:
    seconds_to_ready: float
    request: str
    response: dict[str, Any]


def smoke_plan(model_info: ModelInfo, model_dir: Path, host: Any = None) -> Any:
    """``start``'s plan for this install, forced onto the installed device (a CUDA install whose
    GPU cannot be reached fails here instead of passing on CPU)."""
    from llm_installer.run.devices import detect_host_runtime
    from llm_installer.run.start_plan import StartOptions, model_paths, plan_start

    device = "cuda" if model_info.device == "cuda" else "cpu"
    host = host or detect_host_runtime()
    return plan_start(
        model_info, model_paths(model_dir, model_info), host, StartOptions(device=device)
    )


def smoke_kwargs(spec: ContainerSpec) -> dict[str, Any]:
    """docker-py keywords for the smoke container: start's, on a random 127.0.0.1 port, under a
    name of its own, without the logs mount (nothing of the test stays behind)."""
    kwargs = docker_py_kwargs(spec, {})
    kwargs["name"] = f"{spec.name}-smoke-{uuid.uuid4().hex[:8]}"
    kwargs["ports"] = {"8000/tcp": ("127.0.0.1", None)}
    kwargs["labels"] = {SMOKE_LABEL: "1"}
    kwargs["mounts"] = [m for m in kwargs["mounts"] if m["Target"] != "/logs"]
    return kwargs


def run_smoke_test(
    client: docker.DockerClient,
    spec: ContainerSpec,
    family: str,
    *,
    timeout: float = READY_TIMEOUT_S,
) -> SmokeResult:
    """Start the container detached, wait until ready, send one request."""
    try:
        container = client.containers.run(detach=True, **smoke_kwargs(spec))
    except DockerException as exc:
        raise SmokeTestError(
            f"Smoke test container did not start: {exc}", cause=classify(str(exc)), logs=str(exc)
        ) from exc
    started = time.monotonic()
    try:
        url = _published_url(container)
        _wait_ready(container, url, timeout)
        ready = time.monotonic() - started
        path, response = _family_request(url, family)
        return SmokeResult(seconds_to_ready=round(ready, 2), request=path, response=response)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        logs = _logs(container)
        raise SmokeTestError(
            f"Smoke test failed: {exc}", cause=classify(logs, container), logs=logs
        ) from exc
    finally:
        _remove(container)


def classify(logs: str, container: Any = None) -> str:
    """dependencies | memory | model, from the container's logs and exit code."""
    if container is not None and (container.attrs.get("State") or {}).get("OOMKilled"):
        return "memory"
    for cause, needles in CAUSES:
        if any(needle in logs for needle in needles):
            return cause
    return "model"


def _published_url(container: Any) -> str:
    for _ in range(50):
        container.reload()
        binding = (container.ports or {}).get("8000/tcp")
        if binding:
            return f"http://127.0.0.1:{binding[0]['HostPort']}"
        if container.status == "exited":
            break
        time.sleep(0.1)
    raise OSError("the container exited before publishing its port")


def _wait_ready(container: Any, url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        container.reload()
        if container.status == "exited":
            raise OSError(f"the container exited with code {container.attrs['State']['ExitCode']}")
        try:
            with urllib.request.urlopen(url + "/health/ready", timeout=5) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code != 503:
                raise
            body = json.loads(exc.read() or b"{}")
            if (
                body.get("model_state") == "failed"
            ):  # the server lives on, but the model will never load
                raise OSError(f"the model failed to load: {body.get('error')}") from exc
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.5)
    raise OSError(f"the model was not ready after {timeout:.0f} s")


def _family_request(url: str, family: str) -> tuple[str, dict[str, Any]]:
    """The family's tiny request (or /info when it has none); returns (path, JSON answer)."""
    spec = family_spec(family)
    request = (spec and spec.smoke) or SmokeRequest()  # llm_runtime.contract's, else GET /info
    if request.upload:
        return request.path, _upload(
            url + request.path, request.upload, "silence.wav", silent_wav()
        )
    return request.path, _request(url + request.path, dict(request.body) or None)


def silent_wav(seconds: float = 1.0, rate: int = 16000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\0\0" * int(seconds * rate))
    return buffer.getvalue()


def _upload(url: str, field: str, filename: str, content: bytes) -> dict[str, Any]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    with urllib.request.urlopen(request, timeout=300) as response:
        return json.loads(response.read())


def _request(url: str, body: dict[str, Any] | None) -> dict[str, Any]:
    data = json.dumps(body).encode() if body else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=300) as response:
        return json.loads(response.read())


def _logs(container: Any) -> str:
    try:
        return container.logs(tail=200).decode(errors="replace")
    except DockerException:
        return ""


def _remove(container: Any) -> None:
    with contextlib.suppress(DockerException):
        container.remove(force=True)
