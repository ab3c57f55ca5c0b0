"""Seq2seq and text-classification models: transformers' own Seq2SeqTrainer and Trainer, a
full fine-tune saved (with its tokenizer) into finetuned/, which start.sh then serves.

Data: JSON/JSONL/CSV files (a file, a folder or a comma list). Seq2seq: {"input", "target"}
records (also source/target, prompt/completion, question/answer, text/summary). Classification:
{"text", "label"} records, the label one of the model's own (its name or its id).
"""

from __future__ import annotations

import time
from pathlib import Path

from llm_runtime.training import outputs
from llm_runtime.training.callbacks import say
from llm_runtime.training.errors import DataFormatError, DataSourceError
from llm_runtime.training.options import TrainOptions
from llm_runtime.training.report import now_iso
from llm_runtime.training.sentence import data_files

SEQ2SEQ_COLUMNS = (
    ("input", "target"),
    ("source", "target"),
    ("prompt", "completion"),
    ("question", "answer"),
    ("text", "summary"),
)
CLASSIFY_COLUMNS = (("text", "label"), ("sentence", "label"))
DEFAULTS = {"epochs": 3.0, "batch_size": 8, "learning_rate": 5e-5, "max_length": 512}


def load_columns(spec: str, layouts: tuple[tuple[str, ...], ...], *, max_examples, seed):
    """The records of --data with the first column pair they hold, renamed to the first
    layout's names (e.g. source/target -> input/target)."""
    from datasets import load_dataset

    builder, files = data_files(spec)
    try:
        dataset = load_dataset(builder, data_files=files, split="train")
    except Exception as error:  # datasets' parse errors vary by builder
        raise DataSourceError(f"{spec}: cannot be read as {builder}: {error}") from error
    found = next((c for c in layouts if set(c) <= set(dataset.column_names)), None)
    if found is None:
        wanted = " | ".join("+".join(c) for c in layouts)
        raise DataFormatError(f"{spec}: needs columns {wanted}; it has {dataset.column_names}")
    dataset = dataset.select_columns(list(found)).shuffle(seed=seed)
    dataset = dataset.rename_columns(dict(zip(found, layouts[0], strict=True)))
    if max_examples:
        dataset = dataset.select(range(min(max_examples, len(dataset))))
    return dataset


def run_seq2seq(options: TrainOptions, model_dir: Path, code: dict, device: str) -> dict:
    """Seq2SeqTrainer on input -> target pairs."""
    from transformers import (
        AutoModelForSeq2SeqLM,
        AutoTokenizer,
        DataCollatorForSeq2Seq,
        Seq2SeqTrainer,
        Seq2SeqTrainingArguments,
    )

    dataset = load_columns(
        options.data, SEQ2SEQ_COLUMNS, max_examples=options.max_examples, seed=options.seed
    )
    tokenizer = AutoTokenizer.from_pretrained(model_dir, **code)
    model = AutoModelForSeq2SeqLM.from_pretrained(model_dir, **code)
    length = options.max_seq_length or DEFAULTS["max_length"]

    def encode(batch):
        return tokenizer(
            batch["input"], text_target=batch["target"], truncation=True, max_length=length
        )

    train, validation = _split(
        dataset.map(encode, batched=True, remove_columns=["input", "target"]), options
    )
    trainer = Seq2SeqTrainer(
        model=model, args=Seq2SeqTrainingArguments(**_arguments(options, device, validation)),
        train_dataset=train, eval_dataset=validation,
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model), processing_class=tokenizer,
    )  # fmt: skip
    return _train(options, model_dir, "seq2seq", trainer, tokenizer)


def run_classifier(options: TrainOptions, model_dir: Path, code: dict, device: str) -> dict:
    """Trainer on text -> label records, with the model's own labels."""
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    dataset = load_columns(
        options.data, CLASSIFY_COLUMNS, max_examples=options.max_examples, seed=options.seed
    )
    tokenizer = AutoTokenizer.from_pretrained(model_dir, **code)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, **code)
    label_ids = _label_ids(model.config, set(dataset["label"]))
    length = options.max_seq_length or DEFAULTS["max_length"]

    def encode(batch):
        encoded = tokenizer(batch["text"], truncation=True, max_length=length)
        encoded["labels"] = [label_ids[str(label)] for label in batch["label"]]
        return encoded

    train, validation = _split(
        dataset.map(encode, batched=True, remove_columns=["text", "label"]), options
    )
    trainer = Trainer(
        model=model, args=TrainingArguments(**_arguments(options, device, validation)),
        train_dataset=train, eval_dataset=validation,
        data_collator=DataCollatorWithPadding(tokenizer), processing_class=tokenizer,
    )  # fmt: skip
    return _train(options, model_dir, "sequence-classification", trainer, tokenizer)


def _label_ids(config, found: set) -> dict[str, int]:
    """label (its name or its id, as text) -> id; a label the model lacks is a data error."""
    names = {str(name): int(i) for i, name in config.id2label.items()}
    ids = {str(i): int(i) for i in config.id2label}
    known = {**ids, **names}
    unknown = sorted(str(label) for label in found if str(label) not in known)
    if unknown:
        raise DataFormatError(
            f"labels {', '.join(unknown[:10])} are not this model's; it has "
            f"{', '.join(names)} (ids {', '.join(ids)})"
        )
    return known


def _split(dataset, options: TrainOptions):
    """(train, validation or None): no validation set below 10 records or with split 0."""
    if options.validation_split <= 0 or len(dataset) < 10:
        return dataset, None
    parts = dataset.train_test_split(test_size=options.validation_split, seed=options.seed)
    return parts["train"], parts["test"]


def _arguments(options: TrainOptions, device: str, validation) -> dict:
    return {
        "output_dir": str(options.paths.checkpoints),
        "num_train_epochs": options.epochs or DEFAULTS["epochs"],
        "max_steps": options.max_steps or -1,
        "per_device_train_batch_size": options.batch_size or DEFAULTS["batch_size"],
        "per_device_eval_batch_size": options.batch_size or DEFAULTS["batch_size"],
        "learning_rate": options.learning_rate or DEFAULTS["learning_rate"],
        "eval_strategy": "no" if validation is None else "epoch",
        "save_strategy": "no",
        "logging_steps": 10,
        "report_to": "none",
        "seed": options.seed,
        "use_cpu": device == "cpu",
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
    }


def _train(options: TrainOptions, model_dir: Path, name: str, trainer, tokenizer) -> dict:
    """Train, save finetuned/ atomically (model + tokenizer), write the report; returns it."""
    started, clock = now_iso(), time.monotonic()
    validation = trainer.eval_dataset
    say(f"📄 {len(trainer.train_dataset)} training records ({name})")
    result = trainer.train()
    metrics = trainer.evaluate() if validation is not None else {}
    target = options.paths.lora.with_name("finetuned")

    def build(folder: Path) -> None:
        trainer.model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)

    outputs.replace_directory(build, target)
    say(f"✅ Fine-tuned model saved: {target}")
    report = {
        "model_id": model_dir.resolve().name,
        "trainer": name,
        "method": "full",
        "started": started,
        "duration_s": round(time.monotonic() - clock, 2),
        "examples": {"train": len(trainer.train_dataset), "validation": len(validation or [])},
        "global_step": result.global_step,
        "final_metrics": {"train_loss": result.training_loss, **metrics},
        "paths": {"finetuned": str(target), "logs": str(options.paths.logs)},
    }
    outputs.write_json_atomically(options.paths.report, report)
    return report
