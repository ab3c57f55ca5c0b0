"""Continuous batching: requests join the running batch at the next decoding step.

The worker keeps one batch alive: each loop it prefills newly arrived requests (left-padded
among themselves), merges their KV cache into the running one (left-padding the shorter),
runs one decoding step for every row, and retires the rows that finished. A row therefore
never waits for a whole batch to end, and the model never waits for stragglers.

This works on transformers' DynamicCache made of plain DynamicLayer entries (full attention:
Llama, Mistral without a window, Qwen, Mixtral...). Other caches (sliding windows, hybrid or
state-space models) use the `generate`-per-batch engine of batching.py instead. The batch's cache
keeps each layer in a buffer with room to grow (GrowingLayer): a decoding step writes its one new
column in place, where DynamicLayer's `torch.cat` copied the whole cache every step (half of a
small model's step time on CPU, measured).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from transformers.cache_utils import DynamicLayer

from llm_runtime.batching import BatchEngine, _Job, wake_streams
from llm_runtime.decoding import RowState, choose_tokens
from llm_runtime.errors import OutOfMemory, RuntimeServeError, internal_error
from llm_runtime.loading import input_device, translate_oom
from llm_runtime.metrics import BATCH_BUCKETS
from llm_runtime.prefix_cache import BLOCK, PrefixCache, PrefixHit
from llm_runtime.values import DEFAULT_PREFIX_CACHE_MB

log = logging.getLogger("llm_runtime")


def supports_step_batching(model) -> bool:
    """True when model's KV cache is a DynamicCache of plain full-attention layers."""
    try:
        from transformers import DynamicCache

        config = model.config
        if getattr(config, "is_encoder_decoder", False):
            return False
        cache = DynamicCache(config=config)
        return bool(cache.layers) and all(type(layer) is DynamicLayer for layer in cache.layers)
    except Exception:  # an unusual config: the generate engine handles anything
        return False


@dataclass
class _Running:
    """The live batch: its jobs, KV cache, attention mask and the tokens still to feed."""

    jobs: list[_Job]
    cache: Any  # transformers' DynamicCache (its layers hold keys and values)
    mask: torch.Tensor  # [rows, cached length]
    tokens: torch.Tensor  # [rows] the last sampled tokens, not yet in the cache


class StepBatchEngine(BatchEngine):
    """A BatchEngine whose batch admits new requests between decoding steps; prompts reuse the
    KV states of recent prompts they start with (``prefix_cache_bytes`` of them; 0: none)."""

    def __init__(
        self, *, prefix_cache_bytes: int = DEFAULT_PREFIX_CACHE_MB * 2**20, **kwargs
    ) -> None:
        self.prefix_cache = PrefixCache(prefix_cache_bytes) if prefix_cache_bytes > 0 else None
        super().__init__(**kwargs)  # starts the worker

    def _work(self) -> None:
        running: _Running | None = None
        while True:
            new = self._admit_waiting(running)
            if new is None:
                return
            if new:  # a failed prefill fails only the new requests
                prefilled = self._guarded(partial(self._prefill, new), new)
                if prefilled is not None:
                    jobs = (running.jobs if running else []) + prefilled.jobs
                    running = self._guarded(partial(self._merge, running, prefilled), jobs)
            if running is not None:
                running = self._guarded(partial(self._step, running), running.jobs)
            time.sleep(0)  # let the event loop thread take the GIL between steps

    def _guarded(self, work, jobs: list[_Job]) -> _Running | None:
        """Run work; on any error fail jobs (the ones it touched) and keep the worker alive."""
        try:
            with torch.inference_mode(), translate_oom("generating"):
                return work()
        except Exception as exc:
            if isinstance(exc, OutOfMemory) and self.prefix_cache:
                self.prefix_cache.clear()  # its memory goes back to the running requests
            self._fail_all(jobs, exc)
            return None

    def _admit_waiting(self, running: _Running | None) -> list[_Job] | None:
        """Jobs to add now (possibly none); blocks while idle; None once closed."""
        with self._cond:
            while not self._waiting and running is None and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            free = self.max_batch_size - (len(running.jobs) if running else 0)
            jobs = [self._waiting.popleft() for _ in range(min(free, len(self._waiting)))]
            self._set_waiting()
        return jobs

    def _prefill(self, jobs: list[_Job]) -> _Running:
        """One forward over the new prompts; a prompt's cached prefix (prefix_cache.py) goes
        into the batch's cache as it is and only the rest is computed. Row i's columns:
        [padding][its cached prefix][padding][the rest of its prompt]."""
        rows = [job.row for job in jobs]
        hits = [self._lookup(row.prompt_ids) for row in rows]
        reused = [hit.length if hit else 0 for hit in hits]
        past = max(reused)
        rests = [row.prompt_ids[n:] for row, n in zip(rows, reused, strict=True)]
        width = max(len(rest) for rest in rests)
        device = input_device(self.model)  # a model split over GPUs takes inputs at its embedding
        ids = torch.tensor([[self.pad_id] * (width - len(r)) + r for r in rests], device=device)
        mask = torch.tensor(
            [[0] * (past - n) + [1] * n + [0] * (width - len(r)) + [1] * len(r)
             for n, r in zip(reused, rests, strict=True)],
            device=device,
        )  # fmt: skip
        cache = growing_cache(self.model.config)
        if past:
            _seed_cache(cache, hits, past)
        self._count_prefix_tokens(rows, reused)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, past:]
        logits = self._forward(ids, mask, positions, cache)
        self._remember(rows, mask, cache)
        return _Running(jobs=jobs, cache=cache, mask=mask, tokens=self._sample(jobs, logits))

    def _count_prefix_tokens(self, rows: list[RowState], reused: list[int]) -> None:
        """vLLM's prefix-cache counters: prompt tokens looked up, and found."""
        if self.prefix_cache:
            queried = sum(len(row.prompt_ids) for row in rows)
            self.metrics.inc("prefix_cache_queries_total", queried, "Prompt tokens looked up")
            self.metrics.inc("prefix_cache_hits_total", sum(reused), "Prompt tokens found cached")

    def _lookup(self, ids: list[int]) -> PrefixHit | None:
        return self.prefix_cache.lookup(ids) if self.prefix_cache else None

    def _remember(self, rows: list[RowState], mask: torch.Tensor, cache) -> None:
        """Copy each new prompt's states into the prefix cache (its unmasked columns)."""
        if not self.prefix_cache:
            return
        for index, row in enumerate(rows):
            if len(row.prompt_ids) < BLOCK or self.prefix_cache.covers(row.prompt_ids):
                continue
            columns = mask[index].nonzero()[:, 0]
            states = []
            for layer in cache.layers:
                at = columns.to(layer.keys.device)
                states.append((layer.keys[index][:, at], layer.values[index][:, at]))
            self.prefix_cache.add(row.prompt_ids, states)

    def _step(self, running: _Running) -> _Running | None:
        started = time.perf_counter()
        ones = torch.ones_like(running.mask[:, :1])
        mask = torch.cat([running.mask, ones], dim=1)
        positions = mask.sum(-1, keepdim=True) - 1
        logits = self._forward(running.tokens[:, None], mask, positions, running.cache)
        running.mask = mask
        running.tokens = self._sample(running.jobs, logits)
        self.metrics.observe(
            "batch_size", len(running.jobs), BATCH_BUCKETS, "Rows per decoding step"
        )
        self.metrics.set("num_requests_running", len(running.jobs), "Requests being decoded")
        self._record_step(len(running.jobs), time.perf_counter() - started)
        return self._retire(running)

    def _forward(self, ids, mask, positions, cache) -> torch.Tensor:
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        return out.logits[:, -1, :].float()

    def _sample(self, jobs: list[_Job], logits: torch.Tensor) -> torch.Tensor:
        """Each row's next token (pushed to the row), as a tensor to feed the next step."""
        chosen = logits.argmax(dim=-1).tolist()
        rows = [job.row for job in jobs]
        for index, token in choose_tokens(rows, logits, [row.history for row in rows]).items():
            chosen[index] = token
        for row, token in zip(rows, chosen, strict=True):
            row.push(token)
        wake_streams([job.stream for job in jobs])
        return torch.tensor(chosen, device=input_device(self.model))  # fed back as input ids

    def _retire(self, running: _Running) -> _Running | None:
        """Deliver finished rows; shrink the batch (and trim shared padding) to the rest."""
        keep = [i for i, job in enumerate(running.jobs) if not job.row.finished]
        for i, job in enumerate(running.jobs):
            if i not in keep:
                self._deliver(job)
        if not keep:
            self.metrics.set("num_requests_running", 0, "Requests being decoded")
            return None
        if len(keep) < len(running.jobs):
            index = torch.tensor(keep, device=running.mask.device)
            select_cache_rows(running.cache, keep)
            running.jobs = [running.jobs[i] for i in keep]
            running.mask, running.tokens = running.mask[index], running.tokens[index]
            self._trim_padding(running)
        return running

    def _merge(self, running: _Running | None, joining: _Running) -> _Running | None:
        new = self._retire(joining)  # e.g. max_tokens=1: done after prefill
        if running is None or new is None:
            return running or new
        width = max(running.mask.shape[1], new.mask.shape[1])
        for old_layer, new_layer in zip(running.cache.layers, new.cache.layers, strict=True):
            old_layer.keys = torch.cat(
                [_pad_left(old_layer.keys, width), _pad_left(new_layer.keys, width)]
            )
            old_layer.values = torch.cat(
                [_pad_left(old_layer.values, width), _pad_left(new_layer.values, width)]
            )
        running.mask = torch.cat([_pad_mask(running.mask, width), _pad_mask(new.mask, width)])
        running.tokens = torch.cat([running.tokens, new.tokens])
        running.jobs = running.jobs + new.jobs
        return running

    def _trim_padding(self, running: _Running) -> None:
        """Drop leading cache columns that every remaining row masks out."""
        used = running.mask.any(dim=0).nonzero()
        first = int(used[0]) if used.numel() else 0
        if first > 0:
            running.mask = running.mask[:, first:]
            for layer in running.cache.layers:
                layer.keys, layer.values = layer.keys[:, :, first:], layer.values[:, :, first:]

    def _record_step(self, rows: int, seconds: float) -> None:
        if seconds > 0:
            self.metrics.set("generation_tokens_per_second", rows / seconds, "Last step speed")

    def _fail_all(self, jobs: list[_Job], exc: Exception) -> None:
        if not isinstance(exc, RuntimeServeError):
            exc = internal_error(exc, "Generation failed")
        self._fail(jobs, exc)
        self.metrics.set("num_requests_running", 0, "Requests being decoded")


class GrowingLayer(DynamicLayer):
    """A DynamicLayer whose keys and values are views of buffers with room to grow: `update`
    writes the new columns in place. Code that replaces `keys`/`values` (merging batches,
    dropping rows, trimming padding) needs no care: the next update sees that they are no longer
    the views it made and copies them into fresh buffers (with room again)."""

    keys: torch.Tensor  # DynamicLayer's, set by lazy_initialization
    values: torch.Tensor
    _key_store: torch.Tensor | None = None
    _value_store: torch.Tensor | None = None
    _views: tuple[torch.Tensor, torch.Tensor] | None = None

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        length = self.get_seq_length()
        end = length + key_states.shape[-2]
        if not self._has_room(end):
            self._key_store = _buffer(self.keys, key_states, length, end)
            self._value_store = _buffer(self.values, value_states, length, end)
        assert self._key_store is not None and self._value_store is not None
        self._key_store[:, :, length:end] = key_states
        self._value_store[:, :, length:end] = value_states
        self.keys, self.values = self._key_store[:, :, :end], self._value_store[:, :, :end]
        self._views = (self.keys, self.values)
        return self.keys, self.values

    def _has_room(self, end: int) -> bool:
        """True while keys/values are still this layer's own views and the buffers hold ``end``
        columns (identity, not `_base`: views made under inference_mode do not record it)."""
        views = self._views
        return (
            views is not None
            and views[0] is self.keys
            and views[1] is self.values
            and self._key_store is not None
            and self._key_store.shape[2] >= end
        )


def _buffer(old: torch.Tensor, new: torch.Tensor, length: int, end: int) -> torch.Tensor:
    """A buffer for ``end`` columns and room for a quarter as many again (at least 64), holding
    ``old``'s ``length`` columns: growing copies the cache once per 1.25x of length (where
    `torch.cat` copied it every step) for at most a quarter more memory."""
    room = end + max(64, end // 4)
    store = new.new_empty((*new.shape[:2], room, new.shape[3]))
    if length:
        store[:, :, :length] = old
    return store


def growing_cache(config):
    """A DynamicCache for ``config`` whose full-attention layers are GrowingLayers."""
    from transformers import DynamicCache

    cache = DynamicCache(config=config)
    cache.layers = [GrowingLayer() for _ in cache.layers]
    return cache


def _seed_cache(cache, hits: list[PrefixHit | None], past: int) -> None:
    """Fill each (empty) cache layer with the rows' cached prefixes, right-aligned to ``past``
    columns (rows without one get zeros, masked out)."""
    first = next(hit for hit in hits if hit)
    for number, layer in enumerate(cache.layers):
        model_keys, model_values = first.layers[number]
        heads, _, dim = model_keys.shape
        keys = model_keys.new_zeros((len(hits), heads, past, dim))
        values = model_values.new_zeros((len(hits), heads, past, dim))
        for row, hit in enumerate(hits):
            if hit:
                start = past - hit.length
                keys[row, :, start:], values[row, :, start:] = hit.layers[number]
        layer.update(keys, values)


def select_cache_rows(cache, rows: list[int]) -> None:
    """Keep ``rows`` of every cache layer, indexing each layer on its own device (a model split
    over GPUs keeps its layers' caches where the layers are)."""
    for layer in cache.layers:
        if layer.keys is None or layer.keys.numel() == 0:
            continue
        index = torch.tensor(rows, device=layer.keys.device)
        layer.keys, layer.values = layer.keys[index], layer.values[index]


def _pad_left(states: torch.Tensor, width: int) -> torch.Tensor:
    """[rows, heads, length, dim] -> [rows, heads, width, dim] with zeros on the left."""
    return F.pad(states, (0, 0, width - states.shape[2], 0))


def _pad_mask(mask: torch.Tensor, width: int) -> torch.Tensor:
    return F.pad(mask, (width - mask.shape[1], 0))
