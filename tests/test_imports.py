"""The package's modules form no import circle, counting imports made only for type checking.

A circle ties its modules into one unit that cannot be understood, tested or changed alone;
`edgeproxy.exchange` exists so that every stage can share the per-request state without one.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import edgeproxy

PACKAGE = Path(edgeproxy.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(tree: ast.Module, modules: set[str]) -> Iterator[str]:
    """Every edgeproxy module `tree` imports, at any depth (TYPE_CHECKING blocks included)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                yield full if full in modules else node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    modules = set(paths)
    return {
        name: {
            dep
            for dep in imported(ast.parse(path.read_text()), modules)
            if dep in modules and dep != name
        }
        for name, path in paths.items()
    }


def circles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for root, deps_of_root in graph.items():
        if root in index:
            continue
        work = [(root, iter(sorted(deps_of_root)))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, deps = work[-1]
            dep = next(deps, None)
            if dep is not None:
                if dep not in index:
                    index[dep] = low[dep] = len(index)
                    stack.append(dep)
                    on_stack.add(dep)
                    work.append((dep, iter(sorted(graph[dep]))))
                elif dep in on_stack:
                    low[node] = min(low[node], index[dep])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


def test_the_circle_finder_finds_a_circle_through_three_modules() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [{"a", "b", "c"}]


def test_no_module_of_the_package_takes_part_in_an_import_circle() -> None:
    graph = import_graph()
    assert "edgeproxy.exchange" in graph, "the graph covers the package"
    assert circles(graph) == []


def test_the_exchange_module_imports_no_stage() -> None:
    stages = {"edgeproxy.pipeline", "edgeproxy.cache.lookup", "edgeproxy.routing.dispatch"}
    assert not import_graph()["edgeproxy.exchange"] & stages


def test_a_proxy_without_admin_listener_or_redis_loads_neither_aiohttp_nor_redis() -> None:
    """Each costs about 10 MiB of resident memory a sidecar without them should not pay."""
    program = (
        "import sys\n"
        "from edgeproxy.app import ProxyServer\n"
        "from edgeproxy.config import parse\n"
        "ProxyServer(parse({'admin': {'enabled': False}}, {}))\n"
        "print(sorted(m for m in ('aiohttp', 'redis') if m in sys.modules))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "[]"
