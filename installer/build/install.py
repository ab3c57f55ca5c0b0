"""``llm-installer install``: check → download → image (base, deps, model) → smoke test → scripts.

Interrupted or failed installs leave no ``.install_complete`` and no image tag of their own;
downloaded files stay for the next run to resume; lora/, checkpoints/ and logs/ are never touched.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import typer

import llm_runtime
from llm_installer import __version__
from llm_installer.check.checker import check_file_stem, is_local_folder, run_check
from llm_installer.check.hardware import hardware_profile
from llm_installer.console import Output
from llm_installer.errors import InstallerError
from llm_installer.logs import LOG_FORMAT
from llm_installer.run.model_folder import ModelPaths
from llm_installer.settings import PROJECT_DIR, Settings
from llm_runtime.contract import GGUF, TRANSFORMERS
from llm_runtime.model_info import ModelInfo, write_model_info

log = logging.getLogger("llm_installer.build.install")
CHECK_MAX_AGE = timedelta(hours=24)
GiB = 1024**3


class IncompatibleModelError(InstallerError):
    exit_code = 25


class NotEnoughDiskError(InstallerError):
    exit_code = 26
    hint = "Free some space, or point models_dir (config.yaml / LLM_INSTALLER_MODELS_DIR) at a bigger disk."


class InstallCancelled(InstallerError):
    exit_code = 1


class UnreadableWeightsError(InstallerError):
    exit_code = 27
    hint = (
        "Make the files readable to all (chmod -R a+rX on the folder), or install a copy you own."
    )


@dataclass(frozen=True)
class InstallOptions:
    revision: str | None = None
    quantization: str | None = None  # "4bit" | "8bit"
    device: str | None = None  # auto | cuda | cpu (default: config default_device)
    base_image: str | None = None  # a flavour (cpu, cuda, cuda-devel) or an image tag
    yes: bool = False
    trust_remote_code: bool = False
    rootfs: bool = False  # make a missing base image from a debootstrap root filesystem
    no_cache: bool = False  # rebuild the dependency layer from scratch
    base: str | None = None  # a PEFT adapter's base model (default: its adapter_config.json)
    quant: str | None = None  # a GGUF repo's quantization (default: the largest that fits)
    engine: str = "auto"  # auto | vllm | transformers (llm_installer.check.engines)


def install_model(
    model: str, options: InstallOptions, settings: Settings, output: Output
) -> ModelInfo:
    """Install ``model``; returns the written model_info."""
    profile = reuse_or_check(model, options.revision, settings, output, base=options.base)
    if "adapter" in profile:
        from llm_installer.build.adapters import install_adapter

        return install_adapter(profile, options, settings, output)
    refuse_unservable(profile)
    profile = with_quantization(profile, options.quant, output)
    profile = {
        **profile,
        "hardware": hardware_profile(settings.models_path),
    }  # now, not the saved check's
    refuse_if_unusable(profile, options, output)
    device = choose_device(profile, options, settings)
    if profile["source"] == "local":  # before any folder is made: a refusal leaves nothing behind
        ensure_readable(Path(profile["local_path"]), options, output)
    paths = ModelPaths.for_model(settings.models_path, profile["model_id"])
    prepare_folder(paths, options, settings, output)
    with install_log(paths.install_log), cleanup_on_failure(paths, output) as state:
        log.info("Installing %s (device %s) into %s", profile["model_id"], device, paths.root)
        weights = fetch_weights(profile, paths, settings, output)
        info = build_and_test(profile, paths, weights, device, options, settings, output, state)
        record = finish(paths, info, output)
    return record


def reuse_or_check(
    model: str, revision: str | None, settings: Settings, output: Output, base: str | None = None
) -> dict[str, Any]:
    """A saved check younger than 24 hours for the same model, revision (and base), else a fresh check."""
    saved = settings.logs_path / "checks" / f"{check_file_stem(_model_id_guess(model))}.json"
    profile = _saved_check(saved)
    if profile:
        age = datetime.now(timezone.utc) - datetime.fromisoformat(
            profile.get("checked_at", "1970-01-01T00:00:00+00:00")
        )
        same_base = base is None or (profile.get("base_model") or {}).get("reference") == base
        if (
            age < CHECK_MAX_AGE
            and profile.get("revision") == revision
            and profile.get("source") == _source_kind(model)
            and same_base
        ):
            output.info(f"Using the check from {saved} ({int(age.total_seconds() // 60)} min old).")
            return profile
    return run_check(model, revision=revision, settings=settings, output=output, base=base).profile


def _saved_check(path: Path) -> dict[str, Any] | None:
    """A saved check's profile; None when there is none or it cannot be read."""
    try:
        profile = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return None
    return profile if isinstance(profile, dict) else None


def _model_id_guess(model: str) -> str:
    if is_local_folder(model):
        path = Path(model).expanduser().resolve()
        return path.parent.name if path.name == "model" else path.name
    return model


def _source_kind(model: str) -> str:
    return "local" if is_local_folder(model) else "hub"


def refuse_unservable(profile: dict[str, Any]) -> None:
    """Refuse, before any download, a family no image can serve, saying why."""
    from llm_installer.check.serving import refusal_reason

    reason = refusal_reason(profile["family"])
    if reason is not None:
        raise IncompatibleModelError(
            f"{profile['model_id']} is a {profile['family']} model, which install cannot serve yet: {reason}.",
            hint="Nothing was downloaded. `llm-installer check` still reports its requirements and memory.",
        )


def with_quantization(profile: dict[str, Any], quant: str | None, output: Output) -> dict[str, Any]:
    """A GGUF repo with the one quantization to install: its files are the weights to fetch."""
    if profile["family"] != GGUF:
        if quant:
            raise InstallerError(
                f"--quant picks a GGUF file; {profile['model_id']} is a {profile['family']} model.",
                hint="Drop --quant.",
            )
        return profile
    from llm_installer.check.gguf_quants import choose_quantization

    row = choose_quantization(profile, quant)
    output.info(f"GGUF quantization {row['quantization']}: {', '.join(row['files'])}")
    if not row["fits"]:
        output.warning(
            f"{row['quantization']} needs more memory than this machine has free; a smaller --quant may fit."
        )
    sizes = {f["path"]: f["size"] for f in profile["files"]["all"]}
    files = {
        **profile["files"],
        "weight_files": [{"path": p, "size": sizes.get(p, 0)} for p in row["files"]],
    }
    return {
        **profile,
        "files": files,
        "gguf_file": sorted(row["files"])[0],
        "gguf_quantization": row["quantization"],
    }


def refuse_if_unusable(profile: dict[str, Any], options: InstallOptions, output: Output) -> None:
    from llm_installer.check.report import render_report

    verdict = profile["compatibility"]["verdict"]
    if verdict == "incompatible":
        output.info("")
        output.out.print(render_report(profile))
        raise IncompatibleModelError(
            f"{profile['model_id']} cannot run on this machine: {profile['compatibility'].get('reason', '')}",
            hint="See the report above; a smaller model or a quantized variant (e.g. GGUF, AWQ) may fit.",
        )
    if profile.get("trust_remote_code") and not options.trust_remote_code:
        raise IncompatibleModelError(
            f"{profile['model_id']} runs custom code from its repo (auto_map)",
            hint="Read that code first; then rerun with --trust-remote-code to allow it.",
        )
    if verdict == "limited":
        output.warning(f"Limited compatibility: {profile['compatibility'].get('reason', '')}")
    for warning in profile.get("warnings") or []:
        output.warning(warning)


def choose_device(profile: dict[str, Any], options: InstallOptions, settings: Settings) -> str:
    device = options.device or settings.default_device
    if device == "auto":
        hardware = profile["hardware"]
        from llm_installer.build.base_images import cuda_choice_for

        usable = (
            hardware.get("gpus")
            and hardware.get("nvidia_runtime")
            and cuda_choice_for(hardware).flavour
        )
        device = "cuda" if usable else "cpu"
    if device == "mps":
        device = "cpu"  # the image is CPU; start.sh runs natively on macOS for MPS
    if device == "cuda" and profile["hardware"].get("gpus"):
        from llm_installer.build.base_images import require_cuda_flavour

        require_cuda_flavour(profile["hardware"])  # before any download: exit 32 with the reason
    if options.quantization and device != "cuda":
        raise IncompatibleModelError(
            f"--quantization {options.quantization} needs an NVIDIA GPU (bitsandbytes); this install targets {device}",
            hint="Drop --quantization, or install on a machine with an NVIDIA GPU and the container toolkit.",
        )
    return device


def prepare_folder(
    paths: ModelPaths, options: InstallOptions, settings: Settings, output: Output
) -> None:
    if paths.state == "complete":
        if not options.yes and not typer.confirm(
            f"{paths.root} is already installed. Reinstall?", default=False
        ):
            raise InstallCancelled("Reinstall cancelled; the existing install is unchanged.")
        paths.clean_generated(keep_weights=True)
    elif paths.state == "incomplete":
        output.info("Previous installation incomplete. Starting fresh...")
        paths.clean_generated(keep_weights=settings.resume_downloads)
    paths.create()


@contextmanager
def install_log(path: Path):
    """Send this install's log records to install.log too."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger("llm_installer")
    root.addHandler(handler)
    root.setLevel(min(root.level or logging.INFO, logging.INFO))
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()


@dataclass
class _State:
    created_tag: str | None = None
    stage: str = "start"


@contextmanager
def cleanup_on_failure(paths: ModelPaths, output: Output):
    """On Ctrl+C or an error: remove this run's image tag and generated files, say what happened."""
    state = _State()
    try:
        yield state
    except KeyboardInterrupt:
        output.error("Installation interrupted. Cleaning up...")
        log.error("Installation interrupted at stage %s", state.stage)
        _clean(paths, state)
        raise InstallCancelled(
            f"Installation interrupted at stage '{state.stage}'",
            hint="Run the same install again: downloaded files are kept and resumed.",
        ) from None
    except Exception as exc:
        log.error("Installation failed at stage %s: %s", state.stage, exc)
        if logs := getattr(exc, "logs", None):
            log.error("Container output:\n%s", logs)
        _clean(paths, state)
        raise


def _clean(paths: ModelPaths, state: _State) -> None:
    paths.clean_generated(keep_weights=True)
    if state.created_tag:
        from docker.errors import DockerException

        from llm_installer.docker_engine import connect

        try:
            connect().images.remove(state.created_tag, force=True, noprune=False)
            log.info("Removed image tag %s", state.created_tag)
        except (DockerException, InstallerError) as exc:
            log.warning("Could not remove %s: %s", state.created_tag, exc)


def fetch_weights(
    profile: dict[str, Any], paths: ModelPaths, settings: Settings, output: Output
) -> Path:
    """Download a Hub model into model/; a local folder is used where it is (mounted read-only)."""
    from llm_installer.build.download import download, plan_download

    if profile["source"] == "local":
        folder = Path(profile["local_path"])
        output.info(f"Local model: {folder} will be mounted read-only (never written to).")
        return folder
    plan = plan_download(profile)
    check_disk(paths.root, plan.total_bytes + 3 * GiB)
    log.info("Downloading %d files (%d bytes)", len(plan.files), plan.total_bytes)
    download(
        plan,
        paths.weights,
        token=settings.token,
        workers=settings.max_download_workers,
        console=output.out,
    )
    return paths.weights


def ensure_readable(folder: Path, options: InstallOptions, output: Output) -> None:
    """The container's non-root user must read the weights (transformers 5 saves them 0600):
    make them readable when the user agrees (or passed --yes), else refuse with what to run."""
    from llm_installer.check.local_source import make_readable, unreadable_by_others

    private = unreadable_by_others(folder)
    if not private:
        return
    names = ", ".join(str(p.relative_to(folder)) for p in private[:5]) + (
        " …" if len(private) > 5 else ""
    )
    question = (
        f"The container's non-root user cannot read {len(private)} path(s) of {folder}: {names}"
    )
    if options.yes or (
        sys.stdin.isatty()
        and typer.confirm(f"{question}. Make them readable (chmod a+rX)?", default=True)
    ):
        try:
            make_readable(private)
        except OSError as exc:
            raise UnreadableWeightsError(f"{question}; chmod failed: {exc}") from exc
        output.info(f"Made {len(private)} path(s) of {folder} readable (chmod a+rX): {names}")
        return
    raise UnreadableWeightsError(
        question,
        hint=f"Rerun with --yes to make them readable, or run `chmod -R a+rX {folder}` first.",
    )


def check_disk(folder: Path, needed: int) -> None:
    import shutil

    free = shutil.disk_usage(folder).free
    if free < needed:
        raise NotEnoughDiskError(
            f"Not enough disk space in {folder}: {needed / GiB:.1f} GB needed, {free / GiB:.1f} GB free"
        )


def build_and_test(
    profile: dict[str, Any], paths: ModelPaths, weights: Path, device: str, options: InstallOptions,
    settings: Settings, output: Output, state: _State,
) -> dict[str, Any]:  # fmt: skip
    """Image + smoke test on the chosen engine; vLLM that cannot serve the model falls back to
    transformers under --engine auto (the reason is printed and recorded) and fails under vllm."""
    from llm_installer.build.builder import ImageBuildError
    from llm_installer.build.smoke import SmokeTestError
    from llm_installer.check.engines import EngineUnavailableError, choose_engine

    choice = choose_engine(profile, device, options.engine, quantization=options.quantization)
    output.info(f"Engine: {choice.engine} ({choice.reason}).")
    log.info("Engine: %s (%s)", choice.engine, choice.reason)
    if choice.engine != "vllm":  # transformers, or the family's own engine (GGUF: llama.cpp)
        return _build_and_test(
            profile, paths, weights, device, options, output, state, choice.engine, choice.reason
        )
    try:
        return _build_and_test(
            profile, paths, weights, device, options, output, state, "vllm", choice.reason
        )
    except (SmokeTestError, ImageBuildError) as exc:
        reason = f"vLLM could not serve it: {exc.message}"
        if options.engine == "vllm":
            raise EngineUnavailableError(f"--engine vllm: {reason}") from exc
    output.warning(f"{reason}. Falling back to the transformers engine.")
    log.warning("Falling back to transformers: %s", reason)
    info = _build_and_test(
        profile, paths, weights, device, options, output, state, "transformers", reason
    )
    info["engine_fallback_reason"] = reason
    return info


def _build_and_test(
    profile: dict[str, Any], paths: ModelPaths, weights: Path, device: str, options: InstallOptions,
    output: Output, state: _State, engine: str, engine_reason: str,
) -> dict[str, Any]:  # fmt: skip
    from llm_installer.build.base_images import ensure_base_image, install_flavour
    from llm_installer.build.buildenv import compile_settings
    from llm_installer.build.image import (
        build_model_image,
        ensure_deps_image,
        needs_compiler,
        pip_freeze,
        plan_image,
        render_model_dockerfile,
    )  # fmt: skip
    from llm_installer.build.smoke import run_smoke_test, smoke_plan
    from llm_installer.docker_engine import connect, image_exists

    client = connect()
    state.stage = "base image"
    flavour, is_tag = install_flavour(
        options.base_image, device, needs_compiler(profile), profile["hardware"], engine=engine
    )
    if is_tag and options.base_image:
        base = options.base_image
    else:
        built = ensure_base_image(
            client, flavour, rootfs=options.rootfs, console=output.out, log_path=paths.install_log
        )
        base = built if isinstance(built, str) else built.tag
    compiled = compile_settings(
        tuple(profile["requirements"]["packages"]), profile["hardware"], flavour.cuda or ""
    )
    plan = plan_image(
        profile,
        base,
        cuda=flavour.cuda is not None,
        compiled=compiled if flavour.kind == "cuda-devel" else None,
        engine=engine,
        model_dir=paths.root,
    )
    state.stage = "dependencies"
    ensure_deps_image(
        client, plan, console=output.out, log_path=paths.install_log, nocache=options.no_cache
    )
    freeze = pip_freeze(client, plan.deps_tag)
    dockerfile = render_model_dockerfile(profile, plan, freeze)
    paths.dockerfile.write_text(dockerfile)
    info = model_info(profile, paths, weights, device, plan, flavour.name, options)
    info.update(engine=engine, engine_reason=engine_reason)
    state.stage = "model image"
    if not image_exists(client, plan.model_tag):
        state.created_tag = plan.model_tag
    image = build_model_image(
        client, dockerfile, info, plan.model_tag, console=output.out, log_path=paths.install_log
    )
    info["image"].update(id=image.id, size=image.size)
    state.stage = "smoke test"
    with output.err.status("Smoke test: loading the model in its container…"):
        # what `start` runs: serve arguments, device, quantization
        smoke = smoke_plan(ModelInfo.new(**info), paths.root)
        log.info("Smoke test: %s", " ".join(smoke.argv()))
        result = run_smoke_test(client, smoke.container, profile["family"])
    log.info(
        "Smoke test passed in %.1f s: %s -> %s",
        result.seconds_to_ready,
        result.request,
        json.dumps(result.response)[:500],
    )
    info["smoke_test"] = {
        "seconds_to_ready": result.seconds_to_ready,
        "request": result.request,
        "passed": True,
    }
    info["pip_freeze"] = freeze.splitlines()
    state.created_tag = None
    return info


def model_info(
    profile: dict[str, Any],
    paths: ModelPaths,
    weights: Path,
    device: str,
    plan: Any,
    flavour: str,
    options: InstallOptions,
) -> dict[str, Any]:
    info = {k: v for k, v in profile.items() if k not in ("hardware", "engine")}
    choice = profile.get("engine") or {}  # check's engine choice; install may override it
    info.update(
        engine=choice.get("engine", TRANSFORMERS),
        engine_reason=choice.get("reason"),
        installed_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        installer_version=__version__,
        runtime_version=llm_runtime.__version__,
        weights_path=str(weights.resolve()),
        model_dir=str(paths.root.resolve()),
        installer_dir=str(PROJECT_DIR),
        installer_python=sys.executable,  # start.sh / train.sh hand over to this interpreter
        device=device,
        quantization=options.quantization,
        trust_remote_code=options.trust_remote_code,
        requires_gpu=not any(
            r["can_run"] and r["device"] == "cpu" for r in profile["compatibility"]["inference"]
        ),
        image={
            "tag": plan.model_tag,
            "base_image": plan.base_image,
            "deps_image": plan.deps_tag,
            "flavour": flavour,
        },
    )
    return info


def finish(paths: ModelPaths, info: dict[str, Any], output: Output) -> ModelInfo:
    """Write model_info.json (strict), the run scripts and the lock; mark the install complete."""
    record = write_model_info(paths.info, info)  # llm_runtime.model_info: strict
    from llm_installer.run.scripts import write_run_scripts

    write_run_scripts(paths.root, record)
    from llm_installer.deploy.lock import lock_install

    lock_install(paths.root, record)  # llm.lock.json: what deploy, export and verify check against
    paths.complete_marker.write_text(time.strftime("%Y-%m-%dT%H:%M:%S%z") + "\n")
    log.info("Installation complete")
    return record


def summary(info: ModelInfo, shared_bytes: int) -> str:
    """The seed's final summary: where, how big, how much is shared, how to start and train."""
    from llm_installer.run.listing import folder_size, human_size

    root = Path(str(info.model_dir))
    image, smoke = info.image, info.smoke_test or {}
    image_size = image.get("size") or 0
    lines = [
        f"[bold green]✓ {info.model_id} installed[/]",
        f"  Location:    {root}",
        f"  Weights:     {human_size(folder_size(Path(str(info.weights_path))))} ({info.weights_path})",
        f"  Image:       {image['tag']} — {human_size(image_size)}, of which {human_size(shared_bytes)}"
        f" shared with other models ({image['deps_image']})",
        f"  Device:      {info.device}   Family: {info.family}",
        f"  Smoke test:  ready in {smoke['seconds_to_ready']} s, {smoke['request']} answered",
        "",
        f"  Start:  {root / 'start.sh'}   (API + web UI on http://127.0.0.1:8000)",
        f"  Train:  {root / 'train.sh'} --data /path/to/data.jsonl",
    ]
    return "\n".join(lines)
