"""What train.sh does with each model family: which trainer, which methods, or why not.

One table for both sides: the trainer refuses before loading anything, and `check`'s training
table (llm_installer.profile) says the same. Pure data: importing it loads no torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from llm_runtime.training.errors import TrainingError

SFT_METHODS = ("lora", "qlora", "full", "moe-lora")
SENTENCE_PAIRS = (
    '{"anchor": ..., "positive": ...[, "negative": ...]} pairs (MultipleNegativesRankingLoss) '
    'or {"sentence1": ..., "sentence2": ..., "score": 0..1} (CoSENTLoss)'
)


@dataclass(frozen=True)
class TrainingSupport:
    """How a family trains: ``trainer`` names it; ``methods`` the --method values it takes."""

    family: str
    trainer: str | None
    methods: tuple[str, ...] = ()
    default_method: str | None = None
    data: str = ""
    reason: str = ""  # why not (trainer is None) or why only some methods

    @property
    def trainable(self) -> bool:
        return self.trainer is not None


TRAINERS: dict[str, TrainingSupport] = {
    family: TrainingSupport(family, "sft", SFT_METHODS, None, "chat, instruction or plain text")
    for family in ("text-generation", "state-space")
}
TRAINERS["image-text-to-text"] = TrainingSupport(
    "image-text-to-text", "sft", SFT_METHODS, None, "image+caption or image+question+answer"
)
TRAINERS["embedding"] = TrainingSupport(
    "embedding",
    "sentence-transformers",
    ("full",),
    "full",
    SENTENCE_PAIRS,
    "an embedding model trains as a whole with sentence-transformers' own trainer "
    "(LoRA adapters are not served for embeddings); the model lands in finetuned/",
)
WHOLE_MODEL = (
    "{what} trains as a whole with transformers' {trainer} (LoRA adapters are served for causal "
    "LMs only); the model lands in finetuned/"
)
TRAINERS["text2text-generation"] = TrainingSupport(
    "text2text-generation",
    "seq2seq",
    ("full",),
    "full",
    '{"input": ..., "target": ...} pairs (or source/target, prompt/completion, question/answer, '
    "text/summary)",
    WHOLE_MODEL.format(what="a seq2seq model", trainer="Seq2SeqTrainer"),
)
TRAINERS["text-classification"] = TrainingSupport(
    "text-classification",
    "sequence-classification",
    ("full",),
    "full",
    '{"text": ..., "label": ...} records, labels from the model\'s own (names or ids)',
    WHOLE_MODEL.format(what="a text classifier", trainer="Trainer"),
)
REFUSALS: dict[str, str] = {
    "gguf": "GGUF weights are quantized for llama.cpp and cannot be trained; install and "
    "train the original transformers repo, then convert",
    "peft-adapter": "this folder is an adapter, not a model; install its base model and train "
    "that (train.sh writes a new adapter to lora/)",
    "diffusion": "diffusion pipelines train with diffusers' own scripts (DreamBooth, LoRA), "
    "which train.sh does not run",
}
NOT_YET = (
    "{family} models need a trainer of their own, which train.sh does not have (it trains "
    "causal language models with LoRA/QLoRA/full, image-text-to-text models, "
    "sentence-transformers embedding models, seq2seq models and text classifiers)"
)


def training_support(family: str) -> TrainingSupport:
    """The family's row; families without one are refused with the reason."""
    if family in TRAINERS:
        return TRAINERS[family]
    reason = REFUSALS.get(family) or NOT_YET.format(family=family)
    return TrainingSupport(family, None, reason=reason)


class FamilyNotTrainable(TrainingError):
    title = "train.sh cannot fine-tune this model"
    hint = "What works: " + "; ".join(
        f"{name} ({row.data})" for name, row in TRAINERS.items() if name != "state-space"
    )


def require_trainable(family: str, method: str | None) -> TrainingSupport:
    """Refuse a family (or a method) train.sh cannot do, before anything is loaded."""
    support = training_support(family)
    if not support.trainable:
        raise FamilyNotTrainable(f"{family}: {support.reason}.")
    if method is not None and method not in support.methods:
        raise FamilyNotTrainable(
            f"--method {method} does not apply to {family} models: {support.reason}. "
            f"Use --method {' or '.join(support.methods)}."
        )
    return support
