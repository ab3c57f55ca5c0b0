"""gguf: repos of llama.cpp GGUF files, one or more quantization variants, run with llama-cpp-python."""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from llm_installer.check.families import _traits
from llm_installer.check.families._common import root_config
from llm_installer.check.families.base import Detection, Family, Requirement, Requirements
from llm_installer.check.source import ModelSource, RepoFile
from llm_runtime.contract import GGUF

SHARD = re.compile(r"-\d{5}-of-\d{5}$")
QUANT = re.compile(
    r"(?<![A-Za-z0-9])(I?Q\d+(?:_[A-Z0-9]+)*|MXFP4(?:_MOE)?|BF16|FP16|F16|FP32|F32)(?![A-Za-z0-9])",
    re.IGNORECASE,
)
PROJECTOR_MARKER = "mmproj"
LLAMA_CPP = Requirement("llama-cpp-python", "the llama.cpp engine; compiled once per image set")
BUILD_WARNING = (
    "llama-cpp-python compiles llama.cpp in the dependency image's wheel stage the first time "
    "(about 10 minutes on 2 cores; GPU hosts build it with CUDA on the cuda-devel base), then "
    "every GGUF model of that set reuses it."
)


class GgufFamily(Family):
    """A repo with ``*.gguf`` files and no transformers/diffusers weights beside them."""

    name = GGUF

    def detect(self, source: ModelSource) -> Detection | None:
        gguf = [f for f in source.files if f.path.endswith(".gguf")]
        others = [f for f in source.weight_files if not f.path.endswith(".gguf")]
        if not gguf or others:
            return None
        config = root_config(source) or {}
        projectors = [f.path for f in gguf if PROJECTOR_MARKER in f.name.lower()]
        reasoning = _traits.is_reasoning(source, config)
        labels = (
            "Text Generation",
            "Multimodal" if projectors else "",
            "Reasoning" if reasoning else "",
        )
        return Detection(
            family=self.name,
            library="llama-cpp-python",
            task="text-generation",
            capabilities=tuple(label for label in labels if label),
            is_moe=_traits.moe_details(config) is not None,
            is_reasoning=reasoning,
            details={"variants": variants(gguf), "projectors": projectors},
        )

    def requirements(self, source: ModelSource, detection: Detection) -> Requirements:
        return Requirements(base=(LLAMA_CPP,), warnings=(BUILD_WARNING,))


def variants(files: list[RepoFile]) -> list[dict[str, Any]]:
    """One entry per quantization (``Q4_K_M`` …): its files and total size, smallest first."""
    grouped: dict[str, list[RepoFile]] = defaultdict(list)
    for repo_file in files:
        if PROJECTOR_MARKER not in repo_file.name.lower():
            grouped[quantization_name(repo_file.name)].append(repo_file)
    found = [
        {"quantization": name, "files": [f.path for f in group], "size": sum(f.size for f in group)}
        for name, group in grouped.items()
    ]
    return sorted(found, key=lambda variant: (variant["size"], variant["quantization"]))


def quantization_name(file_name: str) -> str:
    """``model.Q4_K_M.gguf`` → ``Q4_K_M``; a name without a marker keeps its stem."""
    stem = SHARD.sub("", file_name.removesuffix(".gguf"))
    matches = QUANT.findall(stem)
    return matches[-1].upper() if matches else stem
