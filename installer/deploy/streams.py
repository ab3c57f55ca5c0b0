"""Byte streams between a producer thread and an HTTP upload (no temporary files)."""

from __future__ import annotations

import queue
from collections.abc import Iterator


class Reader:
    """A file-like object over a generator of byte chunks (what tarfile's stream mode reads)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks, self.current, self.offset = iter(chunks), b"", 0

    def read(self, size: int = -1) -> bytes:
        parts, wanted = [], size
        while wanted != 0:
            if self.offset >= len(self.current):
                chunk = next(self.chunks, None)
                if chunk is None:
                    break
                self.current, self.offset = chunk, 0
                continue
            end = len(self.current) if wanted < 0 else min(len(self.current), self.offset + wanted)
            parts.append(self.current[self.offset : end])
            wanted = wanted if wanted < 0 else wanted - (end - self.offset)
            self.offset = end
        return b"".join(parts)


class Pipe:
    """Bytes written by the filter thread, handed to the HTTP upload as a chunk generator."""

    def __init__(self) -> None:
        self.queue: queue.Queue[bytes | None] = queue.Queue(maxsize=16)
        self.error: BaseException | None = None
        self.closed = False

    def write(self, data: bytes) -> int:
        if self.closed:
            raise BrokenPipeError("the upload stopped")
        if data:
            self.queue.put(bytes(data))
        return len(data)

    def finish(self) -> None:
        self.queue.put(None)

    def close(self) -> None:
        self.closed = True
        while not self.queue.empty():  # unblock a writer waiting on a full queue
            self.queue.get_nowait()

    def chunks(self, counter) -> Iterator[bytes]:
        while (chunk := self.queue.get()) is not None:
            counter.bytes_sent += len(chunk)
            yield chunk
