"""llm-installer: check, install, serve and fine-tune Hugging Face models in Docker."""

__version__ = "0.1.0"
