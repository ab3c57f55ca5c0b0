"""LoRA/QLoRA/MoE fine-tuning of an installed model with automatic parameters and auto-learning.

Entry point: `llm_runtime.training.cli:main(argv)`; the work is TRL's SFTTrainer plus callbacks.
"""
