"""installer/ is grouped by stage and its imports run one way: cli → deploy → build → run → check
→ the shared modules at the top (errors, settings, console, logs, docker_engine). Read with ast."""

from __future__ import annotations

import ast
from pathlib import Path

from llm_installer.settings import PROJECT_DIR

INSTALLER = PROJECT_DIR / "installer"
# A module may import its own stage and the stages after it in this order, never one before it.
ORDER = ("cli", "deploy", "build", "run", "check", "shared")
SHARED = {
    "__init__",
    "__main__",
    "errors",
    "settings",
    "console",
    "logs",
    "docker_engine",
    "resources",
}
# Imports that still run against the order, each inside a function (so no import cycle at load
# time). The list may only shrink: a new entry needs a reason, a stale one fails the test.
LAZY_EXCEPTIONS = {
    # check's adapter report reads the base model's reference and merges its check.
    ("check.checker", "build.adapters"): "the adapter helpers live with install_adapter",
    # check's profile names the CUDA base image this host's GPUs would get.
    ("check.profile", "build.base_images"): "the base-image table is read by build",
    # install ends by writing the model's llm.lock.json.
    ("build.install", "deploy.lock"): "lock_install lives with the lock file's other readers",
    # the macOS native plan installs the image's dependency set into a virtualenv.
    ("run.start_plan", "build.image"): "dependency_set lives with the image build",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(INSTALLER).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def stage(module: str) -> str:
    """The stage a module (dotted, below llm_installer) belongs to."""
    first = module.split(".")[0]
    if module in SHARED or module == "":
        return "cli" if module == "__main__" else "shared"  # __main__ only runs the CLI
    return first if first in ORDER else "unplaced"


def imports(path: Path) -> list[tuple[str, bool]]:
    """(imported module below llm_installer, whether the import is at module level)."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            base = node.module
            names = [
                f"{base}.{a.name}"
                if (INSTALLER / f"{dotted_path(base)}/{a.name}.py").exists()
                else base
                for a in node.names
            ]
        for name in names:
            if name == "llm_installer" or name.startswith("llm_installer."):
                found.append((name.removeprefix("llm_installer").lstrip("."), id(node) in top))
    return found


def dotted_path(module: str) -> str:
    return "/".join(module.split(".")[1:])


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(INSTALLER.rglob("*.py"))}


def test_no_relative_imports_and_every_module_placed() -> None:
    """Every module sits in a stage package or is one of the few shared ones at the top."""
    unplaced = [m for m in all_modules() if stage(m) == "unplaced"]
    assert not unplaced, f"put these in cli/, check/, build/, run/ or deploy/: {unplaced}"
    relative = [
        m
        for m, path in all_modules().items()
        if any(
            isinstance(n, ast.ImportFrom) and n.level for n in ast.walk(ast.parse(path.read_text()))
        )
    ]
    assert not relative, f"relative imports (write llm_installer.…): {relative}"


def test_imports_run_one_way() -> None:
    wrong, used = [], set()
    for module, path in all_modules().items():
        mine = ORDER.index(stage(module))
        for target, at_top in imports(path):
            if ORDER.index(stage(target)) >= mine:
                continue
            key = (module, target)
            if key in LAZY_EXCEPTIONS and not at_top:
                used.add(key)
                continue
            wrong.append(f"{module} ({stage(module)}) imports {target} ({stage(target)})")
    assert not wrong, "imports against cli → deploy → build → run → check → shared:\n" + "\n".join(
        wrong
    )
    assert used == set(LAZY_EXCEPTIONS), f"stale LAZY_EXCEPTIONS: {set(LAZY_EXCEPTIONS) - used}"


def test_stage_modules_never_import_the_cli() -> None:
    """The commands sit on top: no library module imports typer's command modules."""
    offenders = [
        module
        for module, path in all_modules().items()
        if stage(module) != "cli" and any(t.split(".")[0] == "cli" for t, _ in imports(path))
    ]
    assert not offenders
