"""Where training data comes from: `--data` specs resolved into files or Hub datasets, then read.

A spec is a comma-separated list of files, directories (searched recursively), quoted globs,
or Hugging Face datasets written `name:split` (only reachable where the Hub is).
"""

from __future__ import annotations

import csv
import glob
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from llm_runtime.training.errors import DataFormatError, DataSourceError, HubDatasetError

DATA_SUFFIXES = (".json", ".jsonl", ".csv", ".tsv", ".txt", ".md", ".parquet")
HUB_SPEC = re.compile(r"^(?P<name>[\w.-]+(?:/[\w.-]+)?):(?P<split>[\w.\[\]%:+-]+)$")
PARAGRAPH_BREAK = re.compile(r"\n\s*\n")


@dataclass(frozen=True)
class Source:
    """One place records come from: a file, or a Hub dataset split."""

    name: str
    path: Path | None = None
    hub_name: str | None = None
    hub_split: str | None = None


@dataclass(frozen=True)
class RawRecords:
    """The records of one source, as dicts; `kind` is "records" or "text" (plain-text paragraphs)."""

    source: Source
    kind: str
    records: tuple


def resolve_sources(spec: str) -> list[Source]:
    """Expand a `--data` spec into sources, in order, without duplicates."""
    found: list[Source] = []
    for part in (p.strip() for p in spec.split(",")):
        if part:
            found.extend(_resolve_one(part))
    unique = list(dict.fromkeys(found))
    if not unique:
        raise DataSourceError(f"--data {spec!r} names no data files")
    return unique


def _resolve_one(part: str) -> list[Source]:
    path = Path(part).expanduser()
    if path.is_file():
        return [Source(name=str(path), path=path)]
    if path.is_dir():
        return [Source(name=str(f), path=f) for f in _data_files_under(path)]
    hub = HUB_SPEC.match(part)
    if glob.has_magic(part):
        matches = sorted(Path(m) for m in glob.glob(os.path.expanduser(part), recursive=True))
        files = [m for m in matches if m.is_file()]
        files += [f for m in matches if m.is_dir() for f in _data_files_under(m)]
        if files:
            return [Source(name=str(f), path=f) for f in files]
        if not hub:  # `org/set:train[:10%]` has glob brackets but is a dataset slice
            raise DataSourceError(f"the pattern {part!r} matches no files")
    if hub:
        return [Source(name=part, hub_name=hub["name"], hub_split=hub["split"])]
    raise DataSourceError(f"{part!r} is not a file, a folder, a glob or a `name:split` dataset")


def _data_files_under(folder: Path) -> list[Path]:
    files = sorted(
        f
        for f in folder.rglob("*")
        if f.is_file()
        and f.suffix.lower() in DATA_SUFFIXES
        and not any(p.startswith(".") for p in f.relative_to(folder).parts)
    )
    if not files:
        raise DataSourceError(f"folder {folder} holds no data files ({', '.join(DATA_SUFFIXES)})")
    return files


def read_source(source: Source) -> RawRecords:
    """All records of one source; raises with the file name when it cannot be parsed."""
    if source.hub_split is not None:
        return RawRecords(source, "records", tuple(_read_hub(source)))
    assert source.path is not None
    reader = _READERS.get(source.path.suffix.lower(), _read_by_content)
    kind, records = reader(source.path)
    return RawRecords(source, kind, tuple(records))


def _read_by_content(path: Path) -> tuple[str, list]:
    """Decide JSON / JSONL / CSV / text from the bytes, not the extension."""
    text = _read_text(path)
    head = text.lstrip()[:1]
    if head in ("[", "{"):
        return "records", _parse_json_or_jsonl(path, text)
    first_line = text.splitlines()[0] if text.strip() else ""
    if path.suffix.lower() in (".csv", ".tsv") or _looks_like_csv_header(first_line):
        return "records", _parse_csv(path, text)
    return "text", _paragraphs(text)


def _read_json_file(path: Path) -> tuple[str, list]:
    return "records", _parse_json_or_jsonl(path, _read_text(path))


def _read_parquet(path: Path) -> tuple[str, list]:
    import pyarrow.parquet as pq

    return "records", pq.read_table(path).to_pylist()


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise DataSourceError(f"cannot read {path}: {error}") from error


def _parse_json_or_jsonl(path: Path, text: str) -> list:
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return list(_parse_jsonl(path, text))
    if isinstance(data, dict):
        lists = [v for v in data.values() if isinstance(v, list) and v and isinstance(v[0], dict)]
        data = lists[0] if len(lists) == 1 and len(data) == 1 else [data]
    if not isinstance(data, list):
        raise DataFormatError(f"file: {path}\nthe JSON top level is {type(data).__name__}")
    return data


def _parse_jsonl(path: Path, text: str) -> Iterator:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError as error:
            raise DataFormatError(
                f"file: {path}\nline {number} is not valid JSON ({error.msg}): {line[:120]}"
            ) from error


def _looks_like_csv_header(line: str) -> bool:
    names = [c.strip().strip('"').lower() for c in line.split(",")]
    return len(names) >= 2 and all(re.fullmatch(r"[a-z_][a-z0-9_ ]*", n) for n in names)


def _parse_csv(path: Path, text: str) -> list:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    rows = list(csv.DictReader(text.splitlines(), delimiter=delimiter))
    return [{(k or "").strip().lower(): v for k, v in row.items()} for row in rows]


def _paragraphs(text: str) -> list[str]:
    return [p.strip() for p in PARAGRAPH_BREAK.split(text) if p.strip()]


def _read_hub(source: Source) -> list:
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1":
        raise HubDatasetError(f"{source.name}: the Hub is switched off here (HF_HUB_OFFLINE=1)")
    try:
        import datasets

        loaded = datasets.load_dataset(source.hub_name, split=source.hub_split)
    except Exception as error:  # any failure of the Hub client is the same message to the user
        raise HubDatasetError(
            f"{source.name}: {type(error).__name__}: {error}{_access_advice(error)}"
        ) from error
    return [dict(row) for row in loaded]


def _access_advice(error: Exception) -> str:
    """`datasets` reports a refused private or gated dataset as not found: say what to try."""
    if type(error).__name__ != "DatasetNotFoundError":
        return ""
    from huggingface_hub import get_token

    if get_token() is None:
        return (
            "\nIf the dataset is private or gated, set HF_TOKEN to a token that can read it"
            " (https://huggingface.co/settings/tokens) and run again."
        )
    return "\nCheck the name, and that the token in HF_TOKEN can read the dataset."


_READERS = {
    ".json": _read_json_file,
    ".jsonl": _read_json_file,
    ".parquet": _read_parquet,
}
