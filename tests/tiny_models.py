"""Tiny random-weight models made on the spot (shared by runtime, docker and training tests).

Every model is a real transformers folder (save_pretrained) with a byte-level BPE tokenizer
trained here by the `tokenizers` library and a chat template (a thinking one for reasoning).
"""

from __future__ import annotations

from pathlib import Path

CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "a model answers questions about cats, dogs and birds",
    "hello world, this is a tiny language model for tests",
    "numbers like 1 2 3 4 5 6 7 8 9 10 and words like think and answer",
    "reasoning models think first and then they answer the question",
] * 20
PLAIN_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
THINKING_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n"
    "{% else %}<think>\n{% endif %}{% endif %}"
)
CONTEXT = 2048


def train_tokenizer(*, thinking: bool):
    """A byte-level BPE tokenizer trained on CORPUS, with a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<unk>", "<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
    )
    if thinking:
        fast.add_tokens(["<think>", "</think>"])
    fast.chat_template = THINKING_TEMPLATE if thinking else PLAIN_TEMPLATE
    return fast


def save_causal_lm(path: Path, config, tokenizer, seed: int) -> Path:
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    with torch.no_grad():  # random weights almost never pick EOS; make it never
        model.get_output_embeddings().weight[tokenizer.eos_token_id].fill_(-1.0e-4)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def llama_config(tokenizer, **overrides):
    from transformers import LlamaConfig

    values = dict(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=CONTEXT,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        architectures=["LlamaForCausalLM"],
    )
    return LlamaConfig(**{**values, **overrides})


def make_tiny_llama(path: Path, *, thinking: bool = False, seed: int = 0) -> Path:
    """A tiny LlamaForCausalLM with a chat template (and <think> tokens when ``thinking``)."""
    tokenizer = train_tokenizer(thinking=thinking)
    return save_causal_lm(path, llama_config(tokenizer), tokenizer, seed=seed)


# A Hermes/Qwen-style template that renders `tools`, assistant `tool_calls` and `tool` turns.
TOOLS_TEMPLATE = (
    "{{ bos_token }}{% if tools %}<|system|>Tools:{% for t in tools %}\n{{ t | tojson }}"
    '{% endfor %}\nCall one as <tool_call>{"name": ..., "arguments": ...}</tool_call>\n'
    "{% endif %}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] or '' }}"
    "{% if m['tool_calls'] is defined %}{% for c in m['tool_calls'] %}"
    "<tool_call>{{ c['function'] | tojson }}</tool_call>{% endfor %}{% endif %}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def make_tiny_tool_llama(path: Path, *, seed: int = 5) -> Path:
    """A tiny LlamaForCausalLM whose chat template supports tools (apply_chat_template(tools=))."""
    tokenizer = train_tokenizer(thinking=False)
    tokenizer.chat_template = TOOLS_TEMPLATE
    return save_causal_lm(path, llama_config(tokenizer), tokenizer, seed=seed)
