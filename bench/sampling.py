"""Cost of choosing the next tokens of a batch: the runtime's batched sampler (decoding.draw and
penalize) against the per-row sampler it replaced (kept below as the baseline), same logits, same
settings (temperature 0.8, top-p 0.9, top-k 50, repetition penalty 1.1), in one run.

    python bench/sampling.py [--device cuda|cpu] [--vocab 32000 128256] [--rows 1 16 64]

Prints milliseconds per decoding step for each and the speed-up (baseline / batched).
"""

from __future__ import annotations

import argparse
import time

import torch

from llm_runtime.decoding import draw, penalize
from llm_runtime.values import SamplingParams

SETTINGS = SamplingParams(temperature=0.8, top_p=0.9, top_k=50, repetition_penalty=1.1, seed=0)
HISTORY = 600  # prompt + generated tokens per row


def per_row_baseline(logits, histories, generators) -> list[int]:
    """The sampler before the batched one: each row filtered, softmaxed, copied and drawn alone."""
    tokens = []
    for row, history, generator in zip(logits, histories, generators, strict=True):
        row = row.clone()
        history = history.to(row.device)
        seen = row.gather(0, history)
        seen = torch.where(
            seen > 0, seen / SETTINGS.repetition_penalty, seen * SETTINGS.repetition_penalty
        )
        row = row.scatter(0, history, seen) / SETTINGS.temperature
        kth = torch.topk(row, SETTINGS.top_k).values[-1]
        row = row.masked_fill(row < kth, float("-inf"))
        ranked, order = torch.sort(row, descending=True)
        cumulative = torch.softmax(ranked, dim=-1).cumsum(dim=-1)
        drop = cumulative - torch.softmax(ranked, dim=-1) >= SETTINGS.top_p
        row = row.masked_fill(torch.zeros_like(drop).scatter(0, order, drop), float("-inf"))
        probs = torch.softmax(row, dim=-1)
        tokens.append(int(torch.multinomial(probs.cpu(), 1, generator=generator)))
    return tokens


def batched(logits, histories, generators) -> list[int]:
    rows = logits.shape[0]
    penalized = penalize(logits, histories, [SETTINGS.repetition_penalty] * rows)
    return draw(penalized, [SETTINGS] * rows, generators).tolist()


def timed(fn, logits, histories, device: str, repeats: int) -> float:
    generators = [torch.Generator().manual_seed(i) for i in range(logits.shape[0])]
    fn(logits, histories, generators)  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(repeats):
        fn(logits, histories, generators)
    if device == "cuda":
        torch.cuda.synchronize()
    return 1000 * (time.perf_counter() - started) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--vocab", type=int, nargs="+", default=[32000, 128256])
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    print(f"device {args.device}, torch {torch.__version__}; ms per decoding step")
    print(f"{'vocab':>7} {'rows':>5} {'per-row (before)':>17} {'batched':>9} {'speed-up':>9}")
    for vocab in args.vocab:
        for rows in args.rows:
            generator = torch.Generator().manual_seed(vocab + rows)
            logits = torch.randn(rows, vocab, generator=generator).to(args.device)
            histories = [
                torch.randint(0, vocab, (HISTORY,), generator=generator) for _ in range(rows)
            ]
            before = timed(per_row_baseline, logits, histories, args.device, args.repeats)
            after = timed(batched, logits, histories, args.device, args.repeats)
            print(f"{vocab:>7} {rows:>5} {before:>17.2f} {after:>9.2f} {before / after:>8.1f}x")


if __name__ == "__main__":
    main()
