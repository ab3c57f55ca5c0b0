"""Mixture-of-Experts adapters (seed 003): LoRA on the expert weights, optional router training,
per-expert load from router hooks, and a check that the saved adapter holds every expert.

Fused experts (one 3-D parameter per projection, e.g. transformers 5 Mixtral/Qwen-MoE/Llama 4)
are targeted with PEFT `target_parameters`; per-expert `nn.Linear` modules with `target_modules`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from llm_runtime.moe_keys import EXPERT_COUNT_KEYS
from llm_runtime.training.errors import TrainingError

TOPK_KEYS = ("num_experts_per_tok", "moe_topk", "top_k")
ROUTER_NAMES = ("gate", "router")
OUTPUT_NAMES = ("lm_head", "embed_out", "output")
LAYER_INDEX = re.compile(r"\.\d+\.")


class AdapterSizeMismatch(TrainingError):
    title = "The saved adapter does not match its configuration"
    hint = (
        "Some targeted weights were not saved; the adapter would silently leave experts untrained.\n"
        "lora/ was left as it was; the checkpoints of this run are in checkpoints/."
    )


@dataclass(frozen=True)
class MoeTargets:
    """Where LoRA goes in an MoE model, as name suffixes PEFT matches."""

    linear_modules: tuple[str, ...]
    expert_parameters: tuple[str, ...]
    router_modules: tuple[str, ...]
    num_experts: int
    top_k: int


def config_value(config, keys, default=0):
    text = getattr(config, "text_config", None) or config
    return next((getattr(text, k) for k in keys if getattr(text, k, None)), default)


def find_targets(model) -> MoeTargets:
    """Scan the model: fused expert parameters, router modules, the other linear layers."""
    import torch

    experts = config_value(model.config, EXPERT_COUNT_KEYS)
    routers, fused, linears = set(), set(), set()
    for name, module in model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        weight = getattr(module, "weight", None)
        if leaf in ROUTER_NAMES and weight is not None and weight.shape[0] == experts:
            routers.add(_suffix(name))
        elif isinstance(module, torch.nn.Linear) and leaf not in OUTPUT_NAMES:
            linears.add(leaf)
        for pname, param in module.named_parameters(recurse=False):
            if param.dim() == 3 and param.shape[0] == experts:
                fused.add(f"{leaf}.{pname}")
    if not fused and not any(".experts." in n for n, _ in model.named_modules()):
        raise TrainingError("moe-lora found no expert weights in this model; use --method lora")
    return MoeTargets(
        tuple(sorted(linears)),
        tuple(sorted(fused)),
        tuple(sorted(routers)),
        experts,
        config_value(model.config, TOPK_KEYS, 2),
    )


def _suffix(name: str) -> str:
    """`model.layers.3.mlp.gate` → `mlp.gate` (what PEFT matches in every layer)."""
    return LAYER_INDEX.split(name)[-1]


def lora_config(targets: MoeTargets, *, r: int, alpha: int, dropout: float, train_router: bool):
    from peft import LoraConfig

    return LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=0.0 if targets.expert_parameters else dropout,  # PEFT's ParamWrapper needs 0
        target_modules=list(targets.linear_modules),
        target_parameters=list(targets.expert_parameters),
        modules_to_save=list(targets.router_modules) if train_router else None,
        task_type="CAUSAL_LM",
    )


def predicted_adapter_parameters(model, targets: MoeTargets, r: int, train_router: bool) -> int:
    """Adapter size the configuration implies: r·(in+out) per linear, per expert for fused ones."""
    import torch

    total = 0
    for name, module in model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if isinstance(module, torch.nn.Linear) and leaf in targets.linear_modules:
            total += r * (module.in_features + module.out_features)
        if train_router and _suffix(name) in targets.router_modules:
            total += sum(p.numel() for p in module.parameters())
        for pname, param in module.named_parameters(recurse=False):
            if f"{leaf}.{pname}" in targets.expert_parameters:
                experts, out_features, in_features = param.shape
                total += experts * r * (in_features + out_features)
    return total


def saved_adapter_parameters(folder: Path) -> int:
    from safetensors import safe_open

    total = 0
    for file in folder.glob("*.safetensors"):
        with safe_open(str(file), "pt") as handle:
            for key in handle.keys():  # noqa: SIM118 - safe_open has no __iter__
                shape = handle.get_slice(key).get_shape()
                count = 1
                for dim in shape:
                    count *= dim
                total += count
    return total


def check_adapter_size(folder: Path, expected: int) -> int:
    saved = saved_adapter_parameters(folder)
    if saved != expected:
        raise AdapterSizeMismatch(
            f"{folder}: {saved:,} parameters saved, {expected:,} expected from the LoRA configuration"
        )
    return saved


class ExpertLoadMonitor:
    """Counts how many tokens each router sends to each expert (forward hooks on the routers)."""

    def __init__(self, model, targets: MoeTargets):
        import torch

        self.targets = targets
        self.counts: dict[str, torch.Tensor] = {}
        self.handles = [
            module.register_forward_hook(self._hook(name))
            for name, module in model.named_modules()
            if _suffix(name) in targets.router_modules
            and "base_layer" not in name
            and not name.endswith(tuple(f".{n}" for n in ("modules_to_save", "original_module")))
        ]

    def _hook(self, name: str):
        import torch

        def record(module, inputs, output):
            with torch.no_grad():
                chosen = output[2] if isinstance(output, tuple) and len(output) == 3 else None
                if chosen is None:
                    logits = output[0] if isinstance(output, tuple) else output
                    chosen = logits.topk(self.targets.top_k, dim=-1).indices
                counts = torch.bincount(
                    chosen.reshape(-1).cpu(), minlength=self.targets.num_experts
                )
                self.counts[name] = self.counts.get(name, 0) + counts[: self.targets.num_experts]

        return record

    def shares(self) -> dict[str, list[float]]:
        """Per router, the fraction of routed tokens each expert received since the last call."""
        result = {}
        for name, counts in self.counts.items():
            total = float(counts.sum()) or 1.0
            result[_layer_label(name)] = [float(c) / total for c in counts]
        self.counts = {}
        return result

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


def _layer_label(name: str) -> str:
    found = re.search(r"\.(\d+)\.", name)
    return f"layer{found.group(1)}" if found else name
