"""llm_runtime: the in-image model server and trainer. Imports nothing from llm_installer."""

__version__ = "0.1.0"
