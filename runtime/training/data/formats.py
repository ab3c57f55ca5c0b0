"""Dataset formats: how each is recognised by its fields and turned into a training example.

Instruction formats become chat messages (rendered later with the tokenizer's chat template,
loss on the assistant turns); `completion` keeps its raw prompt (loss on the completion);
`text` is packed for causal language modelling.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from llm_runtime.training.errors import DataFormatError

Messages = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Example:
    """One training example, independent of the file format it came from."""

    format: str
    source: str
    messages: Messages = ()
    text: str = ""
    prompt: str = ""
    image: str = ""

    @property
    def is_chat(self) -> bool:
        return bool(self.messages)


@dataclass(frozen=True)
class DataFormat:
    name: str
    required: tuple[str, ...]
    convert: Callable[[dict, str], Example]
    task: str  # "instruction" or "text": picks the auto-learning thresholds


SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "bard": "assistant",
    "bing": "assistant",
    "model": "assistant",
    "system": "system",
    "tool": "tool",
    "function": "tool",
    "observation": "tool",
}
CHAT_ROLES = ("system", "user", "assistant", "tool")


def _text_of(value) -> str:
    """Strings as they are; OpenAI content parts joined; SQuAD-style answers' first text."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "text" in value:
        return _text_of(value["text"])
    if isinstance(value, list) and value:
        if all(isinstance(part, dict) for part in value):
            return "".join(_text_of(part.get("text", "")) for part in value)
        return _text_of(value[0])
    if value is None:
        return ""
    return str(value)


def _alpaca(record: dict, source: str) -> Example:
    user = _text_of(record["instruction"])
    extra = _text_of(record.get("input"))
    system = _text_of(record.get("system"))
    turns = [("system", system)] if system else []
    turns += [("user", f"{user}\n\n{extra}" if extra else user)]
    turns += [("assistant", _text_of(record["output"]))]
    return Example("alpaca", source, messages=tuple(turns))


def _sharegpt(record: dict, source: str) -> Example:
    turns = []
    for turn in record["conversations"]:
        speaker = str(turn.get("from", turn.get("role", ""))).lower()
        if speaker not in SHAREGPT_ROLES:
            raise ValueError(f"unknown speaker {speaker!r} (known: {', '.join(SHAREGPT_ROLES)})")
        turns.append((SHAREGPT_ROLES[speaker], _text_of(turn.get("value", turn.get("content")))))
    return Example("sharegpt", source, messages=_checked(turns))


def _openai(record: dict, source: str) -> Example:
    turns = []
    for message in record["messages"]:
        role = str(message.get("role", "")).lower()
        if role not in CHAT_ROLES:
            raise ValueError(f"unknown role {role!r} (known: {', '.join(CHAT_ROLES)})")
        turns.append((role, _text_of(message.get("content"))))
    return Example("openai", source, messages=_checked(turns))


def _qa(record: dict, source: str) -> Example:
    context = _text_of(record.get("context"))
    question = _text_of(record["question"])
    user = f"{context}\n\n{question}" if context else question
    answer = record.get("answer", record.get("answers"))
    return Example("qa", source, messages=(("user", user), ("assistant", _text_of(answer))))


def _completion(record: dict, source: str) -> Example:
    return Example(
        "completion",
        source,
        prompt=_text_of(record["prompt"]),
        text=_text_of(record["completion"]),
    )


def _text(record: dict, source: str) -> Example:
    return Example("text", source, text=_text_of(record["text"]))


def _image_caption(record: dict, source: str) -> Example:
    """A caption, or a question about the image and its answer."""
    answer = next(record[k] for k in ("caption", "answer", "text") if k in record)
    image = record["image"]
    if not isinstance(image, str):
        raise ValueError("the image must be a file path (relative to the data file)")
    return Example(
        "image_caption",
        source,
        image=image,
        text=_text_of(answer),
        prompt=_text_of(record.get("question", "")),
    )


def _checked(turns: list[tuple[str, str]]) -> Messages:
    if not any(role == "assistant" for role, _ in turns):
        raise ValueError("the conversation has no assistant turn to train on")
    return tuple(turns)


# Order matters: the first format whose required fields a record has wins.
FORMATS: tuple[DataFormat, ...] = (
    DataFormat("image_caption", ("image", "question", "answer"), _image_caption, "instruction"),
    DataFormat("openai", ("messages",), _openai, "instruction"),
    DataFormat("sharegpt", ("conversations",), _sharegpt, "instruction"),
    DataFormat("alpaca", ("instruction", "output"), _alpaca, "instruction"),
    DataFormat("qa", ("question", "answer"), _qa, "instruction"),
    DataFormat("qa", ("question", "answers"), _qa, "instruction"),
    DataFormat("completion", ("prompt", "completion"), _completion, "text"),
    DataFormat("image_caption", ("image", "caption"), _image_caption, "instruction"),
    DataFormat("image_caption", ("image", "text"), _image_caption, "instruction"),
    DataFormat("text", ("text",), _text, "text"),
)
FORMAT_NAMES = tuple(dict.fromkeys(f.name for f in FORMATS))
# Column aliases seen in CSV files and Hub datasets, mapped onto the canonical fields.
ALIASES = {
    "response": "output",
    "input_text": "instruction",
    "prompt_text": "prompt",
    "q": "question",
    "a": "answer",
}


def format_by_name(name: str) -> tuple[DataFormat, ...]:
    found = tuple(f for f in FORMATS if f.name == name)
    if not found:
        raise DataFormatError(
            f"unknown --dataset-format {name!r} (known: {', '.join(FORMAT_NAMES)})"
        )
    return found


def detect_format(record) -> DataFormat | None:
    """The format of one record by its fields, or None."""
    if not isinstance(record, dict):
        return None
    keys = set(_aliased(record))
    return next((f for f in FORMATS if keys.issuperset(f.required)), None)


def convert(record, candidates: tuple[DataFormat, ...], source: str, index: int) -> Example:
    """The record as an Example in the first candidate format that fits; a clear error otherwise."""
    if isinstance(record, dict):
        record = _aliased(record)
        for fmt in candidates:
            if set(record).issuperset(fmt.required):
                try:
                    return fmt.convert(record, source)
                except (ValueError, TypeError, AttributeError, KeyError) as error:
                    raise _record_error(source, index, record, str(error)) from error
    if not candidates:
        fields = sorted(record) if isinstance(record, dict) else type(record).__name__
        raise _record_error(source, index, record, f"no known format has the fields {fields}")
    names = ", ".join(dict.fromkeys(f.name for f in candidates))
    raise _record_error(source, index, record, f"it does not match the {names} format")


def _aliased(record: dict) -> dict:
    return {
        ALIASES.get(k, k) if ALIASES.get(k, k) not in record else k: v for k, v in record.items()
    }


def _record_error(source: str, index: int, record, reason: str) -> DataFormatError:
    shown = repr(record)
    shown = shown if len(shown) <= 200 else shown[:200] + "…"
    return DataFormatError(f"file: {source}\nrecord #{index}: {shown}\nreason: {reason}")
