"""The batched sampler (runtime/decoding.py draw, penalize): the distribution each row's settings
ask for, reproducible per seed at any batch size, with top-k / top-p cuts that hold."""

import math

import pytest
import torch

from llm_runtime.decoding import draw, penalize
from llm_runtime.values import SamplingParams


def generators(*seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


def test_greedy_rows_take_the_argmax_and_tight_cuts_act_as_greedy():
    logits = torch.randn(4, 50, generator=torch.Generator().manual_seed(0))
    params = [
        SamplingParams(temperature=0.0),
        SamplingParams(temperature=1.5, top_k=1),
        SamplingParams(temperature=1.5, top_p=1e-6),
        SamplingParams(temperature=0.0, top_k=5),
    ]
    for seed in range(20):
        tokens = draw(logits, params, generators(seed, seed, seed, seed))
        assert tokens.tolist() == logits.argmax(dim=-1).tolist()


def test_a_seed_repeats_its_token_whatever_the_batch_around_it():
    logits = torch.randn(6, 200, generator=torch.Generator().manual_seed(1))
    params = [SamplingParams(temperature=1.0, top_p=0.9, top_k=40)] * 6
    batch = draw(logits, params, generators(*range(6)))
    alone = [int(draw(logits[i : i + 1], params[:1], generators(i))[0]) for i in range(6)]
    assert batch.tolist() == alone
    again = draw(logits, params, generators(*range(6)))
    assert again.tolist() == batch.tolist()


def test_sampled_frequencies_follow_the_tempered_softmax():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0, -3.0]])
    temperature = 0.7
    expected = torch.softmax(logits[0] / temperature, dim=-1)
    counts = torch.zeros(5)
    trials = 4000
    params = [SamplingParams(temperature=temperature)] * trials
    tokens = draw(logits.expand(trials, -1), params, generators(*range(trials)))
    counts += torch.bincount(tokens, minlength=5)
    for token in range(5):
        p = float(expected[token])
        spread = 4 * math.sqrt(p * (1 - p) / trials) + 1e-3
        assert abs(counts[token] / trials - p) <= spread, (token, counts.tolist(), expected)


@pytest.mark.parametrize(
    "params",
    [
        # a row without a top-k: the whole vocabulary is ranked
        [
            SamplingParams(temperature=2.0, top_k=3),
            SamplingParams(temperature=2.0, top_p=0.5),
            SamplingParams(temperature=2.0, top_k=10, top_p=0.3),
        ],
        # every row cut to a top-k: only the widest cut is ranked
        [
            SamplingParams(temperature=2.0, top_k=3),
            SamplingParams(temperature=2.0, top_k=20, top_p=0.5),
            SamplingParams(temperature=2.0, top_k=10, top_p=0.3),
        ],
    ],
)
def test_top_k_and_top_p_never_let_a_cut_token_through(params):
    generator = torch.Generator().manual_seed(2)
    logits = torch.randn(3, 100, generator=generator) * 3
    allowed = []
    for row, p in zip(logits, params, strict=True):
        scaled = row / p.temperature
        order = torch.argsort(scaled, descending=True)
        keep = order[: p.top_k] if p.top_k else order
        probs = torch.softmax(scaled[keep], dim=-1)
        head = int((probs.cumsum(0) - probs < p.top_p).sum())
        allowed.append(set(keep[:head].tolist()))
    seen: list[set[int]] = [set(), set(), set()]
    for seed in range(300):
        tokens = draw(logits, params, generators(seed, seed + 1000, seed + 2000)).tolist()
        for i, token in enumerate(tokens):
            assert token in allowed[i], (i, token, allowed[i])
            seen[i].add(token)
    assert all(len(s) > 1 for s in seen[:2])  # sampling, not a disguised argmax


def test_repetition_penalty_acts_per_row_on_its_own_history():
    logits = torch.tensor([[2.0, -2.0, 1.0, 0.5], [2.0, -2.0, 1.0, 0.5]])
    histories = [torch.tensor([0, 1, 1]), torch.tensor([2])]
    out = penalize(logits, histories, [2.0, 1.0])
    assert out[0].tolist() == [1.0, -4.0, 1.0, 0.5]  # seen: positive halved, negative doubled
    assert out[1].tolist() == logits[1].tolist()  # penalty 1.0: untouched
    assert logits[0].tolist() == [2.0, -2.0, 1.0, 0.5]  # the input is not modified
