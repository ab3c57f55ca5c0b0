"""Prefix caching for the continuous batch: the KV states of recent prompts, reused by a new
prompt that starts with the same tokens (a shared system prompt, the earlier turns of a chat, the
same question again), so that its prefill computes only what differs.

Prompts are indexed by a chain hash of their 16-token blocks (as vLLM's block hashes): a lookup
walks the new prompt block by block, then extends the match token by token into the cached
prompt's next block. At least the prompt's last token is always computed again (its logits choose
the first reply token). The cache holds at most ``max_bytes`` of KV states, evicting the least
recently used prompt first; each layer's states stay on that layer's device.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch

BLOCK = 16


@dataclass
class _Entry:
    ids: list[int]
    layers: list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values [heads, len, dim]
    hashes: list[int]  # the chain hash after each full block
    size: int  # bytes


@dataclass(frozen=True)
class PrefixHit:
    """``length`` leading tokens of a prompt whose KV states are ``layers`` (already sliced)."""

    length: int
    layers: list[tuple[torch.Tensor, torch.Tensor]]


def block_hashes(ids: list[int]) -> list[int]:
    """The chain hash after each full block of ``ids``: equal hashes mean equal prefixes (up to
    a hash collision, which `PrefixCache.lookup` rules out by comparing the tokens)."""
    out, last = [], 0
    for end in range(BLOCK, len(ids) + 1, BLOCK):
        last = hash((last, tuple(ids[end - BLOCK : end])))
        out.append(last)
    return out


class PrefixCache:
    """Recent prompts' KV states, least recently used evicted first."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.entries: OrderedDict[tuple[int, ...], _Entry] = OrderedDict()
        self.index: dict[int, dict[tuple[int, ...], None]] = {}  # chain hash -> its holders

    def lookup(self, ids: list[int]) -> PrefixHit | None:
        """The longest cached prefix of ``ids`` (leaving at least its last token), or None."""
        holders: dict[tuple[int, ...], None] = {}
        blocks = 0
        for chained in block_hashes(ids[:-1]):
            found = self.index.get(chained)
            if not found:
                break
            holders, blocks = found, blocks + 1
        if not holders:
            return None
        extended = {key: self._extend(self.entries[key], ids, blocks * BLOCK) for key in holders}
        best = max(extended, key=extended.__getitem__)
        entry, matched = self.entries[best], extended[best]
        if entry.ids[: blocks * BLOCK] != ids[: blocks * BLOCK]:
            return None  # a hash collision
        self.entries.move_to_end(tuple(entry.ids))
        layers = [(k[:, :matched], v[:, :matched]) for k, v in entry.layers]
        return PrefixHit(matched, layers)

    @staticmethod
    def _extend(entry: _Entry, ids: list[int], matched: int) -> int:
        """How far ``entry`` goes on matching ``ids`` after ``matched`` tokens (never to the
        prompt's last token)."""
        limit = min(len(entry.ids), len(ids) - 1)
        while matched < limit and entry.ids[matched] == ids[matched]:
            matched += 1
        return matched

    def covers(self, ids: list[int]) -> bool:
        """True when this exact prompt is cached."""
        return tuple(ids) in self.entries

    def add(self, ids: list[int], layers: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Keep ``layers`` (each [heads, len(ids), dim], owned by the cache from now on) as the
        states of prompt ``ids``; prompts shorter than a block are not worth an entry."""
        size = sum(k.nbytes + v.nbytes for k, v in layers)
        if len(ids) < BLOCK or size > self.max_bytes or self.covers(ids):
            return
        key = tuple(ids)
        entry = _Entry(list(ids), layers, block_hashes(ids), size)
        self.entries[key] = entry
        for chained in entry.hashes:
            self.index.setdefault(chained, {})[key] = None
        self.bytes += size
        while self.bytes > self.max_bytes:
            self._evict(next(iter(self.entries)))

    def clear(self) -> None:
        self.entries.clear()
        self.index.clear()
        self.bytes = 0

    def _evict(self, key: tuple[int, ...]) -> None:
        entry = self.entries.pop(key)
        self.bytes -= entry.size
        for chained in entry.hashes:
            holders = self.index[chained]
            del holders[key]
            if not holders:
                del self.index[chained]
