"""A Mixtral whose experts are separate nn.Linear modules, as in transformers 4 and in many
remote-code MoE models (transformers 5 fuses every built-in MoE into 3-D parameters).

Registered with the Auto classes under its own model_type, so the in-process trainer loads it
through AutoModelForCausalLM like any other folder.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, MixtralConfig, MixtralForCausalLM
from transformers.activations import ACT2FN


class PerExpertMixtralConfig(MixtralConfig):
    model_type = "per_expert_mixtral"


class ExpertMLP(nn.Module):
    """transformers 4's MixtralBlockSparseTop2MLP: w2(act(w1 x) * w3 x)."""

    def __init__(self, config: MixtralConfig):
        super().__init__()
        self.w1 = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.w2 = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)
        self.w3 = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.act_fn = ACT2FN[config.hidden_act]

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.w2(self.act_fn(self.w1(hidden_states)) * self.w3(hidden_states))


class PerExpertExperts(nn.ModuleList):
    """Same call as transformers 5's fused MixtralExperts, one module per expert."""

    def __init__(self, config: MixtralConfig):
        super().__init__(ExpertMLP(config) for _ in range(config.num_local_experts))

    def forward(self, hidden_states, top_k_index, top_k_weights):
        output = torch.zeros_like(hidden_states)
        for index, expert in enumerate(self):
            token, slot = torch.where(top_k_index == index)
            if token.numel():
                weight = top_k_weights[token, slot, None]
                output.index_add_(0, token, expert(hidden_states[token]) * weight)
        return output


class PerExpertMixtralForCausalLM(MixtralForCausalLM):
    config_class = PerExpertMixtralConfig

    def __init__(self, config):
        super().__init__(config)
        for layer in self.model.layers:
            layer.mlp.experts = PerExpertExperts(config)
        self.post_init()


def register() -> None:
    try:
        AutoConfig.register(PerExpertMixtralConfig.model_type, PerExpertMixtralConfig)
        AutoModelForCausalLM.register(PerExpertMixtralConfig, PerExpertMixtralForCausalLM)
    except ValueError:  # already registered in this session
        pass
