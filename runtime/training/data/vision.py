"""Image+caption data for multimodal (image-text-to-text) models, trained through TRL's vision collator.

A record `{"image", "caption"}` (or `{"image", "question", "answer"}`) becomes a prompt/completion
chat with the image in place of an image part; TRL's DataCollatorForVisionLanguageModeling
tokenizes and processes the images batch by batch, with the loss on the completion only.
Image paths are relative to the data file that names them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from llm_runtime.training.data.formats import Example
from llm_runtime.training.data.loader import LoadedData
from llm_runtime.training.data.prepare import split
from llm_runtime.training.data.render import Tokenized
from llm_runtime.training.errors import DataFormatError

DEFAULT_PROMPT = "Describe this image."
COUNT_BATCH = 16


@dataclass(frozen=True)
class VisionData:
    """Records ready for SFTTrainer (`images`, `prompt`, `completion`), and what the printout shows."""

    loaded: LoadedData
    train: tuple[dict, ...]
    validation: tuple[dict, ...]
    sample: Tokenized | None
    train_tokens: int
    trained_tokens: int
    packed_blocks: int = 0
    block_length: int = 0

    def as_datasets(self):
        """(train, validation-or-None) as `datasets.Dataset`s whose images load on access."""
        from datasets import Dataset, Image, Sequence

        def build(records):
            return Dataset.from_list(list(records)).cast_column("images", Sequence(Image()))

        return build(self.train), build(self.validation) if self.validation else None


def check_pairing(loaded: LoadedData, *, multimodal: bool, model_dir: Path) -> None:
    """Image records need a multimodal model, and a multimodal model trains on image records."""
    with_image = sum(1 for e in loaded.examples if e.image)
    if with_image and not multimodal:
        raise DataFormatError(
            f"{with_image} image+caption records were found, but {model_dir} is a text model.\n"
            "Image+caption data trains multimodal (image-text-to-text) models; "
            "give this model text data (alpaca, sharegpt, openai, qa, completion, text)."
        )
    if multimodal and with_image < len(loaded.examples):
        first = next(e for e in loaded.examples if not e.image)
        raise DataFormatError(
            f"{model_dir} is a multimodal model: every record needs an image.\n"
            f"file: {first.source} has {first.format} records without one.\n"
            'Use {"image": "path.jpg", "caption": "..."} or '
            '{"image": ..., "question": ..., "answer": ...} records.'
        )


def image_path(example: Example) -> Path:
    path = Path(example.image).expanduser()
    if not path.is_absolute():
        path = Path(example.source).parent / path
    if not path.is_file():
        raise DataFormatError(
            f"file: {example.source}\nimage not found: {example.image} (looked at {path}); "
            "image paths are relative to the data file"
        )
    return path


def record(example: Example) -> dict:
    prompt = [{"type": "image"}, {"type": "text", "text": example.prompt or DEFAULT_PROMPT}]
    answer = [{"type": "text", "text": example.text}]
    return {
        "images": [str(image_path(example))],
        "prompt": [{"role": "user", "content": prompt}],
        "completion": [{"role": "assistant", "content": answer}],
    }


def collator(processor):
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    return DataCollatorForVisionLanguageModeling(processor, completion_only_loss=True)


def _tokens(collate, records: list[dict]) -> tuple[int, int, Tokenized | None]:
    """(tokens, tokens with loss, the first record as Tokenized), counted as the collator makes them."""
    from PIL import Image

    total = trained = 0
    first = None
    for start in range(0, len(records), COUNT_BATCH):
        batch = [
            {**r, "images": [Image.open(p).convert("RGB") for p in r["images"]]}
            for r in records[start : start + COUNT_BATCH]
        ]
        try:
            out = collate(batch)
        except (ValueError, OSError) as error:
            raise DataFormatError(f"the processor cannot prepare these records: {error}") from error
        total += int(out["attention_mask"].sum())
        trained += int((out["labels"] != -100).sum())
        if first is None:
            keep = out["attention_mask"][0].bool()
            ids = out["input_ids"][0][keep].tolist()
            flags = (out["labels"][0][keep] != -100).tolist()
            first = Tokenized(tuple(ids), tuple(flags))
    return total, trained, first


def prepare(
    loaded: LoadedData, processor, *, validation_split: float, seed: int = 42
) -> VisionData:
    """Check every image, split by a seeded shuffle, count tokens as training will see them."""
    records = [record(example) for example in loaded.examples]
    random.Random(seed).shuffle(records)
    train, validation = split(records, validation_split)
    total, trained, sample = _tokens(collator(processor), train)
    return VisionData(loaded, tuple(train), tuple(validation), sample, total, trained)
