"""The installer's data files (templates, tables, constraints) and the one Jinja environment.

Files are named by their path in the repository (``dockerfiles/constraints.txt``,
``base-images/table.json``, ``installer/check/vllm_architectures.json``). An editable install reads
them from the checkout; a wheel carries the top-level folders as ``llm_installer/_data/<folder>``
(pyproject.toml maps them) and the packages' own files inside the packages.
"""

from __future__ import annotations

import json
import shlex
from functools import cache
from importlib.resources import files
from pathlib import Path

import jinja2

DATA_FOLDERS = ("dockerfiles", "base-images", "compose")  # top-level folders, package data
TEMPLATE_FOLDERS = DATA_FOLDERS  # one loader over all three: template names are unique
PACKAGES = {"installer": "llm_installer", "runtime": "llm_runtime"}  # folder → import name


def data_file(*parts: str) -> Path:
    """The data file (or folder) at ``parts`` of its repository path, in a checkout or a wheel."""
    top, *rest = parts
    if top in PACKAGES:
        return _package_dir(PACKAGES[top]).joinpath(*rest)
    packaged = _package_dir("llm_installer") / "_data"
    if packaged.is_dir():
        return packaged.joinpath(top.replace("-", "_"), *rest)
    return _package_dir("llm_installer").parent.joinpath(top, *rest)


def _package_dir(name: str) -> Path:
    return Path(
        str(files(name))
    ).resolve()  # a symlinked package (bench/gpu_check.sh) finds its checkout


@cache
def templates() -> jinja2.Environment:
    """The Jinja environment of every template: strict (an undefined name is an error), shell
    and YAML quoting filters, block tags on lines of their own leave no blank lines."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([data_file(folder) for folder in TEMPLATE_FOLDERS]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["sh"] = lambda value: shlex.quote(str(value))
    env.filters["sh_join"] = lambda values: shlex.join(str(v) for v in values)
    env.filters["yaml"] = lambda value: json.dumps(value, ensure_ascii=False)
    # A stack file's values: YAML, with `$` doubled so compose/stack interpolation leaves it be.
    env.filters["stack"] = lambda value: json.dumps(value, ensure_ascii=False).replace("$", "$$")
    return env


def render(template: str, **values: object) -> str:
    """``template`` (a file name under dockerfiles/, base-images/ or compose/) rendered."""
    return templates().get_template(template).render(**values)
