"""State-space and hybrid LLMs (Mamba, Mamba-2, RWKV, Jamba, Falcon-H1, Zamba …) on transformers.

They generate like any causal LM; only their caches differ (recurrent state rather than a plain
KV cache), so the text-generation handler serves them with its whole-batch ``generate`` engine.
mamba-ssm / causal-conv1d, when the image has them (CUDA only), are picked up by transformers;
without them transformers runs its slower pure-torch path.
"""

from __future__ import annotations

from llm_runtime.batching import BatchEngine
from llm_runtime.errors import ModelLoadError
from llm_runtime.handlers.text_generation import TextGenerationHandler
from llm_runtime.values import LoadSettings


class StateSpaceHandler(TextGenerationHandler):
    """A text-generation handler that reports the state-space family in /info."""

    family = "state-space"

    def _engine_class(self, settings: LoadSettings) -> type[BatchEngine]:
        """Always whole-batch ``generate``: step batching needs a plain KV cache, these keep state."""
        if settings.batching == "step":
            raise ModelLoadError(
                "--batching step needs a plain KV cache; state-space models keep a recurrent "
                "state. Use --batching generate (or auto)."
            )
        self.batching = "generate"
        return BatchEngine
