"""The shape of the code, read from its imports: layers that only look down, no import
circles, no reaching into another module's privates, benchmarks apart from tests."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from peers.casd import REPO

PACKAGE = REPO / "casvfs"
# DESIGN.md's layers, bottom up: data flows digest -> store -> directory ->
# remote -> fuse -> cli, and no module imports a layer above its own.
LAYERS = {
    "casvfs.errors": 0,
    "casvfs.atomic": 0,
    "casvfs.timestamps": 0,
    "casvfs.protos": 0,
    "casvfs.digest": 0,
    "casvfs.tree": 0,
    "casvfs.store": 1,
    "casvfs.directory": 2,
    "casvfs.refs": 3,
    "casvfs.origin": 3,
    "casvfs.gc": 3,
    "casvfs.remote": 3,
    "casvfs.stores": 3,
    "casvfs.fuse": 4,
    "casvfs.serve": 4,
    "casvfs.sandbox": 4,
    "casvfs.fs": 4,
    "casvfs.cli": 5,
    "casvfs": 6,  # the package's own __init__ re-exports the public names
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules(root: Path) -> dict[str, ast.Module]:
    return {
        _module_name(path): ast.parse(path.read_text(), str(path))
        for path in sorted(root.rglob("*.py"))
        if not path.name.endswith("_pb2.py")
    }


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def _executed(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node that runs (imports under ``if TYPE_CHECKING:`` do not)."""
    pending = [tree]
    while pending:
        node = pending.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                pending.extend(child.orelse)
            else:
                pending.append(child)


def _imports(name: str, tree: ast.Module, known: set[str]) -> set[str]:
    """The modules *name* imports (``from pkg import submodule`` counts as the submodule)."""
    found = set()
    for node in _executed(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            found.add(node.module)
            found.update(
                f"{node.module}.{alias.name}"
                for alias in node.names
                if f"{node.module}.{alias.name}" in known
            )
    return {module for module in found if module in known and module != name}


def _layer(module: str) -> int:
    while module not in LAYERS:
        module = module.rpartition(".")[0]
    return LAYERS[module]


MODULES = _modules(PACKAGE)
GRAPH = {name: _imports(name, tree, set(MODULES)) for name, tree in MODULES.items()}


def test_every_module_has_a_layer() -> None:
    assert all(_layer(name) >= 0 for name in MODULES)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_imports_a_layer_above_its_own(name: str) -> None:
    upward = sorted(target for target in GRAPH[name] if _layer(target) > _layer(name))
    assert not upward, f"{name} (layer {_layer(name)}) imports {upward}"


def test_no_import_circles() -> None:
    cycles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(GRAPH[name]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[name] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])
    assert not cycles, "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_fuse_uses_only_the_public_face_of_the_directory_layer() -> None:
    reached = {target for name in GRAPH if name.startswith("casvfs.fuse") for target in GRAPH[name]}
    inner = sorted(target for target in reached if target.startswith("casvfs.directory."))
    assert not inner, f"casvfs.fuse imports {inner}; use casvfs.directory (or casvfs.tree)"


def _defined(tree: ast.Module) -> set[str]:
    """Names a module defines: functions, methods, class attributes, ``self.x = ...``."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def _documented_primitives() -> set[str]:
    primitives = MODULES["casvfs.directory.primitives"]
    docstring = ast.get_docstring(primitives) or ""
    return set(re.findall(r"``(_[a-z_]+)``", docstring))


def test_no_module_reaches_into_another_modules_privates() -> None:
    """An underscore name used on another object is the module's own, or one of the
    directory package's documented internal primitives used inside that package."""
    documented = _documented_primitives()
    assert {"_lookup", "_put", "_known_digest", "_resolve"} <= documented
    offences = []
    for name, tree in MODULES.items():
        own = _defined(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("casvfs"):
                offences += [f"{name} imports {node.module}.{a.name}" for a in node.names if a.name[0] == "_"]
            if not isinstance(node, ast.Attribute) or not node.attr.startswith("_"):
                continue
            if node.attr.startswith("__") or node.attr in own:
                continue
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                continue
            if not (name.startswith("casvfs.directory.") and node.attr in documented):
                offences.append(f"{name} uses {node.attr}")
    assert not offences, "\n".join(sorted(set(offences)))


def test_benchmarks_do_not_import_the_tests() -> None:
    benchmarks = _modules(REPO / "benchmarks")
    offences = sorted(
        f"{name} imports {node.module if isinstance(node, ast.ImportFrom) else node.names[0].name}"
        for name, tree in benchmarks.items()
        for node in ast.walk(tree)
        if (isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "tests")
        or (isinstance(node, ast.Import) and any(a.name.split(".")[0] == "tests" for a in node.names))
    )
    assert not offences, offences


def test_the_checks_see_a_circle_and_an_upward_import() -> None:
    """The graph reader is not blind: known edges are in it."""
    assert "casvfs.tree" in GRAPH["casvfs.directory.casdir"]
    assert "casvfs.fuse.capture" in GRAPH["casvfs.fuse.operations"]
    assert _layer("casvfs.fuse.mount") > _layer("casvfs.directory.casdir")
    tree = ast.parse("from casvfs.cli import main\nif TYPE_CHECKING:\n    from casvfs.fuse import mount\n")
    assert _imports("casvfs.store.local", tree, set(MODULES)) == {"casvfs.cli"}


def test_the_package_names_its_public_api_lazily() -> None:
    """``casvfs.__all__`` resolves, each name to the object its home module defines,
    and a FUSE server (casvfs.fuse.background) loads no Directory layer."""
    import importlib

    import casvfs

    homes = casvfs._HOMES
    assert set(casvfs.__all__) == {*homes, "__version__"}
    for name, home in homes.items():
        assert getattr(casvfs, name) is getattr(importlib.import_module(home), name)
    with pytest.raises(AttributeError):
        casvfs.no_such_name  # noqa: B018
    probe = "import sys, casvfs.fuse.background; print(sorted(m for m in sys.modules if 'directory' in m))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"
