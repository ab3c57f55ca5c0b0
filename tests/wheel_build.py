"""Build llm-installer's wheel from a copy of this checkout (the wheel tests, unit and docker).

A copy, so that setuptools' build/ and egg-info folders never land in (or leak stale files from)
the checkout; without build isolation, so that no setuptools is downloaded per build.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
_NOT_COPIED_ANYWHERE = shutil.ignore_patterns(
    ".git", ".venv", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache",
)  # fmt: skip
_NOT_COPIED_AT_TOP = {"build", "dist", "config.yaml", "tests", "bench", "test-output"}


def not_copied(folder: str, names: list[str]) -> set[str]:
    """What copytree leaves out: caches anywhere; setuptools' build/ and dist/, tests and the
    like only at the checkout's top (installer/build/ is code)."""
    ignored = set(_NOT_COPIED_ANYWHERE(folder, names))
    if Path(folder) == CHECKOUT:
        ignored |= _NOT_COPIED_AT_TOP & set(names)
    return ignored


def build_wheel(workdir: Path) -> Path:
    """``pip wheel --no-deps`` of a copy of the checkout into ``workdir``; the wheel's path."""
    source, out = workdir / "source", workdir / "dist"
    shutil.copytree(CHECKOUT, source, ignore=not_copied, symlinks=True)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-cache-dir", "--wheel-dir", str(out), str(source)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (wheel,) = out.glob("llm_installer-*.whl")
    return wheel
