"""A ModelSource read from a model folder on this machine (no Hub, no weights read)."""

from __future__ import annotations

import os
from pathlib import Path

from llm_installer.check.config_files import collect_configs
from llm_installer.check.source import ModelSource, RepoFile
from llm_installer.errors import LocalFolderError, ModelNotFoundError

SKIPPED_FOLDERS = frozenset({".git", ".cache", "__pycache__"})
MAX_FILES = 100_000
MAX_DEPTH = 32


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
    """Every file under ``root`` with its size, sorted by path, .git skipped.

    Links to files are followed (a Hub cache snapshot is made of them); links to folders only
    when they stay inside ``root`` and lead somewhere not yet walked, so a loop (``ln -s . a``)
    or a link out of the folder is never walked. More than MAX_FILES files, or folders nested
    deeper than MAX_DEPTH, are refused: that is not a model folder.
    """
    found: list[RepoFile] = []
    seen = {root}
    pending = [(root, Path())]
    while pending:
        folder, relative = pending.pop()
        for entry in _entries(folder):
            if entry.name in SKIPPED_FOLDERS:
                continue
            real = _inside(root, Path(entry.path))
            if real is None:
                continue
            if real.is_dir():
                if real not in seen:
                    seen.add(real)
                    _require_shallow(root, relative / entry.name)
                    pending.append((real, relative / entry.name))
            elif real.is_file():
                found.append(RepoFile((relative / entry.name).as_posix(), real.stat().st_size))
                _require_few(root, found)
    return sorted(found, key=lambda f: f.path)


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as entries:
            return list(entries)
    except OSError:  # unreadable: check reports what it could read; install mounts it as it is
        return []


def _inside(root: Path, path: Path) -> Path | None:
    """Where ``path`` leads: itself, a link's target inside ``root``, or a linked file anywhere."""
    try:
        if not path.is_symlink():
            return path
        target = path.resolve(strict=True)
    except (OSError, RuntimeError):  # a broken link or a link loop
        return None
    if target.is_dir() and not target.is_relative_to(root):
        return None  # never walk out of the folder
    return target


def _require_shallow(root: Path, relative: Path) -> None:
    if len(relative.parts) > MAX_DEPTH:
        raise LocalFolderError(
            f"{root} nests folders deeper than {MAX_DEPTH} levels ({relative.as_posix()[:200]}…)",
        )


def _require_few(root: Path, found: list[RepoFile]) -> None:
    if len(found) > MAX_FILES:
        raise LocalFolderError(f"{root} holds more than {MAX_FILES:,} files")


def read_text(path: Path) -> str:
    """A small text file's content; undecodable bytes are replaced so JSON errors name the spot."""
    try:
        return path.read_bytes().decode("utf-8", errors="replace")
    except OSError as exc:
        raise LocalFolderError(f"Cannot read {path}: {exc.strerror or exc}") from exc


def unreadable_by_others(root: Path) -> list[Path]:
    """Files others cannot read and folders others cannot enter, under ``root`` (links not
    followed): the container's user is not the folder's owner."""
    import stat

    found = []
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = [d for d in subfolders if d not in SKIPPED_FOLDERS]
        for name in [*subfolders, *names]:
            path = Path(folder, name)
            try:
                mode = path.lstat().st_mode
            except OSError:
                continue
            needed = stat.S_IROTH | stat.S_IXOTH if stat.S_ISDIR(mode) else stat.S_IROTH
            if (stat.S_ISDIR(mode) or stat.S_ISREG(mode)) and mode & needed != needed:
                found.append(path)
    return found


def make_readable(paths: list[Path]) -> None:
    """chmod a+r (and a+x on folders): what ``chmod -R a+rX`` does to these paths."""
    import stat

    for path in paths:
        mode = path.lstat().st_mode
        extra = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
        if stat.S_ISDIR(mode):
            extra |= stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH
        path.chmod(stat.S_IMODE(mode) | extra)
