"""ModelInfo records for the planners' tests: a test's plain dict read as model_info.json is."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llm_runtime.model_info import ModelInfo


def record(data: Mapping[str, Any] | ModelInfo | None = None, **changes: Any) -> ModelInfo:
    """``data`` (a dict as an older or hand-written model_info.json, or a record) with
    ``changes``, through ``ModelInfo.from_dict``: migrated, defaults filled, types checked."""
    base = data.to_dict() if isinstance(data, ModelInfo) else dict(data or {})
    return ModelInfo.from_dict({**base, **changes}, "the test's model_info")
