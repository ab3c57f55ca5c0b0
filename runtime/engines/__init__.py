"""Engines besides transformers that run a family inside the image (vLLM for text generation)."""
