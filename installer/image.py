"""The per-model image, in two builds that share layers across models.

1. ``llm-installer/deps:<hash>`` — base image + the family's dependency set (sorted, pinned by
   dockerfiles/constraints.txt). Identical sets give the identical image: built once, reused.
2. ``llm-installer/model-<owner>_<name>:<rev>`` — deps + our runtime package + model_info.json,
   labels (model id, revision, family, runtime version, pip freeze), non-root user, HEALTHCHECK.

Weights are never part of a build context: they are mounted at run time.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import jinja2
from rich.console import Console

import llm_runtime
from llm_installer import __version__
from llm_installer.buildenv import proxy_build_args
from llm_installer.builder import BuiltImage, build_image
from llm_installer.config import PROJECT_DIR
from llm_installer.docker_engine import image_exists

TEMPLATES = PROJECT_DIR / "dockerfiles"
RUNTIME_PACKAGES = (
    "accelerate", "datasets", "fastapi", "matplotlib", "peft", "psutil", "pydantic", "python-multipart", "safetensors", "soundfile",
    "sse-starlette", "tensorboard", "transformers", "trl", "uvicorn", "websockets",
)  # fmt: skip
# CUDA images only: QLoRA, 8-bit loading and the 8-bit optimizers (the trainer and the server
# refuse them off CUDA with a clear message, so CPU images stay smaller).
CUDA_PACKAGES = ("bitsandbytes",)
NOT_PIP = frozenset({"torch"})  # in the base image already
COMPILED_NOTE = re.compile(r"CUDA compilation|requires CUDA", re.IGNORECASE)


@dataclass(frozen=True)
class ImagePlan:
    """What to build for one model."""

    base_image: str
    packages: tuple[str, ...]
    deps_tag: str
    model_tag: str
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
        return render("deps.Dockerfile.j2", base_image=self.base_image, packages=self.packages)


def render(template: str, **values: Any) -> str:
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), keep_trailing_newline=True)
    return environment.get_template(template).render(**values)


def dependency_set(profile: dict[str, Any], *, cuda: bool = False) -> tuple[str, ...]:
    """The runtime's packages (and the CUDA-only ones on a CUDA base) plus the model's base and
    architecture-specific ones, sorted."""
    wanted = set(RUNTIME_PACKAGES) | {p for p in profile["requirements"]["packages"] if p not in NOT_PIP}
    wanted |= set(CUDA_PACKAGES) if cuda else set()
    return tuple(sorted(wanted))


def needs_compiler(profile: dict[str, Any]) -> bool:
    """True when an architecture-specific package compiles against CUDA (mamba-ssm, causal-conv1d…)."""
    return any(COMPILED_NOTE.search(item) for item in profile["requirements"]["architecture"])


def model_tag(model_id: str, revision: str | None) -> str:
    name = re.sub(r"[^a-z0-9._-]+", "-", model_id.lower().replace("/", "_")).strip("-.")
    return f"llm-installer/model-{name}:{(revision or 'local')[:12].lower()}"


def plan_image(profile: dict[str, Any], base_image: str, *, cuda: bool = False, engine: str = "transformers") -> ImagePlan:
    """The two builds for this model on ``base_image`` (``cuda``: a CUDA base; ``engine``: vllm
    adds the pinned vLLM build with its own constraints file)."""
    packages, constraints, remove, apt = dependency_set(profile, cuda=cuda), "constraints.txt", (), ()
    if engine == "vllm":
        from llm_installer.engines import vllm_build

        build = vllm_build("cuda" if cuda else "cpu")
        packages = tuple(sorted({*packages, build.requirement} - {"bitsandbytes"}))
        constraints, remove, apt = build.constraints, build.without, build.apt
    text = f"{base_image}\n{constraints_text(constraints)}\n{' '.join(packages)}" + "".join(f"\n-{p}" for p in remove) + "".join(f"\napt:{p}" for p in apt)
    return ImagePlan(
        base_image=base_image,
        packages=packages,
        deps_tag=f"llm-installer/deps:{hashlib.sha256(text.encode()).hexdigest()[:12]}",
        model_tag=model_tag(profile["model_id"], profile.get("sha") or profile.get("revision")),
        engine=engine,
        constraints=constraints,
        remove=remove,
        apt=apt,
    )


def constraints_text(name: str = "constraints.txt") -> str:
    return (TEMPLATES / name).read_text()


def ensure_deps_image(
    client: docker.DockerClient, plan: ImagePlan, *, console: Console, log_path: Path, nocache: bool = False
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
    client: docker.DockerClient, dockerfile: str, model_info: dict[str, Any], tag: str, *, console: Console, log_path: Path
) -> BuiltImage:
    """Build the model image from a context of the runtime package and model_info.json only."""
    with tempfile.TemporaryDirectory(prefix="llm-model-") as workdir:
        context = Path(workdir)
        (context / "Dockerfile").write_text(dockerfile)
        (context / "model_info.json").write_text(json.dumps(model_info, indent=2, default=str))
        shutil.copytree(
            Path(llm_runtime.__file__).parent, context / "llm_runtime",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )  # fmt: skip
        return build_image(client, context, tag, log_path=log_path, console=console, title="Model image")
