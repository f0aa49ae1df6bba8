"""The package's layout: data flows down the pipeline once, and nothing below the CLI imports it."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "coach"


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every coach module ``path`` imports, at the top or inside a function (the lazy imports count too;
    those under ``if TYPE_CHECKING:`` do not, they never run)."""
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):  # imports only for type checkers never run
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            node.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.startswith("coach")}


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def test_no_module_outside_the_cli_imports_the_cli():
    offenders = {name: sorted(m for m in imports(path) if m == "coach.cli" or m.startswith("coach.cli."))
                 for name, path in MODULES.items()
                 if not name.startswith("coach.cli") and name != "coach.__main__"}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_package_has_no_import_circle():
    graph = {name: {m for m in imports(path) if m in MODULES and m != name} for name, path in MODULES.items()}
    # A package's __init__ importing its own modules is how Python packages work, not a circle.
    for name in graph:
        graph[name] = {m for m in graph[name] if not (name.startswith(m + ".") and m in MODULES)}
    done: set[str] = set()

    def visit(name: str, trail: tuple[str, ...]) -> None:
        assert name not in trail, "import circle: " + " -> ".join((*trail, name))
        if name in done:
            return
        for imported in graph[name]:
            visit(imported, (*trail, name))
        done.add(name)

    for name in sorted(graph):
        visit(name, ())
