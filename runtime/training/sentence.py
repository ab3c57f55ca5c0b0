"""Embedding models: sentence-transformers' own trainer on sentence pairs; the whole model, saved
as a sentence-transformers folder, goes to finetuned/ (which start.sh then serves).

Data: JSON/JSONL/CSV files (a file, a folder or a comma list) of
{"anchor", "positive"[, "negative"]} records (MultipleNegativesRankingLoss: in-batch negatives)
or {"sentence1", "sentence2", "score"} records with scores in 0..1 (CoSENTLoss).
"""

from __future__ import annotations

import time
from pathlib import Path

from llm_runtime.contract import EMBEDDING
from llm_runtime.training import outputs
from llm_runtime.training.callbacks import say
from llm_runtime.training.errors import DataFormatError, DataSourceError
from llm_runtime.training.options import TrainOptions
from llm_runtime.training.report import now_iso

# (columns, loss class name under sentence_transformers.losses), tried in order.
LAYOUTS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("anchor", "positive", "negative"), "MultipleNegativesRankingLoss"),
    (("anchor", "positive"), "MultipleNegativesRankingLoss"),
    (("query", "positive"), "MultipleNegativesRankingLoss"),
    (("sentence1", "sentence2", "score"), "CoSENTLoss"),
)
SUFFIXES = {".json": "json", ".jsonl": "json", ".csv": "csv"}
DEFAULTS = {"epochs": 1.0, "batch_size": 16, "learning_rate": 2e-5}


def data_files(spec: str) -> tuple[str, list[str]]:
    """(datasets builder, files) of a --data spec: one file, a folder, or a comma list."""
    found: list[Path] = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        path = Path(part).expanduser()
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES)
        elif path.is_file():
            found.append(path)
        else:
            raise DataSourceError(f"{part}: no such file or folder (embedding data is local)")
    kinds = {SUFFIXES.get(p.suffix) for p in found}
    kind = kinds.pop() if len(kinds) == 1 else None
    if kind is None:
        raise DataSourceError(
            f"{spec}: give .json/.jsonl or .csv files of one kind (found {len(found)} files)"
        )
    return kind, [str(p) for p in found]


def load_pairs(spec: str, *, max_examples: int | None, seed: int):
    """A datasets.Dataset holding one LAYOUTS column set, and the loss that fits it."""
    from datasets import load_dataset

    builder, files = data_files(spec)
    try:
        dataset = load_dataset(builder, data_files=files, split="train")
    except Exception as error:  # datasets' parse errors vary by builder
        raise DataSourceError(f"{spec}: cannot be read as {builder}: {error}") from error
    columns, loss = next(
        ((cols, loss) for cols, loss in LAYOUTS if set(cols) <= set(dataset.column_names)),
        ((), ""),
    )
    if not columns:
        raise DataFormatError(
            f"{spec}: embedding training needs columns {' | '.join(map(str, _layout_names()))}; "
            f"the data has {', '.join(dataset.column_names)}"
        )
    dataset = dataset.select_columns(list(columns)).shuffle(seed=seed)
    if max_examples:
        dataset = dataset.select(range(min(max_examples, len(dataset))))
    return dataset, loss


def _layout_names() -> list[str]:
    return ["+".join(cols) for cols, _ in LAYOUTS]


def run_sentence_transformers(options: TrainOptions, model_dir: Path, code: dict, device: str):
    """Train, save finetuned/ atomically and write the report; returns the report."""
    import sentence_transformers.losses as losses
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer

    started, clock = now_iso(), time.monotonic()
    dataset, loss_name = load_pairs(
        options.data, max_examples=options.max_examples, seed=options.seed
    )
    train, validation = _split(dataset, options.validation_split, options.seed)
    say(f"📄 {len(dataset)} {'+'.join(dataset.column_names)} records → {loss_name}")
    model = SentenceTransformer(str(model_dir), device=device, **code)
    trainer = SentenceTransformerTrainer(
        model=model,
        args=_arguments(options, device, validation is not None),
        train_dataset=train,
        eval_dataset=validation,
        loss=getattr(losses, loss_name)(model),
    )
    result = trainer.train()
    metrics = trainer.evaluate() if validation is not None else {}
    target = options.paths.lora.with_name("finetuned")
    outputs.replace_directory(lambda folder: model.save(str(folder)), target)
    say(f"✅ Fine-tuned model saved: {target}")
    report = {
        "model_id": model_dir.resolve().name,
        "family": EMBEDDING,
        "trainer": "sentence-transformers",
        "method": "full",
        "loss": loss_name,
        "started": started,
        "duration_s": round(time.monotonic() - clock, 2),
        "examples": {"train": len(train), "validation": len(validation or [])},
        "global_step": result.global_step,
        "final_metrics": {"train_loss": result.training_loss, **metrics},
        "paths": {"finetuned": str(target), "logs": str(options.paths.logs)},
    }
    outputs.write_json_atomically(options.paths.report, report)
    return report


def _split(dataset, fraction: float, seed: int):
    if fraction <= 0 or len(dataset) < 10:
        return dataset, None
    parts = dataset.train_test_split(test_size=fraction, seed=seed)
    return parts["train"], parts["test"]


def _arguments(options: TrainOptions, device: str, has_eval: bool):
    from sentence_transformers import SentenceTransformerTrainingArguments

    return SentenceTransformerTrainingArguments(
        output_dir=str(options.paths.checkpoints),
        num_train_epochs=options.epochs or DEFAULTS["epochs"],
        max_steps=options.max_steps or -1,
        per_device_train_batch_size=options.batch_size or DEFAULTS["batch_size"],
        per_device_eval_batch_size=options.batch_size or DEFAULTS["batch_size"],
        learning_rate=options.learning_rate or DEFAULTS["learning_rate"],
        eval_strategy="epoch" if has_eval else "no",
        save_strategy="no",
        logging_steps=10,
        report_to="none",
        seed=options.seed,
        use_cpu=device == "cpu",
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
