"""config.json keys of a mixture-of-experts' shape, in the spellings model families use (host and runtime)."""

EXPERT_COUNT_KEYS = (
    "num_local_experts",
    "num_experts",
    "n_routed_experts",
    "moe_num_experts",
    "num_routed_experts",
)
EXPERTS_PER_TOKEN_KEYS = (
    "num_experts_per_tok",
    "experts_per_token",
    "num_experts_per_token",
    "moe_top_k",
    "top_k_experts",
    "moe_k",
)
EXPERT_SIZE_KEYS = ("moe_intermediate_size", "expert_intermediate_size")
