"""What check knows about a model before any weight is downloaded: files, configs, Hub metadata."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

WEIGHT_SUFFIXES = (
    ".safetensors",
    ".bin",
    ".pt",
    ".pth",
    ".ckpt",
    ".gguf",
    ".h5",
    ".msgpack",
    ".onnx",
)


@dataclass(frozen=True)
class RepoFile:
    """One file of a repository: its path relative to the repo root and its size in bytes."""

    path: str
    size: int

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def folder(self) -> str:
        return self.path.rsplit("/", 1)[0] if "/" in self.path else ""

    @property
    def is_weight(self) -> bool:
        return self.path.endswith(WEIGHT_SUFFIXES) and not self.name.startswith("training_args")


@dataclass(frozen=True)
class ModelSource:
    """Everything read about a repo or a local folder; the input of every detector and estimator.

    ``configs`` maps a repo path (``config.json``, ``unet/config.json``, ``tokenizer_config.json`` …)
    to its parsed JSON; ``texts`` holds small text files read as-is (``chat_template.jinja``).
    ``tensor_params`` maps a weight file path to {dtype: parameter count} read from its
    safetensors header; ``hub_params`` is the Hub's own safetensors parameter count by dtype.
    """

    model_id: str
    files: tuple[RepoFile, ...]
    configs: Mapping[str, Any] = field(default_factory=dict)
    texts: Mapping[str, str] = field(default_factory=dict)
    revision: str | None = None
    sha: str | None = None
    is_local: bool = False
    local_path: str | None = None
    tags: tuple[str, ...] = ()
    pipeline_tag: str | None = None
    library_name: str | None = None
    private: bool = False
    gated: bool | str = False
    hub_params: Mapping[str, int] = field(default_factory=dict)
    tensor_params: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    def config(self, path: str = "config.json") -> dict[str, Any] | None:
        """The parsed JSON at ``path``, or None when the repo has no such config."""
        value = self.configs.get(path)
        return value if isinstance(value, dict) else None

    def has_file(self, path: str) -> bool:
        return any(f.path == path for f in self.files)

    def files_matching(self, suffix: str) -> list[RepoFile]:
        return [f for f in self.files if f.path.endswith(suffix)]

    @property
    def weight_files(self) -> list[RepoFile]:
        return [f for f in self.files if f.is_weight]

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)
