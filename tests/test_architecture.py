"""The package's shape, checked: which package may import which (the map in docs/internals.md), no import cycle,
privileged code imported only by the run, a mirror test file for every module, and no module past ~500 lines
without a stated reason. Read from the source with `ast`, so nothing is imported."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "boundary"

# Each part of boundary, and the parts it may import (its own modules always). Lower parts never import higher
# ones: the pure core (policy) knows nothing of the proxy, the proxy nothing of the run, only the run builds jails.
LAYERS: dict[str, frozenset[str]] = {
    "errors": frozenset(),
    "reasons": frozenset(),
    "policy": frozenset({"errors", "reasons"}),
    "audit": frozenset({"errors"}),
    "logs": frozenset({"errors", "audit", "policy", "reasons"}),
    "ca": frozenset(),
    "dns": frozenset({"errors"}),
    "jail": frozenset({"errors"}),
    "proxy": frozenset({"errors", "reasons", "policy", "audit", "ca", "dns"}),
    "run": frozenset({"errors", "reasons", "policy", "audit", "ca", "dns", "jail", "proxy"}),
    "cli": frozenset({"errors", "reasons", "policy", "run", "logs"}),
}

# Modules over the size limit, and why they may be.
LARGE: dict[str, str] = {
    "proxy/patches/relay.py": "one protocol (the relay's state machine over private APIs) that reads as a whole",
}
SIZE_LIMIT = 520


def _modules() -> Iterator[Path]:
    yield from sorted(path for path in PACKAGE.rglob("*.py") if "__pycache__" not in path.parts)


def _name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports(path: Path, *, top_level_only: bool) -> set[str]:
    """The boundary modules `path` imports (`from boundary.x import y` counts y when it is a module)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("boundary"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("boundary"):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in ALL else node.module)
    return found


ALL = {_name(path) for path in _modules()}


@pytest.mark.parametrize("path", list(_modules()), ids=lambda path: str(path.relative_to(PACKAGE)))
def test_a_module_imports_only_the_parts_below_its_own(path: Path) -> None:
    module = _name(path)
    own = _part(module)
    if own in ("", "__main__"):
        return
    assert own in LAYERS, f"{module}: a part of boundary the layer map does not know; add it to LAYERS"
    outside = {_part(name) for name in _imports(path, top_level_only=False)} - {own, ""}
    assert outside <= LAYERS[own], f"{module} imports {sorted(outside - LAYERS[own])}, above or beside it"


def test_no_import_cycle() -> None:
    """Among the imports that run when a module is loaded (function-level imports are there for start-up time)."""
    graph = {_name(path): _imports(path, top_level_only=True) & ALL for path in _modules()}
    done: set[str] = set()

    def visit(module: str, trail: list[str]) -> None:
        if module in trail:
            raise AssertionError("import cycle: " + " -> ".join([*trail[trail.index(module) :], module]))
        if module in done:
            return
        for imported in sorted(graph.get(module, ())):
            # A package's __init__ importing its own submodules is not a cycle through them.
            if not imported.startswith(module + "."):
                visit(imported, [*trail, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


def test_every_module_has_its_mirror_test_file() -> None:
    """boundary/a/b.py is specified by tests/unit/a/test_b.py (or tests/integration/a/test_b.py, for privileged
    code that needs real namespaces), a package's __init__ (boundary/a/__init__.py) by tests/unit/a/test_a.py; a
    package __init__ that holds only its docstring needs none."""
    missing = []
    for path in _modules():
        relative = path.relative_to(PACKAGE)
        body = ast.parse(path.read_text()).body
        if relative.name == "__main__.py" or (relative.name == "__init__.py" and len(body) <= 1):
            continue
        stem = (relative.parent.name or "boundary") if relative.name == "__init__.py" else relative.stem
        mirrors = [ROOT / "tests" / kind / relative.parent / f"test_{stem}.py" for kind in ("unit", "integration")]
        if not any(mirror.exists() for mirror in mirrors):
            missing.append(f"{relative} -> {mirrors[0].relative_to(ROOT)}")
    assert missing == []


@pytest.mark.parametrize("path", list(_modules()), ids=lambda path: str(path.relative_to(PACKAGE)))
def test_a_module_stays_readable_in_size(path: Path) -> None:
    relative = str(path.relative_to(PACKAGE))
    lines = path.read_text().count("\n")
    if relative in LARGE:
        return
    assert lines <= SIZE_LIMIT, f"{relative} has {lines} lines: split it, or say in LARGE why it is one piece"


# The distribution each third-party import comes from, where the names differ.
DISTRIBUTIONS = {"OpenSSL": "pyopenssl", "yaml": "pyyaml"}


def test_the_dependencies_declared_are_the_ones_imported() -> None:
    """Every third-party package boundary imports is declared in pyproject.toml (not only reached through
    mitmproxy's own requirements), and every declared one is imported somewhere."""
    import re
    import sys
    import tomllib

    declared = {
        re.split(r"[<>=!~ ;\[]", requirement, maxsplit=1)[0].lower()
        for requirement in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    }
    imported: set[str] = set()
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
    third_party = {name for name in imported if name not in sys.stdlib_module_names and name != "boundary"}
    used = {DISTRIBUTIONS.get(name, name).lower() for name in third_party}
    assert used == declared
