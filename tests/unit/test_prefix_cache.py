"""The prefix cache's bookkeeping: longest match by blocks then tokens, the last token always
left to compute, a byte budget with least-recently-used eviction, shared blocks kept findable."""

from __future__ import annotations

import torch

from llm_runtime.prefix_cache import BLOCK, PrefixCache


def states(ids: list[int], layers: int = 2) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer [heads=1, len, dim=2] whose values are the token ids (easy to check slices)."""
    column = torch.tensor(ids, dtype=torch.float32)[None, :, None].expand(1, len(ids), 2)
    return [(column.clone() + layer, -column.clone()) for layer in range(layers)]


def nbytes(count: int, layers: int = 2) -> int:
    return 2 * layers * count * 2 * 4


def test_a_repeated_prompt_reuses_all_but_its_last_token():
    cache = PrefixCache(max_bytes=10**6)
    prompt = list(range(100, 140))
    assert cache.lookup(prompt) is None
    cache.add(prompt, states(prompt))
    hit = cache.lookup(prompt)
    assert hit is not None and hit.length == 39
    assert hit.layers[1][0][0, :, 0].tolist() == [t + 1.0 for t in prompt[:39]]
    assert hit.layers[0][1].shape == (1, 39, 2)


def test_the_longest_shared_prefix_is_found_past_the_last_full_block():
    cache = PrefixCache(max_bytes=10**6)
    system = list(range(1, 2 * BLOCK + 5))  # 37 tokens: two blocks and 5 more
    cache.add(system + [500, 501], states(system + [500, 501]))
    cache.add(system[:BLOCK] + [900] * 20, states(system[:BLOCK] + [900] * 20))
    hit = cache.lookup(system + [700, 701, 702])
    assert hit is not None and hit.length == len(system)
    assert hit.layers[0][0][0, :, 0].tolist() == [float(t) for t in system]
    assert cache.lookup([5] + system) is None  # differs in the first block
    assert cache.lookup(system[:10]) is None  # shorter than a block: nothing to reuse


def test_the_byte_budget_evicts_the_least_recently_used_prompt():
    first, second, third = ([n] * 20 for n in (1, 2, 3))
    cache = PrefixCache(max_bytes=nbytes(40))  # room for two 20-token prompts
    cache.add(first, states(first))
    cache.add(second, states(second))
    assert cache.lookup(first) is not None  # first is now the most recently used
    cache.add(third, states(third))
    assert cache.lookup(second) is None and cache.lookup(first) and cache.lookup(third)
    assert cache.bytes == nbytes(40)
    cache.add([4] * 60, states([4] * 60))  # larger than the budget: not kept
    assert cache.lookup([4] * 60) is None and cache.bytes == nbytes(40)
    cache.clear()  # what the engine does on running out of memory
    assert cache.lookup(first) is None and cache.bytes == 0 and not cache.index


def test_a_block_two_prompts_share_stays_findable_when_one_is_evicted():
    shared = list(range(BLOCK))
    older, newer = shared + [1] * 8, shared + [2] * 8
    cache = PrefixCache(max_bytes=nbytes(len(older) + len(newer)))
    cache.add(older, states(older))
    cache.add(newer, states(newer))
    cache.lookup(older)  # the newer prompt becomes the least recently used
    cache.add([7] * 20, states([7] * 20))  # evicts `newer`, whose block the index pointed at
    assert not cache.covers(newer)
    hit = cache.lookup(shared + [3] * 4)
    assert hit is not None and hit.length == BLOCK


def test_prompts_that_tie_on_length_do_not_need_ordering():
    shared = list(range(BLOCK))
    cache = PrefixCache(max_bytes=10**6)
    for tail in (1, 2):
        cache.add(shared + [tail] * 4, states(shared + [tail] * 4))
    hit = cache.lookup(shared + [3] * 4)  # both holders stop at the block's end
    assert hit is not None and hit.length == BLOCK
