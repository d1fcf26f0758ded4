"""The shape of memlab's imports: core/ is a pure engine, and no package imports in a
cycle. Read from the source (every import, including those inside functions, except
under `if TYPE_CHECKING:`), so a cycle hidden in a function body is still found."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "worker", "api", "store", "client")
# What the engine must not depend on: the web, the queue, the database.
FORBIDDEN_IN_CORE = (
    "fastapi",
    "starlette",
    "uvicorn",
    "celery",
    "redis",
    "sqlalchemy",
    "alembic",
    "psycopg",
    "api",
    "worker",
    "store",
    "client",
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def _is_type_checking_block(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def _imported(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Every module name `tree` imports, `from a import b` giving a.b where b is a module."""
    names: set[str] = set()
    pending = [tree]
    while pending:
        node = pending.pop()
        if _is_type_checking_block(node):
            continue
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: len(module.split(".")) - node.level + is_package]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names |= {f"{base}.{alias.name}" for alias in node.names}
        pending.extend(ast.iter_child_nodes(node))
    return names


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {
        name: {
            imported
            for imported in _imported(ast.parse(path.read_text()), name, path.name == "__init__.py")
            if imported in modules and imported != name
        }
        for name, path in modules.items()
    }


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_no_module_imports_in_a_cycle() -> None:
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_core_imports_no_web_queue_or_database() -> None:
    offenders = {}
    for name, path in _modules().items():
        if name.split(".")[0] != "core":
            continue
        imported = _imported(ast.parse(path.read_text()), name, path.name == "__init__.py")
        forbidden = {module.split(".")[0] for module in imported} & set(FORBIDDEN_IN_CORE)
        if forbidden:
            offenders[name] = sorted(forbidden)
    assert offenders == {}
