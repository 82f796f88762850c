"""The layout says which code is which: the reference service imports nothing of the lab harness, the
demos, the checks or the tooling, and no module of wslab imports itself back through others."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "wslab"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str, *, type_only: bool = True) -> set[str]:
    """The wslab modules ``name`` imports, anywhere in it (functions included); ``type_only=False`` leaves
    out those imported under ``if TYPE_CHECKING:``."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    if not type_only:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                skipped |= {id(child) for child in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}  # "from . import scenarios"
    return {module for module in found if module in MODULES and module != name}


@pytest.mark.parametrize("name", [name for name in MODULES if name.startswith("wslab.reference")])
def test_the_reference_service_imports_nothing_but_itself(name: str) -> None:
    outside = {module for module in imports(name) if not module.startswith("wslab.reference")}
    assert not outside, f"{name} imports {sorted(outside)}: the service must stand alone"


def test_no_module_imports_itself_back_through_others() -> None:
    graph = {name: imports(name, type_only=False) for name in MODULES}
    # a module imports its package's __init__ when it is imported itself: that edge is not a circle
    graph = {name: {m for m in targets if not name.startswith(m + ".")} for name, targets in graph.items()}
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            circle = path[path.index(name):] + [name]
            pytest.fail("import circle: " + " → ".join(circle))
        if name in done:
            return
        for target in sorted(graph[name]):
            visit(target, [*path, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])


def test_every_kind_of_code_has_a_folder_that_says_so() -> None:
    top = {path.name for path in PACKAGE.iterdir() if path.suffix == ".py"}
    assert top == {"__init__.py", "__main__.py"}, f"modules outside a folder: {sorted(top)}"
    folders = {path.name for path in PACKAGE.iterdir() if path.is_dir() and not path.name.startswith("__")}
    assert folders == {"reference", "lab", "demos", "checks", "tools"}
