"""The per-model image, in two builds that share layers across models.

1. ``llm-installer/deps:<hash>`` — base image + the family's dependency set (sorted, pinned by
   dockerfiles/constraints.txt). Identical sets give the identical image: built once, reused.
2. ``llm-installer/model-<owner>_<name>:<rev>-<home>`` (a hash of the model's folder) — deps + our runtime package + model_info.json,
   labels (model id, revision, family, runtime version, pip freeze), non-root user, HEALTHCHECK.

Weights are never part of a build context: they are mounted at run time.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
from rich.console import Console

import llm_runtime
from llm_installer import __version__
from llm_installer.build.buildenv import CompileSettings, proxy_build_args
from llm_installer.build.builder import BuiltImage, build_image
from llm_installer.docker_engine import image_exists
from llm_installer.resources import data_file, render
from llm_runtime.model_info import write_model_info

RUNTIME_PACKAGES = (
    "accelerate", "datasets", "fastapi", "llguidance", "matplotlib", "peft", "psutil", "pydantic", "python-multipart", "safetensors", "soundfile",
    "sse-starlette", "tensorboard", "transformers", "trl", "uvicorn", "websockets",
)  # fmt: skip
# CUDA images only: QLoRA, 8-bit loading and the 8-bit optimizers (the trainer and the server
# refuse them off CUDA with a clear message, so CPU images stay smaller).
CUDA_PACKAGES = ("bitsandbytes",)
NOT_PIP = frozenset({"torch"})  # in the base image already
COMPILED_NOTE = re.compile(r"CUDA compilation|requires CUDA", re.IGNORECASE)
# Packages that compile native code, built once per dependency set in a wheel stage of the
# dependency image, pinned here; CUDA images build on cuda-devel (nvcc). GGML_NATIVE=OFF: the
# wheel runs on any x86-64 CPU, not only on the build machine's; GGML_OPENMP=OFF: llama.cpp's own
# thread pool, as the image has no system libgomp; LLAVA_BUILD=OFF: no multimodal projector
# library (the engine serves text; it is a third of the compile).
WHEEL_BUILDS = {
    "llama-cpp-python": {
        "version": "0.3.36",
        "cpu": "-DGGML_NATIVE=OFF -DGGML_OPENMP=OFF -DLLAVA_BUILD=OFF",
        "cuda": "-DGGML_NATIVE=OFF -DGGML_OPENMP=OFF -DLLAVA_BUILD=OFF -DGGML_CUDA=on",
    },
}


@dataclass(frozen=True)
class ImagePlan:
    """What to build for one model."""

    base_image: str
    packages: tuple[str, ...]
    deps_tag: str
    model_tag: str
    compiled: CompileSettings | None = None  # CUDA extensions built in steps of their own
    kernels: tuple[str, ...] = ()  # optional CUDA kernels (requirement strings with their notes)
    cuda: bool = False
    engine: str = "transformers"
    constraints: str = "constraints.txt"  # under dockerfiles/
    remove: tuple[str, ...] = ()  # uninstalled after the install (vLLM CPU: torchvision…)
    apt: tuple[str, ...] = ()  # Debian packages installed first (vLLM CPU: libnuma1)

    @property
    def deps_dockerfile(self) -> str:
        if self.engine == "vllm":
            return render(
                "vllm-deps.Dockerfile.j2", base_image=self.base_image, packages=self.packages,
                vllm=next(p for p in self.packages if p.startswith("vllm")),
                constraints=f"dockerfiles/{self.constraints}", remove=self.remove, apt=self.apt,
            )  # fmt: skip
        compiled = self.compiled.packages if self.compiled else ()
        builds = wheel_builds(self.packages, cuda=self.cuda)
        pinned = {build["package"]: build["spec"] for build in builds}
        packages = [pinned.get(p, p) for p in self.packages if p not in compiled]
        kernels = [k for k in self.kernels if k.split(" ")[0] not in compiled]
        return render(
            "deps.Dockerfile.j2", base_image=self.base_image, packages=packages,
            compiled=self.compiled, kernels=kernels, wheel_builds=builds,
        )  # fmt: skip


def wheel_builds(packages: tuple[str, ...], *, cuda: bool) -> list[dict[str, str]]:
    """The wheel stages ``packages`` need: package name and its CMAKE_ARGS for this flavour."""
    flavour = "cuda" if cuda else "cpu"
    return [
        {
            "package": p,
            "spec": f"{p}=={WHEEL_BUILDS[p]['version']}",
            "cmake_args": WHEEL_BUILDS[p][flavour],
        }
        for p in packages
        if p in WHEEL_BUILDS
    ]


def dependency_set(profile: dict[str, Any], *, cuda: bool = False) -> tuple[str, ...]:
    """The runtime's packages (and the CUDA-only ones on a CUDA base) plus the model's base and
    architecture-specific ones, sorted."""
    kernels = {item.split(" ")[0] for item in cuda_kernels(profile)}
    wanted = set(RUNTIME_PACKAGES) | {
        p for p in profile["requirements"]["packages"] if p not in NOT_PIP and p not in kernels
    }
    wanted |= set(CUDA_PACKAGES) if cuda else set()
    return tuple(sorted(wanted))


def needs_compiler(profile: dict[str, Any]) -> bool:
    """True when an architecture-specific package compiles against CUDA (mamba-ssm, causal-conv1d…)."""
    compiled = any(COMPILED_NOTE.search(item) for item in profile["requirements"]["architecture"])
    return compiled or any(p in WHEEL_BUILDS for p in profile["requirements"]["packages"])


def cuda_kernels(profile: dict[str, Any]) -> tuple[str, ...]:
    """Architecture packages that compile against CUDA (mamba-ssm, causal-conv1d), with their notes.

    They only speed a model up (transformers has a pure-torch path), so CPU images leave them out
    and CUDA images try them in a step of their own whose failure is a note, not a failed build.
    """
    return tuple(
        sorted(
            item
            for item in profile["requirements"].get("architecture", ())
            if COMPILED_NOTE.search(item)
        )
    )


def model_tag(model_id: str, revision: str | None, model_dir: Path | None = None) -> str:
    """``llm-installer/model-<owner>_<name>:<revision>-<home>``: <home> hashes the model's
    folder, so two LLM homes (or two local folders of one name) never share, nor overwrite, a tag."""
    name = re.sub(r"[^a-z0-9._-]+", "-", model_id.lower().replace("/", "_")).strip("-.")
    version = (revision or "local")[:12].lower()
    if model_dir is not None:
        version += "-" + hashlib.sha256(str(Path(model_dir).resolve()).encode()).hexdigest()[:8]
    return f"llm-installer/model-{name}:{version}"


def plan_image(
    profile: dict[str, Any], base_image: str, *, cuda: bool = False,
    compiled: CompileSettings | None = None, engine: str = "transformers",
    model_dir: Path | None = None,
) -> ImagePlan:  # fmt: skip
    """The two builds for this model on ``base_image`` (``cuda``: a CUDA base; ``compiled``: how
    its CUDA extensions compile, which the tag depends on through the GPU architectures;
    ``engine``: vllm adds the pinned vLLM build with its own constraints file; ``model_dir``:
    the model's folder, which makes its image tag its own)."""
    tag = model_tag(profile["model_id"], profile.get("sha") or profile.get("revision"), model_dir)
    if engine == "vllm":
        return _vllm_plan(profile, base_image, cuda=cuda, tag=tag)
    packages = dependency_set(profile, cuda=cuda)
    archs = f"\n{compiled.arch_list}" if compiled else ""
    kernels = cuda_kernels(profile) if cuda else ()
    builds = [f"{b['spec']} {b['cmake_args']}" for b in wheel_builds(packages, cuda=cuda)]
    wanted = " ".join((*packages, *kernels, *builds))
    digest = hashlib.sha256(
        f"{base_image}\n{constraints_text()}\n{wanted}{archs}".encode()
    ).hexdigest()[:12]
    return ImagePlan(
        base_image=base_image,
        packages=packages,
        kernels=kernels,
        cuda=cuda,
        deps_tag=f"llm-installer/deps:{digest}",
        model_tag=tag,
        compiled=compiled,
    )


def _vllm_plan(profile: dict[str, Any], base_image: str, *, cuda: bool, tag: str) -> ImagePlan:
    from llm_installer.check.engines import vllm_build

    build = vllm_build("cuda" if cuda else "cpu")
    packages = tuple(
        sorted({*dependency_set(profile, cuda=cuda), build.requirement} - {"bitsandbytes"})
    )
    constraints, remove, apt = build.constraints, build.without, build.apt
    text = (
        f"{base_image}\n{constraints_text(constraints)}\n{' '.join(packages)}"
        + "".join(f"\n-{p}" for p in remove)
        + "".join(f"\napt:{p}" for p in apt)
    )
    return ImagePlan(
        base_image=base_image,
        packages=packages,
        cuda=cuda,
        deps_tag=f"llm-installer/deps:{hashlib.sha256(text.encode()).hexdigest()[:12]}",
        model_tag=tag,
        engine="vllm",
        constraints=constraints,
        remove=remove,
        apt=apt,
    )


def constraints_text(name: str = "constraints.txt") -> str:
    return data_file("dockerfiles", name).read_text()


def ensure_deps_image(
    client: docker.DockerClient,
    plan: ImagePlan,
    *,
    console: Console,
    log_path: Path,
    nocache: bool = False,
) -> str:
    """Build the dependency image unless an identical one exists already (``nocache``: rebuild)."""
    if image_exists(client, plan.deps_tag) and not nocache:
        console.print(f"Dependency layer {plan.deps_tag} exists: reused.")
        return plan.deps_tag
    with tempfile.TemporaryDirectory(prefix="llm-deps-") as workdir:
        context = Path(workdir)
        (context / "Dockerfile").write_text(plan.deps_dockerfile)
        (context / "constraints.txt").write_text(constraints_text(plan.constraints))
        build_image(
            client, context, plan.deps_tag, log_path=log_path, console=console,
            buildargs=proxy_build_args(), title="Dependencies", nocache=nocache,
        )  # fmt: skip
    return plan.deps_tag


def pip_freeze(client: docker.DockerClient, image: str) -> str:
    """The dependency image's pip freeze, for the model image's label."""
    output = client.containers.run(image, ["cat", "/etc/llm-installer/pip-freeze.txt"], remove=True)
    return output.decode().strip()


def render_model_dockerfile(profile: dict[str, Any], plan: ImagePlan, freeze: str) -> str:
    return render(
        "model.Dockerfile.j2",
        model_id=profile["model_id"], family=profile["family"],
        revision=profile.get("sha") or profile.get("revision") or "local",
        installer_version=__version__, runtime_version=llm_runtime.__version__,
        deps_image=plan.deps_tag, base_image=plan.base_image,
        pip_freeze=",".join(line for line in freeze.splitlines() if "==" in line).replace('"', ""),
    )  # fmt: skip


def build_model_image(
    client: docker.DockerClient,
    dockerfile: str,
    model_info: dict[str, Any],
    tag: str,
    *,
    console: Console,
    log_path: Path,
) -> BuiltImage:
    """Build the model image from a context of the runtime package and model_info.json only."""
    with tempfile.TemporaryDirectory(prefix="llm-model-") as workdir:
        context = Path(workdir)
        (context / "Dockerfile").write_text(dockerfile)
        write_model_info(context / "model_info.json", model_info)
        shutil.copytree(
            Path(llm_runtime.__file__).parent, context / "llm_runtime",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )  # fmt: skip
        return build_image(
            client, context, tag, log_path=log_path, console=console, title="Model image"
        )
