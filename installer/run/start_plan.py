"""How to serve an installed model on this host: a ``docker run`` or a native macOS plan.

Everything here but ``model_paths`` is pure: the same model_info, paths, host and options always
give the same plan, so plans are checked against golden files. The plan values are shared with
training (``train_plan``); the device choice is in ``devices``, the container's rendering in
``container``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from llm_installer.errors import InstallerError
from llm_installer.resources import data_file
from llm_installer.run.container import (
    ContainerSpec,
    Mount,
    container_name,
    docker_argv,
    labels_for,
    user_for,
)
from llm_installer.run.devices import (
    HostRuntime,
    choose_docker_device,
    choose_native_device,
    gpu_flags,
    gpu_warnings,
    refuse_cpu_if_gpu_required,
)
from llm_installer.run.model_folder import GENERATED
from llm_runtime.model_info import ModelInfo

# What install wrote in the model folder: training mounts these read-only over its writable /work.
PROTECTED_FILES = (*GENERATED, "install.log")
FINETUNED = "finetuned"  # where a full fine-tune (--method full) saves the whole model

CONTAINER_PORT = 8000
API_KEY_ENV = "LLM_API_KEY"
NATIVE_VENV = ".venv-native"
RUNTIME = ("python", "-m", "llm_runtime")
QUANTIZATION_FLAGS = {"8bit": "--load-in-8bit", "4bit": "--load-in-4bit"}
CHOICES = {
    "device": ("auto", "cuda", "cpu", "mps"),
    "dtype": ("auto", "float16", "bfloat16", "float32"),
    "weights": ("auto", "base", FINETUNED),
}


class InvalidRunOptionError(InstallerError):
    exit_code = 2


# ── values ──────────────────────────────────────────────────────────────────────────────


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
    protected: tuple[Path, ...] = ()  # install's files in the folder (PROTECTED_FILES present)
    finetuned: Path | None = None  # finetuned/ when it holds a whole model (config.json)
    finetuned_is_newer: bool = False  # finetuned/ was saved after lora/'s adapter (or alone)


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
    weights: str = "auto"  # auto: finetuned/ when it is the newest training output, else base


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
    differences: tuple[str, ...] = ()  # from the model's image (native_differences)
    kind: str = "native"

    def argv(self, *, detach: bool = False) -> list[str]:
        return list(self.command)


StartPlan = DockerPlan | NativePlan


def model_paths(model_dir: Path, model_info: ModelInfo) -> ModelPaths:
    """The model's folders; weights from ``weights_path`` (a local-folder install) or model/."""
    model_dir = Path(model_dir).resolve()
    weights = Path(model_info.weights_path or model_dir / "model").resolve()
    lora = model_dir / "lora"
    has_lora = (lora / "adapter_config.json").is_file()
    installer_dir = model_info.installer_dir
    finetuned = model_dir / FINETUNED
    whole = (finetuned / "config.json").is_file()
    return ModelPaths(
        model_dir=model_dir,
        weights=weights,
        logs=model_dir / "logs",
        lora=lora,
        checkpoints=model_dir / "checkpoints",
        has_lora=has_lora,
        lora_unusable=not has_lora and lora.is_dir() and any(lora.iterdir()),
        installer_dir=Path(installer_dir) if installer_dir else None,
        protected=tuple(model_dir / n for n in PROTECTED_FILES if (model_dir / n).is_file()),
        finetuned=finetuned if whole else None,
        finetuned_is_newer=whole
        and _saved_after(finetuned / "config.json", lora / "adapter_config.json"),
    )


def _saved_after(path: Path, other: Path) -> bool:
    return not other.is_file() or path.stat().st_mtime >= other.stat().st_mtime


# ── options and helpers (several shared with train_plan) ─────────────────────────────


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
    options: StartOptions, model_info: ModelInfo, device: str
) -> tuple[StartOptions, tuple[str, ...]]:
    """The install's --quantization is the default; off CUDA it is dropped with a warning."""
    installed = model_info.quantization
    if installed not in QUANTIZATION_FLAGS or options.load_in_8bit or options.load_in_4bit:
        return options, ()
    if device != "cuda":
        return options, (
            f"Installed with {installed} quantization, which needs CUDA: loading unquantized on {device}.",
        )
    return replace(options, load_in_8bit=installed == "8bit", load_in_4bit=installed == "4bit"), ()


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


def local_url(host: str, port: int) -> str:
    shown = "localhost" if host in ("127.0.0.1", "0.0.0.0", "localhost", "::") else host
    return f"http://{shown}:{port}"


def secrets_for(api_key: str | None) -> dict[str, str]:
    return {API_KEY_ENV: api_key} if api_key else {}


def image_tag(model_info: ModelInfo) -> str:
    tag = model_info.image_tag
    if not tag:
        raise InvalidRunOptionError(
            "model_info.json names no image",
            hint="Reinstall the model: `llm-installer install MODEL --yes`.",
        )
    return str(tag)


def validate_port(port: int) -> None:
    if not 1 <= port <= 65535:
        raise InvalidRunOptionError(f"--port {port} is not a TCP port (1-65535)")


def validate_choices(**values: str | None) -> None:
    for name, value in values.items():
        choices = CHOICES[name]
        if value is not None and value not in choices:
            raise InvalidRunOptionError(f"--{name} {value}: choose one of {', '.join(choices)}")


# ── plans ───────────────────────────────────────────────────────────────────────────────


def plan_start(
    model_info: ModelInfo, paths: ModelPaths, host: HostRuntime, options: StartOptions
) -> StartPlan:
    """How to serve this model here: a container on Linux, a virtualenv on macOS."""
    validate_port(options.port)
    validate_choices(device=options.device, dtype=options.dtype, weights=options.weights)
    paths, served = served_weights(paths, options.weights)
    if host.os == "darwin":
        return _native_start(model_info, paths, host, options, served)
    device, warnings = choose_docker_device(model_info, host, options.device)
    warnings += refuse_cpu_if_gpu_required(model_info, device, options.force)
    options, dropped = with_installed_quantization(options, model_info, device)
    warnings += (
        served + dropped + _lora_warning(paths) + (gpu_warnings(host) if device == "cuda" else ())
    )
    user, chown = user_for(host)
    command = RUNTIME + serve_args(
        model="/model", host="0.0.0.0", port=CONTAINER_PORT, logs="/logs",
        lora="/lora" if paths.has_lora else None, device=device, options=options,
    )  # fmt: skip
    mounts = [Mount(str(paths.weights), "/model", True), Mount(str(paths.logs), "/logs")]
    mounts += [Mount(str(paths.lora), "/lora", True)] if paths.has_lora else []
    mounts += adapter_info_mount(paths, model_info)
    spec = ContainerSpec(
        image=image_tag(model_info),
        name=options.name or container_name(paths.model_dir),
        command=command,
        mounts=tuple(mounts),
        ports=((options.host, options.port, CONTAINER_PORT),),
        env=(("HOME", "/tmp"),),
        secret_env=(API_KEY_ENV,) if options.api_key else (),
        user=user,
        labels=labels_for(paths.model_dir, model_info, "serve", options.port),
        **gpu_flags(device, host, "serve"),
    )
    return DockerPlan(
        container=spec, device=device, url=local_url(options.host, options.port),
        warnings=warnings, secrets=secrets_for(options.api_key),
        writable_dirs=(paths.logs,), chown_to=chown,
    )  # fmt: skip


def adapter_info_mount(paths: ModelPaths, model_info: ModelInfo) -> list[Mount]:
    """An adapter installed on its base's image: its own model_info.json over the image's, so
    the server names the adapter and its base (llm_installer.build.adapters)."""
    if not model_info.adapter:
        return []
    return [Mount(str(paths.model_dir / "model_info.json"), "/opt/llm/model_info.json", True)]


def served_weights(paths: ModelPaths, choice: str) -> tuple[ModelPaths, tuple[str, ...]]:
    """The weights to serve and a loud note when they are not the base ones (+ lora/).

    ``auto`` serves finetuned/ when a full fine-tune saved it after lora/'s adapter (the newest
    training output wins); ``base`` the installed weights with lora/; ``finetuned`` finetuned/.
    """
    picked = choice
    if choice == "auto":
        picked = FINETUNED if paths.finetuned and paths.finetuned_is_newer else "base"
    if picked == "base":
        if choice == "auto" and paths.finetuned:
            older = f"{paths.finetuned} holds a full fine-tune older than the adapter in lora/"
            return paths, (f"{older}: `--weights finetuned` serves it.",)
        return paths, ()
    if paths.finetuned is None:
        raise InvalidRunOptionError(
            f"--weights finetuned: {paths.model_dir / FINETUNED} holds no fine-tuned model",
            hint="Make one with `./train.sh --data … --method full`, or leave --weights out.",
        )
    skipped = ", with the adapter in lora/" if paths.has_lora else ""
    note = (
        f"Serving the full fine-tune in {paths.finetuned}, not the installed weights; "
        f"`--weights base` serves those{skipped}."
    )
    return replace(paths, weights=paths.finetuned, has_lora=False, lora_unusable=False), (note,)


def _lora_warning(paths: ModelPaths) -> tuple[str, ...]:
    if not paths.lora_unusable:
        return ()
    return (f"{paths.lora} holds files but no adapter_config.json: no adapter is loaded.",)


def native_setup(
    host: HostRuntime, paths: ModelPaths, model_info: ModelInfo | None = None
) -> tuple[Path, tuple[tuple[str, ...], ...]]:
    """The virtualenv beside the model and the commands that make it (run when missing): the
    image's dependency set (the runtime's packages and the model's own, e.g. sentencepiece,
    timm, librosa) with torch, pinned by the images' constraints.txt, so a Mac gets the same
    versions as the image."""
    venv = paths.model_dir / NATIVE_VENV
    if paths.installer_dir is None:
        raise InvalidRunOptionError(
            "model_info.json does not say where llm-installer is (installer_dir)",
            hint="Reinstall the model with `llm-installer install MODEL --yes`.",
        )
    python = str(venv / "bin" / "python")
    copy, runtime, constraints = _runtime_source(paths.installer_dir, python)
    return venv, (
        (host.python, "-m", "venv", str(venv)),
        (python, "-m", "pip", "install", "--upgrade", "pip"),
        *copy,
        (
            python, "-m", "pip", "install", "--constraint", str(constraints),
            *runtime, *native_packages(model_info or ModelInfo()),
        ),
    )  # fmt: skip


COPY_RUNTIME = (
    "import shutil, sys, sysconfig; shutil.copytree(sys.argv[1], sysconfig.get_paths()['purelib']"
    " + '/llm_runtime', dirs_exist_ok=True, ignore=shutil.ignore_patterns('__pycache__'))"
)


def _runtime_source(
    installer_dir: Path, python: str
) -> tuple[tuple[tuple[str, ...], ...], tuple[str, ...], Path]:
    """(steps, pip arguments, constraints file) that put llm_runtime into the native venv: from a
    checkout, installed editable with its extra; from a wheel's site-packages (pip, pipx), copied
    as into the image, with the runtime extra's requirements from the installed metadata."""
    if not (installer_dir / "llm_runtime").is_dir():
        constraints = installer_dir / "dockerfiles" / "constraints.txt"
        return (), ("-e", f"{installer_dir}[runtime]"), constraints
    from importlib.metadata import requires

    from packaging.requirements import Requirement

    wanted = [Requirement(r) for r in requires("llm-installer") or ()]
    runtime = tuple(
        f"{r.name}{r.specifier}"
        for r in wanted
        if r.marker and r.marker.evaluate({"extra": "runtime"})
    )
    copy = ((python, "-c", COPY_RUNTIME, str(installer_dir / "llm_runtime")),)
    return copy, runtime, data_file("dockerfiles", "constraints.txt")


def native_packages(model_info: ModelInfo) -> tuple[str, ...]:
    """torch + the image's packages for this model (CPU/MPS: no CUDA-only ones, no CUDA
    kernels), sorted; a package the image builds in a wheel stage at the image's version."""
    from llm_installer.build.image import (  # docker-py: only when native
        dependency_set,
        wheel_builds,
    )

    packages = dependency_set(_requirements(model_info), cuda=False)
    pinned = {build["package"]: build["spec"] for build in wheel_builds(packages, cuda=False)}
    return ("torch", *(pinned.get(p, p) for p in packages))


def native_differences(model_info: ModelInfo, device: str) -> tuple[str, ...]:
    """How the native virtualenv differs from the model's image (stated in the plan)."""
    from llm_installer.build.image import cuda_kernels, dependency_set

    profile = _requirements(model_info)
    cuda_only = set(dependency_set(profile, cuda=True)) - set(dependency_set(profile, cuda=False))
    cuda_only |= {item.split(" ")[0] for item in cuda_kernels(profile)}
    where = "Metal (MPS)" if device == "mps" else "the CPU"
    left_out = [f"Left out (CUDA only): {', '.join(sorted(cuda_only))}."] if cuda_only else []
    return (
        f"Runs on {where} with PyTorch's macOS wheel; macOS has no CUDA.",
        *left_out,
        "Every other package at the image's version (dockerfiles/constraints.txt).",
    )


def _requirements(model_info: ModelInfo) -> dict[str, Any]:
    requirements = model_info.requirements
    return {
        "requirements": {
            "packages": list(requirements.get("packages") or []),
            "architecture": list(requirements.get("architecture") or []),
        }
    }


def _native_start(
    model_info: ModelInfo, paths: ModelPaths, host: HostRuntime, options: StartOptions,
    served: tuple[str, ...],
) -> NativePlan:  # fmt: skip
    device, warnings = choose_native_device(model_info, host, options.device)
    warnings += refuse_cpu_if_gpu_required(model_info, device, options.force)
    options, dropped = with_installed_quantization(options, model_info, device)
    warnings += served + dropped + _lora_warning(paths)
    venv, setup = native_setup(host, paths, model_info)
    args = serve_args(
        model=str(paths.weights), host=options.host, port=options.port, logs=str(paths.logs),
        lora=str(paths.lora) if paths.has_lora else None, device=device, options=options,
    )  # fmt: skip
    return NativePlan(
        venv=venv, setup=setup, command=(str(venv / "bin" / "python"), *RUNTIME[1:], *args),
        device=device, url=local_url(options.host, options.port), warnings=warnings,
        env=(("HF_HUB_OFFLINE", "1"),), secrets=secrets_for(options.api_key),
        writable_dirs=(paths.logs,), differences=native_differences(model_info, device),
    )  # fmt: skip


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
        summary["differences_from_image"] = list(plan.differences)
    else:
        summary["chown_to"] = list(plan.chown_to) if plan.chown_to else None
    return summary
