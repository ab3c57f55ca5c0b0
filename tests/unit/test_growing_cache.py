"""The continuous batch's KV cache layer: updates write in place into buffers with room, and
whatever the batch does to keys/values between steps (drop rows, trim padding, merge) gives the
same states as transformers' DynamicLayer; a model decodes the same tokens with either."""

from __future__ import annotations

import torch
from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM
from transformers.cache_utils import DynamicLayer

from llm_runtime.continuous import GrowingLayer, growing_cache, select_cache_rows


def states(rows: int, length: int, seed: int) -> torch.Tensor:
    return torch.randn(rows, 2, length, 8, generator=torch.Generator().manual_seed(seed))


def both(update) -> tuple[GrowingLayer, DynamicLayer]:
    growing, plain = GrowingLayer(), DynamicLayer()
    for layer in (growing, plain):
        update(layer)
    return growing, plain


def assert_same(growing: GrowingLayer, plain: DynamicLayer) -> None:
    assert torch.equal(growing.keys, plain.keys) and torch.equal(growing.values, plain.values)


def test_decoding_steps_write_in_place_until_the_room_is_used():
    growing, plain = both(lambda layer: layer.update(states(3, 5, 0), states(3, 5, 1)))
    buffer = growing._key_store
    assert buffer is not None and buffer.shape[2] == 5 + 64
    pointers = set()
    for step in range(64):
        for layer in (growing, plain):
            layer.update(states(3, 1, 10 + step), states(3, 1, 500 + step))
        assert_same(growing, plain)
        pointers.add(growing.keys.data_ptr())
    assert growing._key_store is buffer and pointers == {buffer.data_ptr()}  # no copy
    growing.update(states(3, 1, 7), states(3, 1, 8))  # 70 columns: a bigger buffer
    assert growing._key_store is not buffer and growing._key_store.shape[2] == 70 + 64
    plain.update(states(3, 1, 7), states(3, 1, 8))
    assert_same(growing, plain)


def test_rows_dropped_padding_trimmed_and_batches_merged_between_steps():
    cache, reference = DynamicCache(), DynamicCache()
    cache.layers, reference.layers = [GrowingLayer()], [DynamicLayer()]
    for target in (cache, reference):
        target.update(states(4, 6, 0), states(4, 6, 1), 0)
        target.update(states(4, 1, 2), states(4, 1, 3), 0)
        select_cache_rows(target, [0, 3])  # two rows finished
        layer = target.layers[0]
        layer.keys, layer.values = layer.keys[:, :, 2:], layer.values[:, :, 2:]  # trimmed
        target.update(states(2, 1, 4), states(2, 1, 5), 0)
        layer.keys = torch.cat([layer.keys, states(1, 6, 6)])  # a request joined
        layer.values = torch.cat([layer.values, states(1, 6, 7)])
        target.update(states(3, 1, 8), states(3, 1, 9), 0)
    assert cache.layers[0].keys.shape == (3, 2, 7, 8)
    assert_same(cache.layers[0], reference.layers[0])


def test_a_model_decodes_the_same_tokens_with_either_cache():
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2)  # fmt: skip
    model = LlamaForCausalLM(config).eval()
    ids = torch.tensor([[0, 0, 5, 6, 7], [1, 2, 3, 4, 5]])  # the first row left-padded
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])

    def decode(cache) -> list[list[int]]:
        tokens, step_mask, out = ids, mask, []
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            for _ in range(12):
                logits = model(input_ids=tokens, attention_mask=step_mask, position_ids=positions,
                               past_key_values=cache, use_cache=True).logits  # fmt: skip
                tokens = logits[:, -1].argmax(-1, keepdim=True)
                out.append(tokens[:, 0].tolist())
                step_mask = torch.cat([step_mask, torch.ones_like(tokens)], dim=1)
                positions = step_mask.sum(-1, keepdim=True) - 1
        return out

    cache = growing_cache(config)
    assert all(type(layer) is GrowingLayer for layer in cache.layers)
    assert decode(cache) == decode(DynamicCache(config=config))
