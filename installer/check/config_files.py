"""Which configuration files check reads, in the seed's order; pure, shared by the Hub and local folders.

Order: ``model_index.json`` (a composite pipeline: then each component folder named in it, and no
root model config), else ``config.json``, else an alternative ``*config.json`` that holds
architecture keys and no service keys (``api_key``, ``base_url``, ``endpoint``). Then the side
files below where present. Weight files are never read.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from llm_installer.check.source import RepoFile
from llm_installer.errors import MalformedConfigError

ReadText = Callable[[str], str]

MODEL_INDEX = "model_index.json"
MAIN_CONFIG = "config.json"
PREFERRED_ALTERNATIVES = ("llm_config.json", "model_config.json")

SIDE_JSON = (
    "modules.json",
    "config_sentence_transformers.json",
    "sentence_bert_config.json",
    "tokenizer_config.json",
    "preprocessor_config.json",
    "processor_config.json",
    "adapter_config.json",
    "generation_config.json",
    "quantize_config.json",
    "params.json",
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
)
SIDE_TEXT = ("chat_template.jinja", "chat_template.json")
# Side files that only refine estimates or defaults: a broken one is skipped (and logged), not fatal.
LENIENT_JSON = frozenset(
    {
        "generation_config.json",
        "quantize_config.json",
        "params.json",
        "model.safetensors.index.json",
        "pytorch_model.bin.index.json",
        "diffusion_pytorch_model.safetensors.index.json",
        "preprocessor_config.json",
        "processor_config.json",
    }
)
log = logging.getLogger(__name__)
MAX_NESTING = 64  # real configs nest a handful of levels; the check's own code recurses on them

COMPONENT_FILES = (
    "config.json",
    "scheduler_config.json",
    "preprocessor_config.json",
    "tokenizer_config.json",
    "model.safetensors.index.json",
    "diffusion_pytorch_model.safetensors.index.json",
)

ARCHITECTURE_KEYS = frozenset(
    {
        "model_type",
        "architectures",
        "hidden_size",
        "num_layers",
        "num_hidden_layers",
        "n_layer",
        "vocab_size",
        "d_model",
        "n_embd",
        "intermediate_size",
        "num_attention_heads",
    }
)
SERVICE_KEYS = frozenset({"api_key", "base_url", "endpoint"})

# Root *config.json files that are never the model's own config.
_NOT_MODEL_CONFIGS = frozenset(SIDE_JSON) | frozenset(COMPONENT_FILES) | {"data_config.json"}


def collect_configs(
    files: Sequence[RepoFile], read_text: ReadText
) -> tuple[dict[str, Any], dict[str, str]]:
    """Read the repo's configuration files: (parsed JSON by path, raw texts by path)."""
    present = {f.path for f in files if not f.is_weight}
    configs: dict[str, Any] = {}
    for path in _model_config_paths(present, configs, read_text):
        configs.setdefault(path, parse_json(path, read_text(path)))
    for path in [p for p in SIDE_JSON if p in present and p not in configs]:
        try:
            configs[path] = parse_json(path, read_text(path))
        except MalformedConfigError as error:
            if path not in LENIENT_JSON:
                raise
            log.warning("skipped %s", error)
    for path in _module_config_paths(present, configs.get("modules.json")):
        configs.setdefault(path, parse_json(path, read_text(path)))
    texts = {path: read_text(path) for path in SIDE_TEXT if path in present}
    return configs, texts


def main_config_path(configs: Mapping[str, Any]) -> str | None:
    """The path of the root model config among ``configs``: config.json or a validated alternative."""
    if isinstance(configs.get(MAIN_CONFIG), dict):
        return MAIN_CONFIG
    for path, value in configs.items():
        if _is_alternative_name(path) and isinstance(value, dict):
            return path
    return None


def parse_json(path: str, text: str) -> Any:
    """Parse ``text`` read from ``path``; a syntax error or absurd nesting becomes MalformedConfigError."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise MalformedConfigError(
            f"{path} is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}"
        ) from error
    except RecursionError:
        value = None
    if value is None and text.strip() != "null" or nesting_depth(value) > MAX_NESTING:
        raise MalformedConfigError(
            f"{path} is nested deeper than {MAX_NESTING} levels",
            hint="No model config nests that deep: fix the file, or report it to the repo's author.",
        )
    return value


def nesting_depth(value: Any) -> int:
    """How deeply lists and objects nest in ``value`` (iterative: safe on any depth)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list) and depth <= MAX_NESTING + 1:
            deepest = max(deepest, depth)
            stack.extend(
                (child, depth + 1) for child in (item.values() if isinstance(item, dict) else item)
            )
    return deepest


def is_model_config(config: Any) -> bool:
    """True when an alternative config looks like a model's: two architecture keys, no service keys."""
    if not isinstance(config, dict) or _has_service_key(config):
        return False
    return len(ARCHITECTURE_KEYS.intersection(config)) >= 2


def _model_config_paths(
    present: set[str], configs: dict[str, Any], read_text: ReadText
) -> Iterator[str]:
    if MODEL_INDEX in present:
        configs[MODEL_INDEX] = parse_json(MODEL_INDEX, read_text(MODEL_INDEX))
        yield from _component_paths(configs[MODEL_INDEX], present)
    elif MAIN_CONFIG in present:
        yield MAIN_CONFIG
    else:
        found = _find_alternative(present, read_text)
        if found is not None:
            configs[found[0]] = found[1]


def _component_paths(index: Any, present: set[str]) -> Iterator[str]:
    """Config files of each component folder that model_index.json names (``unet``, ``vae`` …)."""
    if not isinstance(index, dict):
        return
    for name, value in index.items():
        if name.startswith("_") or not _names_component(value):
            continue
        yield from (f"{name}/{file}" for file in COMPONENT_FILES if f"{name}/{file}" in present)


def _names_component(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and value[0] is not None


def _find_alternative(present: set[str], read_text: ReadText) -> tuple[str, dict] | None:
    for path in _alternative_candidates(present):
        config = parse_json(path, read_text(path))
        if is_model_config(config):
            return path, config
    return None


def _alternative_candidates(present: Iterable[str]) -> list[str]:
    names = sorted(p for p in present if _is_alternative_name(p))
    preferred = [p for p in PREFERRED_ALTERNATIVES if p in names]
    return preferred + [p for p in names if p not in preferred]


def _is_alternative_name(path: str) -> bool:
    return (
        "/" not in path
        and path.endswith("config.json")
        and path not in _NOT_MODEL_CONFIGS
        and path != MAIN_CONFIG
        and not path.startswith("generation_config")
    )


def _module_config_paths(present: set[str], modules: Any) -> Iterator[str]:
    for folder in _module_folders(modules):
        for name in ("config.json", "sentence_bert_config.json"):
            if f"{folder}/{name}" in present:
                yield f"{folder}/{name}"


def _module_folders(modules: Any) -> list[str]:
    """Sub-folders of sentence-transformers modules (``1_Pooling`` …) from modules.json."""
    if not isinstance(modules, list):
        return []
    return [m["path"] for m in modules if isinstance(m, dict) and m.get("path")]


def _has_service_key(value: Any) -> bool:
    if isinstance(value, dict):
        return bool(SERVICE_KEYS.intersection(value)) or any(
            _has_service_key(v) for v in value.values()
        )
    if isinstance(value, list):
        return any(_has_service_key(v) for v in value)
    return False
