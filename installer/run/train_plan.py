"""How to fine-tune an installed model on this host: the trainer in the model's image, or in
the macOS virtualenv; its data mounted read-only under /data, its outputs in the model folder.

Pure, like ``llm_installer.run.start_plan``: plans are checked against golden files.
"""

from __future__ import annotations

import json
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from llm_installer.run.container import ContainerSpec, Mount, container_name, labels_for, user_for
from llm_installer.run.devices import (
    HostRuntime,
    choose_docker_device,
    choose_native_device,
    gpu_flags,
    refuse_cpu_if_gpu_required,
)
from llm_installer.run.start_plan import (
    RUNTIME,
    DockerPlan,
    InvalidRunOptionError,
    ModelPaths,
    NativePlan,
    StartPlan,
    image_tag,
    local_url,
    native_differences,
    native_setup,
    validate_choices,
    validate_port,
)
from llm_runtime.model_info import ModelInfo
from llm_runtime.training.data.sources import HUB_SPEC

TENSORBOARD_PORT = 6006
DATA_TARGET = "/data"
WORK = "/work"  # the model folder in the training container
HOST_PATHS_ENV = "LLM_HOST_PATHS"  # read by llm_runtime.training.callbacks.host_paths
HF_TOKEN_ENV = "HF_TOKEN"
HF_CACHE = Path("cache") / "huggingface"  # in the model folder: Hub datasets, downloaded once
GLOB_MAGIC = re.compile(r"[*?[]")
# Trainer options whose values are container paths llm-installer sets: refused in pass-through.
OWNED_TRAIN_FLAGS = (
    "--model", "--output-dir", "--lora-dir", "--output", "--checkpoints-dir", "--logs-dir",
    "--tensorboard-host",
)  # fmt: skip


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
    hf_token: str | None = field(default=None, repr=False)  # for Hub datasets; never in argv
    hf_endpoint: str | None = None  # HF_ENDPOINT (a mirror) for Hub datasets


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


def data_mounts(data: str) -> tuple[tuple[Mount, ...], str]:
    """Read-only mounts under /data for a ``--data`` spec and the spec as the container sees it.

    The spec is the trainer's: a file, a folder, a quoted glob, a ``name:split`` Hub dataset, or
    a comma list of these. One local item is mounted at /data: a folder, a glob's fixed folder,
    or a file's folder (so the images an image+caption file names beside it are there too; only
    the file, at /data/NAME, when that folder is closed to other users). Several go to /data/1,
    /data/2…; Hub names pass through unchanged.
    """
    parts = _data_parts(data)
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


def _data_parts(data: str) -> list[str]:
    """The items of a --data spec: a comma list, unless the whole spec is an existing path."""
    if Path(data).expanduser().exists():
        return [data]
    return [p.strip() for p in data.split(",") if p.strip()]


def hub_datasets(data: str | None) -> tuple[str, ...]:
    """The ``name:split`` Hub datasets a --data spec names (the trainer's syntax)."""
    return tuple(p for p in _data_parts(data) if _is_hub_dataset(p)) if data else ()


def hub_access(
    options: TrainOptions, cache: Path | str
) -> tuple[tuple[tuple[str, str], ...], dict[str, str]]:
    """(environment, secrets) that let the trainer download --data's Hub datasets into
    ``cache``; nothing when it names none (the image and the native plan stay offline).

    The token is a secret: the container gets it by name (``-e HF_TOKEN``) from the docker
    client's environment, never in an argument, train.sh or a log line.
    """
    if options.tensorboard_only or not hub_datasets(options.data):
        return (), {}
    env = [("HF_HUB_OFFLINE", "0"), ("HF_DATASETS_OFFLINE", "0"), ("HF_HOME", str(cache))]
    env += [("HF_ENDPOINT", options.hf_endpoint)] if options.hf_endpoint else []
    return tuple(env), ({HF_TOKEN_ENV: options.hf_token} if options.hf_token else {})


def _open_to_others(folder: Path) -> bool:
    """Can the container's user (not the host's) list and enter it?"""
    mode = folder.stat().st_mode
    return bool(mode & stat.S_IROTH and mode & stat.S_IXOTH)


def _is_hub_dataset(part: str) -> bool:
    return not Path(part).expanduser().exists() and bool(HUB_SPEC.match(part))


def _data_source(part: str) -> tuple[Path, str | None]:
    """(host path to mount, what follows it in the container): None for a folder, a file's name
    when its folder is mounted, "" when only the file is, the pattern below a glob's folder."""
    path = Path(part).expanduser()
    if path.exists():
        path = path.resolve()
        if path.is_dir():
            return path, None
        return (path.parent, path.name) if _open_to_others(path.parent) else (path, "")
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
    model_info: ModelInfo, paths: ModelPaths, host: HostRuntime, options: TrainOptions
) -> StartPlan:
    """How to fine-tune this model here; the adapter lands in lora/, start then loads it.

    The model folder is mounted read-write at /work (the trainer swaps lora/ and finetuned/ in
    atomically, so it needs their parent), with the weights mounted read-only over /work/model
    and at /model, and install's files (model_info.json, the scripts…) read-only over theirs.
    The data is mounted read-only under /data; Hub datasets download into cache/huggingface.
    With --tensorboard-only nothing trains: the container shows the past runs' graphs.
    """
    validate_port(options.tensorboard_port)
    validate_choices(device=options.device)
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
    user, chown = user_for(host)
    mounts = [Mount(str(paths.weights), "/model", True), *_work_mounts(paths)]
    if not options.tensorboard_only:
        mounts += data_volumes
    hub_env, secrets = hub_access(options, f"{WORK}/{HF_CACHE.as_posix()}")
    command = RUNTIME + train_args(
        model="/model", data=data, output_dir=WORK, device=device,
        tensorboard_host="0.0.0.0", tensorboard_port=options.tensorboard_port, options=options,
        extra_args=pass_through(options.extra_args, paths, WORK) + continue_adapter(model_info, paths, options, WORK),
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
        env=(("HOME", "/tmp"), *hub_env, (HOST_PATHS_ENV, host_paths_json(mounts))),
        secret_env=tuple(secrets),
        user=user,
        labels=labels_for(
            paths.model_dir, model_info, role, options.tensorboard_port if board else 0
        ),
        healthcheck=False,
        **(gpu_flags(device, host, "train") if not options.tensorboard_only else {}),
    )
    return DockerPlan(
        container=spec, device=device,
        url=local_url(options.host, options.tensorboard_port) if board else "",
        warnings=warnings, secrets=secrets, writable_dirs=_writable_dirs(paths, hub_env),
        chown_to=chown, owned_roots=(paths.model_dir,) if chown else (),
    )  # fmt: skip


def host_paths_json(mounts: list[Mount]) -> str:
    """Where each mount comes from, so the trainer prints host paths (lora/ in the model folder)."""
    shown = {mount.target: mount.source for mount in mounts}

    def follows(target: str) -> bool:  # /work/start.sh from /work: nothing to add
        parent = target.rsplit("/", 1)[0]
        return parent in shown and shown[target] == f"{shown[parent]}/{target.rsplit('/', 1)[1]}"

    return json.dumps({k: v for k, v in shown.items() if not follows(k)}, sort_keys=True)


def continue_adapter(
    model_info: ModelInfo, paths: ModelPaths, options: TrainOptions, root: str
) -> tuple[str, ...]:
    """An installed adapter repo (llm_installer.build.adapters) trains on from its adapter in lora/."""
    if options.tensorboard_only or not model_info.adapter or not paths.has_lora:
        return ()
    args = " ".join(options.extra_args).replace("=", " ").split()
    method = args[args.index("--method") + 1] if "--method" in args[:-1] else "lora"
    if method not in ("lora", "qlora") or {"--from-adapter", "--resume", "--resume-from"} & set(
        args
    ):
        return ()
    return ("--from-adapter", f"{root}/lora")


def _work_mounts(paths: ModelPaths) -> list[Mount]:
    """/work writable for the trainer's outputs; the weights and install's files read-only."""
    mounts = [Mount(str(paths.model_dir), WORK)]
    if paths.weights == paths.model_dir / "model":  # keep the weights read-only under /work too
        mounts += [Mount(str(paths.weights), f"{WORK}/model", True)]
    return mounts + [Mount(str(path), f"{WORK}/{path.name}", True) for path in paths.protected]


def _writable_dirs(paths: ModelPaths, hub_env: tuple) -> tuple[Path, ...]:
    cache = (paths.model_dir / HF_CACHE,) if hub_env else ()
    return (paths.logs, paths.lora, paths.checkpoints, *cache)


def _native_train(
    model_info: ModelInfo, paths: ModelPaths, host: HostRuntime, options: TrainOptions
) -> NativePlan:
    device, warnings = choose_native_device(model_info, host, options.device)
    if not options.tensorboard_only:
        warnings += refuse_cpu_if_gpu_required(model_info, device, options.force)
    venv, setup = native_setup(host, paths, model_info)
    args = train_args(
        model=str(paths.weights), data=options.data, output_dir=str(paths.model_dir),
        device=device, tensorboard_host=options.host, tensorboard_port=options.tensorboard_port,
        options=options,
        extra_args=options.extra_args + continue_adapter(model_info, paths, options, str(paths.model_dir)),
    )  # fmt: skip
    board = options.tensorboard or options.tensorboard_only
    hub_env, secrets = hub_access(options, paths.model_dir / HF_CACHE)
    return NativePlan(
        venv=venv, setup=setup, command=(str(venv / "bin" / "python"), *RUNTIME[1:], *args),
        device=device, url=local_url(options.host, options.tensorboard_port) if board else "",
        warnings=warnings, env=hub_env or (("HF_HUB_OFFLINE", "1"),), secrets=secrets,
        writable_dirs=_writable_dirs(paths, hub_env),
        differences=native_differences(model_info, device),
    )  # fmt: skip
