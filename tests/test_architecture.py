"""The layers of docs/architecture.md, checked on every import in localpipe/ (lazy ones included).

A new import loop, an import from a layer that may not use another, SQL or the ORM outside
state/, or a third-party library imported outside the one module that owns it fails here.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "localpipe"

# What each layer may import besides itself, bottom to top (docs/architecture.md). A layer is a
# subpackage of localpipe or one of its top-level modules; "" is localpipe/__init__.py and
# __main__.py, the composition root, which may import anything.
BASE = {"errors", "status", "faults", "cache_dir", "formats", "parallel_files"}
MAY_IMPORT = {
    "errors": set(),
    "status": set(),
    "faults": set(),
    "cache_dir": set(),
    "formats": set(),
    "parallel_files": set(),
    "hw": BASE,
    "content": BASE,
    "compat": BASE,  # the azureml table and shim: the names they lead to are imported by name, on use
    "envs": BASE,  # built environments in the machine's cache
    "sdk": BASE | {"hw"},
    "plan": BASE | {"hw", "content", "sdk"},
    "state": BASE | {"content"},
    "engine": BASE | {"hw", "content", "compat", "envs", "sdk", "plan", "state"},
    "client": BASE | {"hw", "content", "compat", "envs", "sdk", "plan", "state", "engine"},
    "watch": BASE | {"hw", "content", "compat", "envs", "sdk", "plan", "state", "engine", "client"},
    # the web studio (localpipe serve): pages over state/'s read-only views, actions through engine/
    "studio": BASE | {"hw", "content", "compat", "envs", "sdk", "plan", "state", "engine", "client"},
    "cli": BASE
    | {"hw", "content", "compat", "envs", "sdk", "plan", "state", "engine", "client", "watch", "studio", "parallel"},
    # ParallelRunStep's process: tables are read with sdk.data.tables, file digests found in the stat cache
    "parallel": BASE | {"hw", "content", "sdk"},
}
# Third-party libraries that only one place may import (optional, slow or hardware-bound ones).
OWNERS = {
    "click": "localpipe.cli",
    "watchdog": "localpipe.watch",
    "pynvml": "localpipe.hw",
    "docker": "localpipe.engine.executors.docker",
    "ray": "localpipe.engine.executors.ray",
    "peewee": "localpipe.state",
    "playhouse": "localpipe.state",
    "rich": "localpipe.cli",
    "uv": "localpipe.envs.build",
    "starlette": "localpipe.studio",
    "uvicorn": "localpipe.studio.server",
    "jinja2": "localpipe.studio.render",
}
SQL = re.compile(
    r"\b(SELECT\b[\s\S]*\bFROM|INSERT\s+(OR\s+\w+\s+)?INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|"
    r"CREATE\s+(TABLE|INDEX))\b",
    re.I,
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(name: str) -> list[tuple[str, int]]:
    """(imported name, line) of every import in module ``name``, relative ones made absolute."""
    path = MODULES[name]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = ".".join(here[: len(here) - node.level + 1] + ([base] if base else []))
            found += [(base, node.lineno)] + [(f"{base}.{alias.name}", node.lineno) for alias in node.names]
    return found


def internal(target: str) -> str | None:
    """The localpipe module that importing ``target`` loads (a name from a module is the module)."""
    while target and target not in MODULES:
        target = target.rpartition(".")[0]
    return target or None


def layer(module: str) -> str:
    name = module.split(".")[1] if "." in module else ""
    return "" if name == "__main__" else name


EDGES = {
    name: {
        t
        for imported, _ in imports(name)
        if imported.startswith("localpipe")
        if (t := internal(imported)) and t != name
    }
    for name in MODULES
}


def wrong_way(edges: dict[str, set[str]]) -> list[str]:
    """The imports that go to a layer their module's layer may not use."""
    return sorted(
        f"{a} -> {b}"
        for a, targets in edges.items()
        for b in targets
        if layer(a) and layer(b) != layer(a) and layer(b) not in MAY_IMPORT[layer(a)]
    )


def loops(edges: dict[str, set[str]]) -> list[list[str]]:
    """The import loops of ``edges`` (Tarjan's strongly connected components); a package and the
    children its __init__ imports are not a loop."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in edges.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                component.append(other)
                if other == node:
                    break
            if len(component) > 1 and not all(c.startswith(node) or node.startswith(c) for c in component):
                found.append(sorted(component))

    for name in sorted(edges):
        if name not in index:
            visit(name)
    return found


def test_no_import_goes_to_a_layer_it_may_not_use():
    assert wrong_way(EDGES) == []


def test_no_import_loop():
    assert loops(EDGES) == []


def test_every_layer_is_listed():
    assert {layer(m) for m in MODULES} - {""} == set(MAY_IMPORT)


def test_the_checks_find_a_wrong_way_import_and_a_loop():
    assert wrong_way({"localpipe.sdk.data": {"localpipe.state.history"}}) == [
        "localpipe.sdk.data -> localpipe.state.history"
    ]
    assert wrong_way({"localpipe.engine.submit": {"localpipe.state.history"}}) == []
    assert loops({"localpipe.a.x": {"localpipe.b.y"}, "localpipe.b.y": {"localpipe.a.x"}}) == [
        ["localpipe.a.x", "localpipe.b.y"]
    ]
    assert internal("localpipe.state.history.History") == "localpipe.state.history"


def test_sql_and_the_orm_stay_in_state():
    found = []
    for name, path in MODULES.items():
        if layer(name) == "state":
            continue
        for imported, line in imports(name):
            if imported.startswith(("peewee", "playhouse", "localpipe.state.models")):
                found.append(f"{name}:{line} imports {imported}")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value):
                found.append(f"{name}:{node.lineno} holds SQL")
    assert found == []


def test_each_owned_library_is_imported_only_by_its_owner():
    found = []
    for name in MODULES:
        for imported, line in imports(name):
            owner = OWNERS.get(imported.split(".")[0])
            if owner and not (name == owner or name.startswith(owner + ".")):
                found.append(f"{name}:{line} imports {imported} (only {owner} may)")
    assert found == []
