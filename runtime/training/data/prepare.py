"""Loaded examples → tokenized, packed, split train/validation datasets, and the pre-training printout."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from llm_runtime.training.data.loader import LoadedData
from llm_runtime.training.data.render import Tokenized, marked_text, tokenize_example
from llm_runtime.training.errors import DataFormatError
from llm_runtime.training.params import text_block_length

if TYPE_CHECKING:
    from llm_runtime.training.data.vision import VisionData


@dataclass(frozen=True)
class PreparedData:
    """Token-level datasets ready for SFTTrainer (`input_ids` + `labels` columns)."""

    loaded: LoadedData
    train: tuple[Tokenized, ...]
    validation: tuple[Tokenized, ...]
    sample: Tokenized | None
    packed_blocks: int
    block_length: int

    @property
    def train_tokens(self) -> int:
        return sum(len(item.input_ids) for item in self.train)

    @property
    def trained_tokens(self) -> int:
        return sum(sum(item.trained) for item in self.train)

    def as_datasets(self):
        """(train, validation-or-None) as `datasets.Dataset`s."""
        from datasets import Dataset

        def build(items):
            columns = {
                "input_ids": [list(i.input_ids) for i in items],
                "labels": [i.labels for i in items],
            }
            return Dataset.from_dict(columns)

        return build(self.train), build(self.validation) if self.validation else None


def prepare(
    loaded: LoadedData,
    tokenizer,
    *,
    max_seq_length: int,
    validation_split: float,
    seed: int = 42,
    fit_blocks: bool = False,
) -> PreparedData:
    """Tokenize, truncate, pack text into blocks, then split by a seeded shuffle.

    `fit_blocks` shrinks text blocks for tiny corpora (when the user gave no length).
    """
    items: list[Tokenized] = []
    texts: list[Tokenized] = []
    for example in loaded.examples:
        tokenized = tokenize_example(tokenizer, example)
        (texts if example.format == "text" else items).append(tokenized)
    sample = items[0] if items else texts[0] if texts else None
    items = [t for t in (_truncate(i, max_seq_length) for i in items) if any(t.trained)]
    block = max_seq_length
    if fit_blocks:
        block = text_block_length(sum(len(t.input_ids) for t in texts), max_seq_length)
    blocks = pack_text(texts, block)
    items.extend(blocks)
    if not items:
        raise DataFormatError("every example is empty after tokenization (nothing to train on)")
    random.Random(seed).shuffle(items)
    train, validation = split(items, validation_split)
    return PreparedData(loaded, tuple(train), tuple(validation), sample, len(blocks), block)


def _truncate(item: Tokenized, length: int) -> Tokenized:
    return Tokenized(item.input_ids[:length], item.trained[:length])


def pack_text(texts: list[Tokenized], length: int) -> list[Tokenized]:
    """Concatenate text documents and cut them into blocks of `length` (TRL's `wrapped` packing)."""
    if not texts:
        return []
    from datasets import Dataset
    from trl import pack_dataset

    dataset = Dataset.from_dict({"input_ids": [list(t.input_ids) for t in texts]})
    packed = pack_dataset(dataset, length, strategy="wrapped")
    return [
        Tokenized(tuple(ids), (True,) * len(ids)) for ids in packed["input_ids"] if len(ids) > 1
    ]


def split(items: list, fraction: float) -> tuple[list, list]:
    if fraction <= 0:
        return items, []
    if len(items) < 2:
        raise DataFormatError(
            f"{len(items)} example after tokenization: too few to hold out a validation set "
            "(add data, or pass --validation-split 0)"
        )
    count = min(len(items) - 1, max(1, round(len(items) * fraction)))
    return items[count:], items[:count]


def describe(data: PreparedData | VisionData, tokenizer, *, color: bool = False) -> str:
    """The pre-training printout: format, per-file counts, one rendered example with trained tokens marked."""
    loaded = data.loaded
    lines = [f"📂 Data format: {loaded.format_label}  (task: {loaded.task_type})"]
    for summary in loaded.files:
        counts = ", ".join(f"{fmt} {n}" for fmt, n in summary.counts) or "empty"
        lines.append(f"   {summary.name}: {summary.total} records ({counts})")
    packed = (
        f", {data.packed_blocks} packed text blocks of ≤{data.block_length} tokens"
        if data.packed_blocks
        else ""
    )
    lines.append(
        f"   examples: {len(loaded.examples)} → train {len(data.train)}, validation {len(data.validation)}"
        f"{packed}; {data.train_tokens} train tokens, {data.trained_tokens} with loss"
    )
    if data.sample is not None:
        mark = "green" if color else "« »"
        lines.append(f"📝 Example as trained (tokens with loss in {mark}):")
        lines.append(marked_text(tokenizer, data.sample, color=color))
    return "\n".join(lines)
