"""Continuous batching: requests join the running batch at the next decoding step.

The worker keeps one batch alive: each loop it prefills newly arrived requests (left-padded
among themselves), merges their KV cache into the running one (left-padding the shorter),
runs one decoding step for every row, and retires the rows that finished. A row therefore
never waits for a whole batch to end, and the model never waits for stragglers.

This works on transformers' DynamicCache made of plain DynamicLayer entries (full attention:
Llama, Mistral without a window, Qwen, Mixtral...). Other caches (sliding windows, hybrid or
state-space models) use the `generate`-per-batch engine of batching.py instead.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F

from llm_runtime.batching import BatchEngine, _Job, wake_streams
from llm_runtime.decoding import choose_tokens
from llm_runtime.errors import RuntimeServeError, internal_error
from llm_runtime.loading import input_device, translate_oom
from llm_runtime.metrics import BATCH_BUCKETS

log = logging.getLogger("llm_runtime")


def supports_step_batching(model) -> bool:
    """True when model's KV cache is a DynamicCache of plain full-attention layers."""
    try:
        from transformers import DynamicCache
        from transformers.cache_utils import DynamicLayer

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
    """A BatchEngine whose batch admits new requests between decoding steps."""

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
        from transformers import DynamicCache

        rows = [job.row for job in jobs]
        width = max(len(row.prompt_ids) for row in rows)
        device = input_device(self.model)  # a model split over GPUs takes inputs at its embedding
        ids = torch.tensor(
            [[self.pad_id] * (width - len(r.prompt_ids)) + r.prompt_ids for r in rows],
            device=device,
        )
        mask = torch.tensor(
            [[0] * (width - len(r.prompt_ids)) + [1] * len(r.prompt_ids) for r in rows],
            device=device,
        )
        cache = DynamicCache(config=self.model.config)
        logits = self._forward(ids, mask, (mask.cumsum(-1) - 1).clamp(min=0), cache)
        return _Running(jobs=jobs, cache=cache, mask=mask, tokens=self._sample(jobs, logits))

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
