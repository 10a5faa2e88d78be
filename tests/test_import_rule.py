"""The import rule: no cycles between the packages of src/posthouse, and no feature package
importing ``api`` (the front doors import the features, never the other way round).

A "package" is the first name under posthouse (sending, delivery, api, ...); a top-level
module (errors, config, addresses, ...) is a node of its own. The entry points (cli, app)
may import anything and are left out.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "src" / "posthouse"
ENTRY_POINTS = {"cli", "app", "__main__", "__init__"}
# Feature packages: each owns a part of the pipeline and must not know the front doors.
DOORS = "api"


def _node(path: Path) -> str:
    relative = path.relative_to(ROOT).with_suffix("")
    return relative.parts[0]


def _imported(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    package = path.relative_to(ROOT).parent.parts
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                names.add(".".join(("posthouse", *base, *([node.module] if node.module else []))))
            elif node.module:
                names.add(node.module)
    return {
        name.split(".")[1]
        for name in names
        if name.startswith("posthouse.") and len(name.split(".")) > 1
    }


def package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        source = _node(path)
        if source in ENTRY_POINTS:
            continue
        targets = _imported(path) - ENTRY_POINTS - {source}
        graph.setdefault(source, set()).update(targets)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one package (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_cycles_between_packages() -> None:
    assert cycles(package_graph()) == []


def test_no_feature_package_imports_the_front_doors() -> None:
    graph = package_graph()
    assert sorted(source for source, targets in graph.items() if DOORS in targets) == []


def test_the_check_finds_a_cycle() -> None:
    # The check itself must be able to fail.
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert "api" in package_graph()
