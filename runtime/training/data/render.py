"""Examples → token ids and loss masks.

Chat examples are rendered with the tokenizer's chat template; the assistant turns are found
by rendering each prefix of the conversation (the template's own output, whatever its markup),
so only they carry loss. Completion examples train on the completion; text is trained whole.
"""

from __future__ import annotations

from dataclasses import dataclass

from llm_runtime.training.data.formats import Example

# Used only when the tokenizer has none (base models); saved with the adapter so serving matches.
FALLBACK_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] + "
    "eos_token + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)


@dataclass(frozen=True)
class Tokenized:
    """One example's token ids and, per token, whether it is trained on."""

    input_ids: tuple[int, ...]
    trained: tuple[bool, ...]

    @property
    def labels(self) -> list[int]:
        return [t if keep else -100 for t, keep in zip(self.input_ids, self.trained, strict=True)]


def ensure_chat_template(tokenizer) -> bool:
    """Give the tokenizer a chat template when it has none; True when the fallback was set."""
    if getattr(tokenizer, "chat_template", None):
        return False
    tokenizer.chat_template = FALLBACK_CHAT_TEMPLATE
    return True


def tokenize_example(tokenizer, example: Example) -> Tokenized:
    if example.is_chat:
        return _tokenize_chat(tokenizer, example.messages)
    if example.prompt:
        return _tokenize_completion(tokenizer, example.prompt, example.text)
    ids = tokenizer(example.text, add_special_tokens=True)["input_ids"] + _eos(tokenizer)
    return Tokenized(tuple(ids), (True,) * len(ids))


def _eos(tokenizer) -> list[int]:
    return [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []


def _tokenize_completion(tokenizer, prompt: str, completion: str) -> Tokenized:
    prompt_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"] + _eos(tokenizer)
    trained = (False,) * len(prompt_ids) + (True,) * len(completion_ids)
    return Tokenized(tuple(prompt_ids + completion_ids), trained)


def _tokenize_chat(tokenizer, messages) -> Tokenized:
    chat = [{"role": role, "content": content} for role, content in messages]
    try:
        text, spans = _render_with_spans(tokenizer, chat)
    except Exception:  # templates that refuse a system turn: fold it into the first user turn
        chat = _fold_system(chat)
        text, spans = _render_with_spans(tokenizer, chat)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    trained = tuple(
        end > start and any(start < s_end and end > s_start for s_start, s_end in spans)
        for start, end in encoded["offset_mapping"]
    )
    return Tokenized(tuple(encoded["input_ids"]), trained)


def _render(tokenizer, chat, generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(
        chat, tokenize=False, add_generation_prompt=generation_prompt
    )


def _render_with_spans(tokenizer, chat) -> tuple[str, list[tuple[int, int]]]:
    """The full rendering and the character spans of every assistant turn in it."""
    text = _render(tokenizer, chat)
    spans, cursor = [], 0
    for i, message in enumerate(chat):
        if message["role"] != "assistant":
            continue
        before = _render(tokenizer, chat[:i], generation_prompt=True) if i else ""
        through = _render(tokenizer, chat[: i + 1])
        if text.startswith(through) and through.startswith(before):
            span = (len(before), len(through))
        else:  # the template rewrites earlier turns: fall back to finding the content itself
            start = text.find(message["content"], cursor)
            span = (start, start + len(message["content"])) if start >= 0 else (0, 0)
        spans.append(span)
        cursor = max(cursor, span[1])
    return text, spans


def _fold_system(chat: list[dict]) -> list[dict]:
    if not chat or chat[0]["role"] != "system":
        raise ValueError("the chat template cannot render this conversation")
    system, rest = chat[0]["content"], [dict(m) for m in chat[1:]]
    first_user = next((m for m in rest if m["role"] == "user"), None)
    if first_user is not None:
        first_user["content"] = f"{system}\n\n{first_user['content']}"
    return rest


def marked_text(tokenizer, item: Tokenized, *, color: bool = False, limit: int = 1200) -> str:
    """The example decoded, trained tokens wrapped in « » (green when the console has colour)."""
    opening, closing = ("\x1b[32m", "\x1b[0m") if color else ("«", "»")
    pieces: list[str] = []
    run: list[int] = []
    state: bool | None = None
    for token, keep in zip(item.input_ids, item.trained, strict=True):
        if keep != state and run:
            pieces.append(_wrap(tokenizer.decode(run), state, opening, closing))
            run = []
        run.append(token)
        state = keep
    if run:
        pieces.append(_wrap(tokenizer.decode(run), state, opening, closing))
    text = "".join(pieces)
    return text if len(text) <= limit else text[:limit] + " …"


def _wrap(text: str, trained: bool | None, opening: str, closing: str) -> str:
    return f"{opening}{text}{closing}" if trained else text
