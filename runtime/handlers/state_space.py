"""State-space and hybrid LLMs (Mamba, Mamba-2, RWKV, Jamba, Falcon-H1, Zamba …) on transformers.

They generate like any causal LM; only their caches differ (recurrent state rather than a plain
KV cache), so the text-generation handler serves them with its whole-batch ``generate`` engine.
mamba-ssm / causal-conv1d, when the image has them (CUDA only), are picked up by transformers;
without them transformers runs its slower pure-torch path.
"""

from __future__ import annotations

import dataclasses
import json
import logging

from llm_runtime.batching import BatchEngine
from llm_runtime.contract import STATE_SPACE
from llm_runtime.errors import ModelLoadError
from llm_runtime.handlers.text_generation import TextGenerationHandler
from llm_runtime.profile import ModelProfile
from llm_runtime.values import LoadSettings

log = logging.getLogger("llm_runtime")
# Model types whose forward ignores the attention mask: a padded row in a batch would change
# its answer, so they generate one request at a time.
UNMASKED_TYPES = frozenset({"rwkv"})


class StateSpaceHandler(TextGenerationHandler):
    """A text-generation handler that reports the state-space family in /info."""

    family = STATE_SPACE

    def load(self, *, profile: ModelProfile, settings: LoadSettings) -> None:
        if _model_type(profile) in UNMASKED_TYPES and settings.max_batch_size > 1:
            log.info("%s ignores attention masks: one request per batch", _model_type(profile))
            settings = dataclasses.replace(settings, max_batch_size=1)
        super().load(profile=profile, settings=settings)

    def _engine_class(self, settings: LoadSettings) -> type[BatchEngine]:
        """Always whole-batch ``generate``: step batching needs a plain KV cache, these keep state."""
        if settings.batching == "step":
            raise ModelLoadError(
                "--batching step needs a plain KV cache; state-space models keep a recurrent "
                "state. Use --batching generate (or auto)."
            )
        self.batching = "generate"
        return BatchEngine


def _model_type(profile: ModelProfile) -> str:
    path = profile.model_dir / "config.json"
    config = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    return str(config.get("model_type") or "")
