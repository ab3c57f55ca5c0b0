"""A ModelSource read from a model folder on this machine (no Hub, no weights read)."""

from __future__ import annotations

import os
from pathlib import Path

from llm_installer.configs import collect_configs
from llm_installer.errors import ModelNotFoundError
from llm_installer.source import ModelSource, RepoFile

SKIPPED_FOLDERS = frozenset({".git", ".cache", "__pycache__"})


def load_local_source(path: str | os.PathLike[str]) -> ModelSource:
    """Inventory a local model folder and read its configuration files."""
    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        raise ModelNotFoundError(f"No model folder at {root}")
    files = tuple(walk_files(root))
    configs, texts = collect_configs(files, lambda relative: read_text(root / relative))
    return ModelSource(
        model_id=root.name,
        files=files,
        configs=configs,
        texts=texts,
        is_local=True,
        local_path=str(root),
    )


def walk_files(root: Path) -> list[RepoFile]:
    """Every file under ``root`` with its size (symlinks followed), sorted by path, .git skipped."""
    found = []
    for folder, subfolders, names in os.walk(root, followlinks=True):
        subfolders[:] = sorted(d for d in subfolders if d not in SKIPPED_FOLDERS)
        for name in names:
            full = Path(folder, name)
            if full.is_file():
                found.append(RepoFile(full.relative_to(root).as_posix(), full.stat().st_size))
    return sorted(found, key=lambda f: f.path)


def read_text(path: Path) -> str:
    """A small text file's content; undecodable bytes are replaced so JSON errors name the spot."""
    return path.read_bytes().decode("utf-8", errors="replace")
