"""Read every source of a `--data` spec into Examples, detecting each record's format."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from llm_runtime.training.data.formats import (
    FORMATS,
    Example,
    convert,
    detect_format,
    format_by_name,
)
from llm_runtime.training.data.sources import RawRecords, read_source, resolve_sources
from llm_runtime.training.errors import DataFormatError

TASK_BY_FORMAT = {f.name: f.task for f in FORMATS}


@dataclass(frozen=True)
class FileSummary:
    """What one source contributed: its name, record count per format."""

    name: str
    counts: tuple[tuple[str, int], ...]

    @property
    def total(self) -> int:
        return sum(n for _, n in self.counts)


@dataclass(frozen=True)
class LoadedData:
    examples: tuple[Example, ...]
    files: tuple[FileSummary, ...]

    @property
    def formats(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(e.format for e in self.examples))

    @property
    def format_label(self) -> str:
        return "+".join(self.formats) if len(self.formats) > 1 else self.formats[0]

    @property
    def task_type(self) -> str:
        """`text` when every example is text/completion (perplexity matters), else `instruction`."""
        tasks = {TASK_BY_FORMAT[f] for f in self.formats}
        return "text" if tasks == {"text"} else "instruction"


def load_examples(
    spec: str, *, dataset_format: str | None = None, max_examples: int | None = None, seed: int = 42
) -> LoadedData:
    """All examples named by `spec`; `max_examples` keeps a seeded random subset."""
    candidates = format_by_name(dataset_format) if dataset_format else None
    examples: list[Example] = []
    files: list[FileSummary] = []
    for source in resolve_sources(spec):
        raw = read_source(source)
        found = _examples_of(raw, candidates)
        examples.extend(found)
        files.append(FileSummary(source.name, tuple(Counter(e.format for e in found).items())))
    if not examples:
        raise DataFormatError(f"no training examples in {spec}")
    if max_examples and len(examples) > max_examples:
        picked = sorted(random.Random(seed).sample(range(len(examples)), max_examples))
        examples = [examples[i] for i in picked]
    return LoadedData(tuple(examples), tuple(files))


def _examples_of(raw: RawRecords, candidates) -> list[Example]:
    name = raw.source.name
    if raw.kind == "text" and (candidates is None or candidates[0].name == "text"):
        return [Example("text", name, text=paragraph) for paragraph in raw.records]
    if raw.kind == "text":
        raise DataFormatError(f"file: {name}\nplain text cannot be read as {candidates[0].name}")
    found = []
    for index, record in enumerate(raw.records):
        formats = candidates or _detected(record)
        found.append(convert(record, formats, name, index))
    return found


def _detected(record) -> tuple:
    fmt = detect_format(record)
    return tuple(f for f in FORMATS if f.name == fmt.name) if fmt else ()
