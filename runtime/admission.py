"""Starting text generations: CPU work off the event loop, and all-or-nothing admission.

Handlers that split `prepare` (chat template, tokenizer: thread-safe, possibly slow) from
`submit` (queueing: on the event loop) get their requests prepared on worker threads, so
`/health` keeps answering while a huge prompt is tokenized, and queued together or not at all.
"""

from __future__ import annotations

import asyncio

from llm_runtime.errors import InvalidRequest
from llm_runtime.handlers.base import TextStream
from llm_runtime.values import TextRequest

HEAD_CHARS_PER_TOKEN = 16  # more characters than this per token would be a rare text


async def start_stream(handler, request: TextRequest) -> TextStream:
    """One running generation for request."""
    return (await start_streams(handler, [request]))[0]


async def start_streams(handler, requests: list[TextRequest]) -> list[TextStream]:
    """Running generations for every request, or an error and none left running."""
    prepare = getattr(handler, "prepare", None)
    if prepare is None:
        return _start_each(handler, requests)
    handler.check_room(len(requests))  # refuse before tokenizing anything
    rows = await asyncio.gather(*(asyncio.to_thread(prepare, request=r) for r in requests))
    return handler.submit(list(rows))


def _start_each(handler, requests: list[TextRequest]) -> list[TextStream]:
    streams: list[TextStream] = []
    try:
        for request in requests:
            streams.append(handler.start(request=request))
    except BaseException:
        for stream in streams:
            stream.cancel()
        raise
    return streams


def embedding_inputs(handler, inputs: list) -> list:
    """inputs checked for an embedding handler: token ids inside its vocabulary (else 400),
    texts cut to what its max length could ever use (tokenizing more is wasted work)."""
    tokenizer = getattr(handler, "tokenizer", None)
    max_length = getattr(handler, "max_length", None)
    if tokenizer is None or not inputs:
        return inputs
    if isinstance(inputs[0], list):
        vocab = len(tokenizer)
        for index, ids in enumerate(inputs):
            if min(ids) >= 0 and max(ids) < vocab:  # C-speed: the usual, valid case
                continue
            bad = next(i for i in ids if not 0 <= i < vocab)
            if bad is not None:
                raise InvalidRequest(
                    f"input[{index}] holds token id {bad}, outside this model's vocabulary "
                    f"(0 to {vocab - 1}).",
                    code="invalid_token_id",
                )
        return inputs
    if max_length:
        cap = max_length * HEAD_CHARS_PER_TOKEN
        return [text[:cap] for text in inputs]
    return inputs
