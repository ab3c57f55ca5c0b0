"""How to run an installed model on this host: a ``docker run`` or a native macOS plan.

Everything here but ``detect_host_runtime`` and ``model_paths`` is pure: the same model_info,
paths, host and options always give the same plan, so plans are checked against golden files.
Serving and training share every helper: device choice, GPU flags, mounts, ports, labels.
"""

from __future__ import annotations

import logging
import os
import platform
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from llm_installer.errors import InstallerError

log = logging.getLogger(__name__)

CONTAINER_PORT = 8000
TENSORBOARD_PORT = 6006
API_KEY_ENV = "LLM_API_KEY"
LABEL_PREFIX = "org.llm-installer"
LABEL_MODEL_DIR = f"{LABEL_PREFIX}.model-dir"
IMAGE_USER = (1000, 1000)  # the image's `llm` user
NATIVE_VENV = ".venv-native"
TOOLKIT_URL = (
    "https://docs.nvidia.com/datacenter/cloud-native/container-toolkit/latest/install-guide.html"
)
RUNTIME = ("python", "-m", "llm_runtime")

# Shared memory per (role, device): PyTorch data loaders and NCCL need more than Docker's 64 MB.
# More than one GPU → --ipc=host instead, as NCCL between GPUs wants the host's IPC namespace.
SHM_SIZE = {
    ("serve", "cpu"): "1g",
    ("serve", "cuda"): "2g",
    ("train", "cpu"): "2g",
    ("train", "cuda"): "8g",
}
QUANTIZATION_FLAGS = {"8bit": "--load-in-8bit", "4bit": "--load-in-4bit"}
CHOICES = {
    "device": ("auto", "cuda", "cpu", "mps"),
    "dtype": ("auto", "float16", "bfloat16", "float32"),
}
NO_GPU_VALUES = ("", "-1", "none", "void", "nodevfiles")


# ── errors ──────────────────────────────────────────────────────────────────────────────


class GpuRequiredError(InstallerError):
    exit_code = 30
    hint = (
        "Install the NVIDIA driver and Container Toolkit (" + TOOLKIT_URL + "), "
        "or pass --force to try it on CPU anyway (it may not fit or be very slow)."
    )


class DeviceUnavailableError(InstallerError):
    exit_code = 31
    hint = "Leave out --device to let llm-installer choose, or use --device cpu."


class InvalidRunOptionError(InstallerError):
    exit_code = 2


# ── values ──────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class HostRuntime:
    """What this host can run: OS, Docker engine, the NVIDIA runtime, GPUs NVML sees."""

    os: str = "linux"  # "linux" | "darwin"
    docker_available: bool = True
    nvidia_runtime: bool = False
    gpu_count: int = 0
    cuda_visible_devices: str | None = None
    mps_available: bool = False
    uid: int = 1000
    gid: int = 1000
    python: str = "python3"  # the interpreter that makes the native virtualenv


@dataclass(frozen=True)
class ModelPaths:
    """Host folders of one installed model."""

    model_dir: Path
    weights: Path
    logs: Path
    lora: Path
    checkpoints: Path
    has_lora: bool = False  # lora/ holds an adapter (adapter_config.json)
    lora_unusable: bool = False  # lora/ holds files, but no adapter_config.json
    installer_dir: Path | None = None


@dataclass(frozen=True)
class StartOptions:
    port: int = CONTAINER_PORT
    host: str = "127.0.0.1"
    dtype: str | None = None
    device: str | None = None
    no_browser: bool = False
    load_in_8bit: bool = False
    load_in_4bit: bool = False
    api_key: str | None = field(default=None, repr=False)
    detach: bool = False
    force: bool = False
    extra_args: tuple[str, ...] = ()
    name: str | None = None
    ready_timeout: float = 900.0


@dataclass(frozen=True)
class TrainOptions:
    data: str | None = None  # required unless tensorboard_only
    device: str | None = None
    host: str = "127.0.0.1"
    tensorboard_port: int = TENSORBOARD_PORT
    tensorboard: bool = True  # False: --no-tensorboard, and no port is published
    tensorboard_only: bool = False  # only show past runs' graphs (no training)
    detach: bool = False
    force: bool = False
    extra_args: tuple[str, ...] = ()  # trainer options, passed through
    name: str | None = None


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class ContainerSpec:
    """One container, rendered as ``docker run`` arguments or as docker-py keywords."""

    image: str
    name: str
    command: tuple[str, ...]
    mounts: tuple[Mount, ...] = ()
    ports: tuple[tuple[str, int, int], ...] = ()  # (host ip, host port, container port)
    env: tuple[tuple[str, str], ...] = ()
    secret_env: tuple[str, ...] = ()  # names only: values travel in the plan's secrets
    user: str | None = None
    gpus: str | None = None  # "all" or a device list such as "1,2"
    shm_size: str | None = None
    ipc_host: bool = False
    labels: tuple[tuple[str, str], ...] = ()
    healthcheck: bool = True  # the image's HEALTHCHECK probes the server; off for training


@dataclass(frozen=True)
class DockerPlan:
    container: ContainerSpec
    device: str
    url: str
    warnings: tuple[str, ...] = ()
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    writable_dirs: tuple[Path, ...] = ()
    chown_to: tuple[int, int] | None = None  # a root host gives the image user its folders
    owned_roots: tuple[Path, ...] = ()  # folders handed over without their contents (chown_to)
    kind: str = "docker"

    def argv(self, *, detach: bool = False) -> list[str]:
        return docker_argv(self.container, detach=detach)


@dataclass(frozen=True)
class NativePlan:
    """macOS: Docker cannot reach Metal, so the runtime runs in a virtualenv beside the model."""

    venv: Path
    setup: tuple[tuple[str, ...], ...]
    command: tuple[str, ...]
    device: str
    url: str
    warnings: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    writable_dirs: tuple[Path, ...] = ()
    kind: str = "native"

    def argv(self, *, detach: bool = False) -> list[str]:
        return list(self.command)


StartPlan = DockerPlan | NativePlan


# ── host and paths (the only functions that look at the machine) ───────────────────────


def detect_host_runtime() -> HostRuntime:
    """The host as ``docker info`` (docker-py) and NVML report it; nothing is guessed."""
    from llm_installer.hardware import mps_supported, probe_docker, probe_nvidia

    system = platform.system().lower()
    docker = probe_docker()
    try:
        gpu_count = len(probe_nvidia().gpus)
    except Exception as exc:  # NVML errors after init: treat as no GPU, but say why in the log
        log.warning("NVML failed: %s", exc)
        gpu_count = 0
    is_mac = system == "darwin"
    return HostRuntime(
        os="darwin" if is_mac else "linux",
        docker_available=docker.available,
        nvidia_runtime=docker.nvidia_runtime,
        gpu_count=gpu_count,
        cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
        mps_available=is_mac and platform.machine() == "arm64" and mps_supported(),
        uid=os.getuid() if hasattr(os, "getuid") else 1000,
        gid=os.getgid() if hasattr(os, "getgid") else 1000,
        python=sys.executable or "python3",
    )


def model_paths(model_dir: Path, model_info: Mapping[str, Any]) -> ModelPaths:
    """The model's folders; weights from ``weights_path`` (a local-folder install) or model/."""
    model_dir = Path(model_dir).resolve()
    weights = Path(model_info.get("weights_path") or model_dir / "model").resolve()
    lora = model_dir / "lora"
    has_lora = (lora / "adapter_config.json").is_file()
    installer_dir = model_info.get("installer_dir")
    return ModelPaths(
        model_dir=model_dir,
        weights=weights,
        logs=model_dir / "logs",
        lora=lora,
        checkpoints=model_dir / "checkpoints",
        has_lora=has_lora,
        lora_unusable=not has_lora and lora.is_dir() and any(lora.iterdir()),
        installer_dir=Path(installer_dir) if installer_dir else None,
    )


# ── shared helpers ──────────────────────────────────────────────────────────────────────


def container_name(model_dir: Path, role: str = "serve") -> str:
    slug = re.sub(r"[^a-zA-Z0-9_.-]+", "-", model_dir.name).strip("-.") or "model"
    return f"llm-{slug}" if role == "serve" else f"llm-{role}-{slug}"


def visible_gpus(host: HostRuntime) -> str | None:
    """``all``, a device list from CUDA_VISIBLE_DEVICES, or None when it hides every GPU."""
    value = host.cuda_visible_devices
    if value is None:
        return "all"
    devices = [d.strip() for d in value.split(",") if d.strip()]
    if not devices or devices[0].lower() in NO_GPU_VALUES:
        return None
    return ",".join(devices)


def why_no_gpu(host: HostRuntime) -> str | None:
    """The first reason the container cannot use an NVIDIA GPU, or None when it can."""
    reasons = (
        (host.gpu_count == 0, "NVML finds no NVIDIA GPU on this machine"),
        (not host.nvidia_runtime, "Docker has no NVIDIA runtime (the NVIDIA Container Toolkit is not installed)"),
        (visible_gpus(host) is None, "CUDA_VISIBLE_DEVICES hides every GPU"),
    )  # fmt: skip
    return next((reason for failed, reason in reasons if failed), None)


def _installed_device(model_info: Mapping[str, Any]) -> str:
    recommended = (model_info.get("compatibility") or {}).get("recommended") or {}
    return str(model_info.get("device") or recommended.get("device") or "cpu")


def _image_flavour(model_info: Mapping[str, Any]) -> str:
    return str((model_info.get("image") or {}).get("flavour") or "cuda")


def choose_docker_device(
    model_info: Mapping[str, Any], host: HostRuntime, requested: str | None
) -> tuple[str, tuple[str, ...]]:
    """(cuda|cpu, warnings) for a container; an explicit --device that cannot work is an error."""
    reason = why_no_gpu(host)
    if _image_flavour(model_info) == "cpu":
        reason = (
            "the model's image was built for CPU (reinstall with --device cuda for a GPU image)"
        )
    wanted = requested if requested not in (None, "auto") else _installed_device(model_info)
    if requested == "mps":
        raise DeviceUnavailableError("--device mps works on macOS only (Apple Silicon)")
    if requested == "cuda" and reason:
        raise DeviceUnavailableError(f"--device cuda, but {reason}", hint=GpuRequiredError.hint)
    if wanted != "cuda":
        return "cpu", ()
    if reason:
        return "cpu", (f"Running on CPU: {reason}. Expect it to be much slower than on a GPU.",)
    return "cuda", ()


def choose_native_device(
    model_info: Mapping[str, Any], host: HostRuntime, requested: str | None
) -> tuple[str, tuple[str, ...]]:
    """(mps|cpu, warnings) for the macOS virtualenv."""
    if requested == "cuda":
        raise DeviceUnavailableError(
            "--device cuda: macOS has no CUDA", hint="Use --device mps or cpu."
        )
    if requested == "mps" and not host.mps_available:
        raise DeviceUnavailableError(
            "--device mps: this Mac has no Metal (MPS) support for PyTorch"
        )
    if requested == "cpu" or not host.mps_available:
        warning = (
            () if requested == "cpu" else ("Running on CPU: no Apple Silicon GPU (MPS) here.",)
        )
        return "cpu", warning
    return "mps", ()


def refuse_cpu_if_gpu_required(
    model_info: Mapping[str, Any], device: str, force: bool
) -> tuple[str, ...]:
    """Models whose check says only a GPU fits are refused on CPU unless --force."""
    if device != "cpu" or not model_info.get("requires_gpu"):
        return ()
    model = model_info.get("model_id", "this model")
    if not force:
        raise GpuRequiredError(f"{model} needs a GPU and none can be used here")
    return (f"{model} needs a GPU; running it on CPU because of --force.",)


def quantization(options: StartOptions, device: str) -> str | None:
    """The bitsandbytes mode asked for; it needs CUDA."""
    if options.load_in_8bit and options.load_in_4bit:
        raise InvalidRunOptionError("--load-in-8bit and --load-in-4bit exclude each other")
    mode = "8bit" if options.load_in_8bit else "4bit" if options.load_in_4bit else None
    if mode and device != "cuda":
        raise InvalidRunOptionError(
            f"--load-in-{mode} needs an NVIDIA GPU (bitsandbytes), but this run is on {device}",
            hint="Drop the flag, or run on a machine with an NVIDIA GPU and the Container Toolkit.",
        )
    return mode


def with_installed_quantization(
    options: StartOptions, model_info: Mapping[str, Any], device: str
) -> tuple[StartOptions, tuple[str, ...]]:
    """The install's --quantization is the default; off CUDA it is dropped with a warning."""
    installed = model_info.get("quantization")
    if installed not in QUANTIZATION_FLAGS or options.load_in_8bit or options.load_in_4bit:
        return options, ()
    if device != "cuda":
        return options, (
            f"Installed with {installed} quantization, which needs CUDA: loading unquantized on {device}.",
        )
    return replace(options, **{f"load_in_{installed}": True}), ()


def serve_args(
    *, model: str, host: str, port: int, logs: str, lora: str | None, device: str,
    options: StartOptions,
) -> tuple[str, ...]:  # fmt: skip
    """``serve`` arguments for the runtime; the API key never appears here (it goes by env)."""
    args = ["serve", "--model", model, "--host", host, "--port", str(port), "--logs-dir", logs]
    args += ["--device", device]
    args += ["--dtype", options.dtype] if options.dtype else []
    args += ["--lora", lora] if lora else []
    mode = quantization(options, device)
    args += [QUANTIZATION_FLAGS[mode]] if mode else []
    return (*args, *options.extra_args)


def train_args(
    *, model: str, data: str | None, output_dir: str, device: str, tensorboard_host: str,
    tensorboard_port: int, options: TrainOptions, extra_args: tuple[str, ...] | None = None,
) -> tuple[str, ...]:  # fmt: skip
    """``train`` arguments for the runtime (``llm_runtime.training.cli``'s flags)."""
    args = ["train", "--model", model, "--output-dir", output_dir]
    if options.tensorboard_only:
        args += ["--tensorboard-only"]
    else:
        args += ["--data", str(data), "--device", device]
    if options.tensorboard or options.tensorboard_only:
        args += [
            "--tensorboard-host",
            tensorboard_host,
            "--tensorboard-port",
            str(tensorboard_port),
        ]
    else:
        args += ["--no-tensorboard"]
    return (*args, *(options.extra_args if extra_args is None else extra_args))


def local_url(host: str, port: int) -> str:
    shown = "localhost" if host in ("127.0.0.1", "0.0.0.0", "localhost", "::") else host
    return f"http://{shown}:{port}"


def secrets_for(api_key: str | None) -> dict[str, str]:
    return {API_KEY_ENV: api_key} if api_key else {}


def user_for(host: HostRuntime, role: str = "serve") -> tuple[str | None, tuple[int, int] | None]:
    """(--user value, chown target): files on the host belong to the user who runs it.

    A root host runs containers as the image's unprivileged user (never as root) and hands
    that user the writable folders instead (for training also the model folder itself, where
    the trainer swaps lora/ in atomically).
    """
    if host.uid == 0:
        return None, IMAGE_USER
    return f"{host.uid}:{host.gid}", None


def gpu_flags(device: str, host: HostRuntime, role: str) -> dict[str, Any]:
    gpus = visible_gpus(host) if device == "cuda" else None
    many = device == "cuda" and (gpus == "all" and host.gpu_count > 1 or "," in (gpus or ""))
    shm = None if many else SHM_SIZE[(role, device)]
    return {"gpus": gpus, "ipc_host": many, "shm_size": shm}


def labels_for(paths: ModelPaths, model_info: Mapping[str, Any], role: str, port: int) -> tuple:
    return (
        (LABEL_MODEL_DIR, str(paths.model_dir)),
        (f"{LABEL_PREFIX}.model-id", str(model_info.get("model_id", ""))),
        (f"{LABEL_PREFIX}.role", role),
        (f"{LABEL_PREFIX}.port", str(port)),
    )


def image_tag(model_info: Mapping[str, Any]) -> str:
    tag = (model_info.get("image") or {}).get("tag")
    if not tag:
        raise InvalidRunOptionError(
            "model_info.json names no image",
            hint="Reinstall the model: `llm-installer install MODEL --yes`.",
        )
    return str(tag)


def _check_port(port: int) -> None:
    if not 1 <= port <= 65535:
        raise InvalidRunOptionError(f"--port {port} is not a TCP port (1-65535)")


def _check_choices(**values: str | None) -> None:
    for name, value in values.items():
        choices = CHOICES[name]
        if value is not None and value not in choices:
            raise InvalidRunOptionError(f"--{name} {value}: choose one of {', '.join(choices)}")


# ── plans ───────────────────────────────────────────────────────────────────────────────


def plan_start(
    model_info: Mapping[str, Any], paths: ModelPaths, host: HostRuntime, options: StartOptions
) -> StartPlan:
    """How to serve this model here: a container on Linux, a virtualenv on macOS."""
    _check_port(options.port)
    _check_choices(device=options.device, dtype=options.dtype)
    if host.os == "darwin":
        return _native_start(model_info, paths, host, options)
    device, warnings = choose_docker_device(model_info, host, options.device)
    warnings += refuse_cpu_if_gpu_required(model_info, device, options.force)
    options, dropped = with_installed_quantization(options, model_info, device)
    warnings += dropped + _lora_warning(paths)
    user, chown = user_for(host)
    command = RUNTIME + serve_args(
        model="/model", host="0.0.0.0", port=CONTAINER_PORT, logs="/logs",
        lora="/lora" if paths.has_lora else None, device=device, options=options,
    )  # fmt: skip
    mounts = [Mount(str(paths.weights), "/model", True), Mount(str(paths.logs), "/logs")]
    mounts += [Mount(str(paths.lora), "/lora", True)] if paths.has_lora else []
    spec = ContainerSpec(
        image=image_tag(model_info),
        name=options.name or container_name(paths.model_dir),
        command=command,
        mounts=tuple(mounts),
        ports=((options.host, options.port, CONTAINER_PORT),),
        env=(("HOME", "/tmp"),),
        secret_env=(API_KEY_ENV,) if options.api_key else (),
        user=user,
        labels=labels_for(paths, model_info, "serve", options.port),
        **gpu_flags(device, host, "serve"),
    )
    return DockerPlan(
        container=spec, device=device, url=local_url(options.host, options.port),
        warnings=warnings, secrets=secrets_for(options.api_key),
        writable_dirs=(paths.logs,), chown_to=chown,
    )  # fmt: skip


def _lora_warning(paths: ModelPaths) -> tuple[str, ...]:
    if not paths.lora_unusable:
        return ()
    return (f"{paths.lora} holds files but no adapter_config.json: no adapter is loaded.",)


def native_setup(host: HostRuntime, paths: ModelPaths) -> tuple[Path, tuple[tuple[str, ...], ...]]:
    """The virtualenv beside the model and the commands that make it (run when missing)."""
    venv = paths.model_dir / NATIVE_VENV
    if paths.installer_dir is None:
        raise InvalidRunOptionError(
            "model_info.json does not say where llm-installer is (installer_dir)",
            hint="Reinstall the model with `llm-installer install MODEL --yes`.",
        )
    python = str(venv / "bin" / "python")
    return venv, (
        (host.python, "-m", "venv", str(venv)),
        (python, "-m", "pip", "install", "--upgrade", "pip"),
        (python, "-m", "pip", "install", "-e", f"{paths.installer_dir}[runtime]"),
    )


def _native_start(
    model_info: Mapping[str, Any], paths: ModelPaths, host: HostRuntime, options: StartOptions
) -> NativePlan:
    device, warnings = choose_native_device(model_info, host, options.device)
    warnings += refuse_cpu_if_gpu_required(model_info, device, options.force)
    options, dropped = with_installed_quantization(options, model_info, device)
    warnings += dropped + _lora_warning(paths)
    venv, setup = native_setup(host, paths)
    args = serve_args(
        model=str(paths.weights), host=options.host, port=options.port, logs=str(paths.logs),
        lora=str(paths.lora) if paths.has_lora else None, device=device, options=options,
    )  # fmt: skip
    return NativePlan(
        venv=venv, setup=setup, command=(str(venv / "bin" / "python"), *RUNTIME[1:], *args),
        device=device, url=local_url(options.host, options.port), warnings=warnings,
        env=(("HF_HUB_OFFLINE", "1"),), secrets=secrets_for(options.api_key),
        writable_dirs=(paths.logs,),
    )  # fmt: skip


DATA_TARGET = "/data"
HUB_DATASET = re.compile(r"^[\w.-]+(?:/[\w.-]+)?:[\w.\[\]%:+-]+$")  # name:split, as the trainer
GLOB_MAGIC = re.compile(r"[*?[]")
# Trainer options whose values are container paths llm-installer sets: refused in pass-through.
OWNED_TRAIN_FLAGS = (
    "--model", "--output-dir", "--lora-dir", "--output", "--checkpoints-dir", "--logs-dir",
    "--tensorboard-host",
)  # fmt: skip


def data_mounts(data: str) -> tuple[tuple[Mount, ...], str]:
    """Read-only mounts under /data for a ``--data`` spec and the spec as the container sees it.

    The spec is the trainer's: a file, a folder, a quoted glob, a ``name:split`` Hub dataset, or
    a comma list of these. One local item is mounted at /data (a file at /data/NAME, a glob's
    folder at /data); several at /data/1, /data/2… Hub names pass through unchanged.
    """
    if Path(data).expanduser().exists():
        parts = [data]
    else:
        parts = [p.strip() for p in data.split(",") if p.strip()]
    if not parts:
        raise InvalidRunOptionError("--data is empty")
    local = [p for p in parts if not _is_hub_dataset(p)]
    mounts: list[Mount] = []
    rewritten: list[str] = []
    for part in parts:
        if part not in local:
            rewritten.append(part)
            continue
        root = DATA_TARGET if len(local) == 1 else f"{DATA_TARGET}/{len(mounts) + 1}"
        source, below = _data_source(part)
        target = f"{root}/{source.name}" if below == "" else root
        mounts.append(Mount(str(source), target, True))
        rewritten.append(f"{root}/{below}" if below else target)
    return tuple(mounts), ",".join(rewritten)


def _is_hub_dataset(part: str) -> bool:
    return not Path(part).expanduser().exists() and bool(HUB_DATASET.match(part))


def _data_source(part: str) -> tuple[Path, str | None]:
    """(host path to mount, what follows it in the container): None for a folder (mounted as
    the root), "" for a file (mounted as root/NAME), the pattern below a glob's folder."""
    path = Path(part).expanduser()
    if path.exists():
        path = path.resolve()
        return path, (None if path.is_dir() else "")
    if GLOB_MAGIC.search(part):
        pieces = path.parts
        fixed = next(i for i, piece in enumerate(pieces) if GLOB_MAGIC.search(piece))
        base = Path(*pieces[:fixed]) if fixed else Path(".")
        if base.is_dir():
            return base.resolve(), "/".join(pieces[fixed:])
    raise InvalidRunOptionError(
        f"--data {part}: no such file or folder",
        hint="Give a data file, a folder, a quoted glob ('data/*.jsonl') or a Hub dataset name:split.",
    )


def pass_through(extra_args: tuple[str, ...], paths: ModelPaths, root: str) -> tuple[str, ...]:
    """Trainer options as given, but a host ``--resume-from`` path inside the model folder
    becomes its container path; options that would move outputs out of the mounts are refused."""
    result: list[str] = []
    args = list(extra_args)
    while args:
        arg = args.pop(0)
        flag, has_value, value = arg.partition("=")
        if flag in OWNED_TRAIN_FLAGS:
            raise InvalidRunOptionError(
                f"{flag} is set by llm-installer: the outputs go to {paths.model_dir}",
                hint="Leave it out; lora/, checkpoints/ and logs/ in the model folder are used.",
            )
        if flag != "--resume-from":
            result.append(arg)
            continue
        if not has_value:
            if not args:
                raise InvalidRunOptionError("--resume-from needs a checkpoint folder")
            value = args.pop(0)
        result += ["--resume-from", _container_checkpoint(value, paths, root)]
    return tuple(result)


def _container_checkpoint(value: str, paths: ModelPaths, root: str) -> str:
    path = Path(value).expanduser()
    candidates = [path] if path.is_absolute() else [Path.cwd() / path, paths.checkpoints / path]
    for candidate in candidates:
        try:
            relative = candidate.resolve().relative_to(paths.model_dir)
        except ValueError:
            continue
        return f"{root}/{relative.as_posix()}"
    raise InvalidRunOptionError(
        f"--resume-from {value}: the checkpoint must be inside {paths.model_dir}",
        hint=f"Use a folder under {paths.checkpoints}, or --resume for the last one.",
    )


def plan_train(
    model_info: Mapping[str, Any], paths: ModelPaths, host: HostRuntime, options: TrainOptions
) -> StartPlan:
    """How to fine-tune this model here; the adapter lands in lora/, start then loads it.

    The model folder is mounted read-write at /work (the trainer swaps lora/ in atomically, so
    it needs lora/'s parent), with the weights mounted read-only over /work/model and at /model.
    The data is mounted read-only under /data. With --tensorboard-only nothing trains: the
    container shows the past runs' graphs from logs/training.
    """
    _check_port(options.tensorboard_port)
    _check_choices(device=options.device)
    if not options.tensorboard_only and not options.data:
        raise InvalidRunOptionError(
            "--data is required",
            hint="Give a data file, a folder, a quoted glob or a Hub dataset name:split.",
        )
    if host.os == "darwin":
        return _native_train(model_info, paths, host, options)
    device, warnings = choose_docker_device(model_info, host, options.device)
    if not options.tensorboard_only:
        warnings += refuse_cpu_if_gpu_required(model_info, device, options.force)
    data_volumes, data = data_mounts(options.data) if options.data else ((), None)
    user, chown = user_for(host, "train")
    mounts = [Mount(str(paths.weights), "/model", True), Mount(str(paths.model_dir), "/work")]
    if paths.weights == paths.model_dir / "model":  # keep the weights read-only under /work too
        mounts += [Mount(str(paths.weights), "/work/model", True)]
    if not options.tensorboard_only:
        mounts += data_volumes
    command = RUNTIME + train_args(
        model="/model", data=data, output_dir="/work", device=device,
        tensorboard_host="0.0.0.0", tensorboard_port=options.tensorboard_port, options=options,
        extra_args=pass_through(options.extra_args, paths, "/work"),
    )  # fmt: skip
    board = options.tensorboard or options.tensorboard_only
    role = "tensorboard" if options.tensorboard_only else "train"
    spec = ContainerSpec(
        image=image_tag(model_info),
        name=options.name or container_name(paths.model_dir, role),
        command=command,
        mounts=tuple(mounts),
        ports=((options.host, options.tensorboard_port, options.tensorboard_port),)
        if board
        else (),
        env=(("HOME", "/tmp"),),
        user=user,
        labels=labels_for(paths, model_info, role, options.tensorboard_port if board else 0),
        healthcheck=False,
        **(gpu_flags(device, host, "train") if not options.tensorboard_only else {}),
    )
    return DockerPlan(
        container=spec, device=device,
        url=local_url(options.host, options.tensorboard_port) if board else "",
        warnings=warnings, writable_dirs=(paths.logs, paths.lora, paths.checkpoints),
        chown_to=chown, owned_roots=(paths.model_dir,) if chown else (),
    )  # fmt: skip


def _native_train(
    model_info: Mapping[str, Any], paths: ModelPaths, host: HostRuntime, options: TrainOptions
) -> NativePlan:
    device, warnings = choose_native_device(model_info, host, options.device)
    if not options.tensorboard_only:
        warnings += refuse_cpu_if_gpu_required(model_info, device, options.force)
    venv, setup = native_setup(host, paths)
    args = train_args(
        model=str(paths.weights), data=options.data, output_dir=str(paths.model_dir),
        device=device, tensorboard_host=options.host, tensorboard_port=options.tensorboard_port,
        options=options,
    )  # fmt: skip
    board = options.tensorboard or options.tensorboard_only
    return NativePlan(
        venv=venv, setup=setup, command=(str(venv / "bin" / "python"), *RUNTIME[1:], *args),
        device=device, url=local_url(options.host, options.tensorboard_port) if board else "",
        warnings=warnings, env=(("HF_HUB_OFFLINE", "1"),),
        writable_dirs=(paths.logs, paths.lora, paths.checkpoints),
    )  # fmt: skip


# ── renderers ───────────────────────────────────────────────────────────────────────────


def docker_argv(spec: ContainerSpec, *, detach: bool = False) -> list[str]:
    """``docker run`` arguments; ``--rm`` in the foreground, a kept container when detached
    (so its logs can be shown if it dies while loading)."""
    argv = [
        "docker",
        "run",
        "-d" if detach else "--rm",
        "--init",
        "--pull=never",
        "--name",
        spec.name,
    ]
    for key, value in spec.labels:
        argv += ["--label", f"{key}={value}"]
    if spec.gpus:
        argv += ["--gpus", "all" if spec.gpus == "all" else f'"device={spec.gpus}"']
    argv += [] if spec.healthcheck else ["--no-healthcheck"]
    argv += ["--ipc=host"] if spec.ipc_host else []
    argv += [f"--shm-size={spec.shm_size}"] if spec.shm_size else []
    for ip, host_port, container_port in spec.ports:
        argv += ["-p", f"{ip}:{host_port}:{container_port}"]
    for mount in spec.mounts:
        argv += ["-v", f"{mount.source}:{mount.target}" + (":ro" if mount.read_only else "")]
    argv += ["--user", spec.user] if spec.user else []
    for key, value in spec.env:
        argv += ["-e", f"{key}={value}"]
    for key in spec.secret_env:
        argv += ["-e", key]  # the value comes from docker's own environment, never argv
    return [*argv, spec.image, *spec.command]


def docker_py_kwargs(spec: ContainerSpec, secrets: Mapping[str, str]) -> dict[str, Any]:
    """Keywords for ``client.containers.run(**kwargs, detach=True)``."""
    from docker.types import DeviceRequest
    from docker.types import Mount as DockerMount

    devices = []
    if spec.gpus:
        ids = None if spec.gpus == "all" else spec.gpus.split(",")
        devices = [
            DeviceRequest(count=-1 if ids is None else None, device_ids=ids, capabilities=[["gpu"]])
        ]
    return {
        "image": spec.image,
        "command": list(spec.command),
        "name": spec.name,
        "init": True,
        "labels": dict(spec.labels),
        "device_requests": devices,
        "ipc_mode": "host" if spec.ipc_host else None,
        "shm_size": spec.shm_size,
        "ports": {f"{c}/tcp": (ip, h) for ip, h, c in spec.ports},
        "mounts": [
            DockerMount(m.target, m.source, type="bind", read_only=m.read_only) for m in spec.mounts
        ],
        "user": spec.user,
        "healthcheck": None if spec.healthcheck else {"test": ["NONE"]},
        "environment": {
            **dict(spec.env),
            **{k: secrets[k] for k in spec.secret_env if k in secrets},
        },
    }


def plan_summary(plan: StartPlan) -> dict[str, Any]:
    """A JSON-able view of a plan, without secret values (golden files, --json output)."""
    summary: dict[str, Any] = {
        "kind": plan.kind,
        "device": plan.device,
        "url": plan.url,
        "warnings": list(plan.warnings),
        "argv": plan.argv(),
        "secret_env": sorted(plan.secrets),
        "writable_dirs": [str(p) for p in plan.writable_dirs],
    }
    if isinstance(plan, NativePlan):
        summary["setup"] = [list(step) for step in plan.setup]
        summary["env"] = dict(plan.env)
    else:
        summary["chown_to"] = list(plan.chown_to) if plan.chown_to else None
    return summary
