"""Which weight files a load reads: ONE format and ONE variant (never every copy a repo holds).

Formats best first: safetensors, bin, native consolidated files, pt/ckpt, flax, tf, onnx,
openvino, gguf. The root folder beats alternative folders (original/, onnx/, metal/ …), the
default variant beats fp16/non-ema ones; diffusers pipelines and sentence-transformers models
take one set per component or module folder and ignore single-file checkpoints at the root.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from llm_installer.check.source import WEIGHT_SUFFIXES, ModelSource, RepoFile

# Weight formats, best first; "consolidated-*" are native (Mistral/Meta) layouts.
FORMAT_RANK = (
    "safetensors", "bin", "consolidated-safetensors", "consolidated-pt", "pt", "ckpt",
    "flax", "tf", "onnx", "openvino", "gguf", "other",
)  # fmt: skip
FORMAT_BY_SUFFIX = {
    ".safetensors": "safetensors", ".bin": "bin", ".pt": "pt", ".pth": "pt", ".ckpt": "ckpt",
    ".msgpack": "flax", ".h5": "tf", ".onnx": "onnx", ".onnx_data": "onnx", ".gguf": "gguf",
    ".ot": "other", ".tflite": "other", ".npz": "other", ".pb": "other", ".mlmodel": "other",
}  # fmt: skip
ALL_WEIGHT_SUFFIXES = tuple(set(WEIGHT_SUFFIXES) | set(FORMAT_BY_SUFFIX))
STANDARD_STEMS = frozenset(
    {
        "model",
        "pytorch_model",
        "diffusion_pytorch_model",
        "tf_model",
        "flax_model",
        "adapter_model",
        "openvino_model",
    }
)
SHARD = re.compile(r"-\d{3,6}-of-\d{3,6}")
GGUF_QUANT = re.compile(r"(?i)(IQ\d_\w+?|Q\d_K_[SML]|Q\d_K|Q\d_\d|BF16|F16|F32)(?=[.-]|$)")
GGUF_PREFERENCE = ("Q4_K_M", "Q5_K_M", "Q4_K_S", "Q5_K_S", "Q6_K", "Q8_0", "Q4_0")
ALTERNATIVE_FOLDERS = ("original", "onnx", "openvino", "metal", "coreml", "flax", "tf")


@dataclass(frozen=True)
class WeightSet:
    """The ONE set of weight files that a load reads (one format, one variant)."""

    files: tuple[RepoFile, ...]
    format: str = ""
    variant: str | None = None
    components: tuple[str, ...] = ()
    """Diffusers component or sentence-transformers module folders ('' is the root)."""

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def in_folder(self, folder: str) -> tuple[RepoFile, ...]:
        return tuple(f for f in self.files if f.folder == folder)


def is_weight_path(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return path.endswith(ALL_WEIGHT_SUFFIXES) and not name.startswith("training_args")


def file_format(file: RepoFile) -> str:
    """The weight format of ``file``: 'safetensors', 'bin', 'consolidated-pt', 'onnx' …"""
    if file.name.startswith("openvino"):
        return "openvino"
    fmt = next((v for k, v in FORMAT_BY_SUFFIX.items() if file.name.endswith(k)), "other")
    if file.name.startswith("consolidated"):
        return "consolidated-" + ("safetensors" if fmt == "safetensors" else "pt")
    return fmt


def file_variant(file: RepoFile) -> str | None:
    """``diffusion_pytorch_model.fp16.safetensors`` → 'fp16'; a GGUF file → its quant type."""
    if file.name.endswith(".gguf"):
        match = GGUF_QUANT.search(file.name[: -len(".gguf")])
        return match.group(1).upper() if match else file.name
    stem = SHARD.sub("", file.name.rsplit(".", 1)[0])
    if file_format(file) in ("onnx", "openvino"):  # model_O4.onnx, model_qint8_avx2.onnx …
        return None if stem in STANDARD_STEMS else stem
    base, _, variant = stem.partition(".")
    return variant or None if base in STANDARD_STEMS else None


def _group_key(file: RepoFile) -> tuple[int, int, str]:
    fmt = file_format(file)
    variant = file_variant(file)
    if fmt == "gguf":
        rank = (
            GGUF_PREFERENCE.index(variant) if variant in GGUF_PREFERENCE else len(GGUF_PREFERENCE)
        )
    else:
        rank = {None: 0, "fp16": 1}.get(variant, 2)
    return FORMAT_RANK.index(fmt), rank, variant or ""


def best_group(files: Iterable[RepoFile]) -> tuple[RepoFile, ...]:
    """The files of the best (format, variant) group among ``files``."""
    files = sorted(files, key=lambda f: f.path)
    if not files:
        return ()
    best = min(_group_key(f) for f in files)
    return tuple(f for f in files if _group_key(f) == best)


def component_folders(source: ModelSource) -> tuple[str, ...]:
    """Diffusers components (model_index.json) or sentence-transformers module folders."""
    index = source.config("model_index.json")
    if index:
        return tuple(k for k, v in index.items() if not k.startswith("_") and isinstance(v, list))
    modules = source.configs.get("modules.json")
    if isinstance(modules, list):
        return tuple(m["path"] for m in modules if isinstance(m, dict) and m.get("path"))
    return ()


def choose_weights(source: ModelSource) -> WeightSet:
    """The one weight set a load reads: per folder the best format and variant, never two."""
    weights = [f for f in source.files if is_weight_path(f.path)]
    by_folder: dict[str, list[RepoFile]] = {}
    for f in weights:
        by_folder.setdefault(f.folder, []).append(f)
    components = [c for c in component_folders(source) if by_folder.get(c)]
    diffusers = source.config("model_index.json") is not None and components
    folders = components if diffusers else dict.fromkeys([_root_folder(by_folder), *components])
    chosen = tuple(
        f for folder in folders if folder is not None for f in best_group(by_folder.get(folder, ()))
    )
    first = chosen[0] if chosen else None
    return WeightSet(
        files=chosen,
        format=file_format(first) if first else "",
        variant=file_variant(first) if first else None,
        components=tuple(components),
    )


def _root_folder(by_folder: Mapping[str, list[RepoFile]]) -> str | None:
    """The root when it holds weights, else the first folder that is not a known alternative."""
    if by_folder.get(""):
        return ""
    ranked = sorted(by_folder, key=lambda f: (f.split("/")[0] in ALTERNATIVE_FOLDERS, f))
    return ranked[0] if ranked else None
