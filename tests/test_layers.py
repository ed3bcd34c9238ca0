"""The import graph of the package: no circle, no arrow up the floors of docs/DESIGN.md.

Every ``import`` and ``from … import`` in ``src/tensorrnn`` counts, function-level ones
included (a lazy import hides a circle from Python, not from this test).
"""

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "tensorrnn"

# The floors of docs/DESIGN.md ("Layers of the code"), lowest first. A room is a module,
# or a sub-package as a whole (data, cli, generalized), or one module of ranks.
FLOORS = [
    {"tensorrnn", "errors", "atomic", "devices", "stats", "chain_kernel"},
    {"runfolder", "labkit", "formats", "features"},
    {"witness", "ranks.modp", "ranks.numerical", "ranks.cpfit", "ranks.cpals"},
    {"ranks.bounds", "ranks"},
    {"networks", "ranks.report"},
    {"generalized", "ranks.lab", "witness_lab"},
    {"models"},
    {"data", "teacher", "ranks.trained"},
    {"train", "executors", "teacher_scaling"},
    {"sweep", "cluster", "rerun", "tune", "teacher_scaling_report"},
    {"report"},
    {"demo", "cli"},
]
FLOOR = {room: level for level, rooms in enumerate(FLOORS) for room in rooms}


def room_of(module: str) -> str:
    parts = module.split(".")[1:]
    if not parts:
        return "tensorrnn"
    if parts[0] == "ranks" and len(parts) > 1 and parts[1] != "__init__":
        return f"ranks.{parts[1]}"
    return parts[0]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["tensorrnn", *parts])


def _is_module(name: str) -> bool:
    path = PACKAGE.joinpath(*name.split(".")[1:])
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def imports() -> dict[str, set[str]]:
    """room → the rooms it imports (every import statement, at any depth)."""
    edges: dict[str, set[str]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        module = _module_name(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            absolute = isinstance(node, ast.ImportFrom) and node.level == 0
            if absolute and (node.module or "").startswith("tensorrnn"):
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.startswith("tensorrnn")]
            else:
                continue
            for name in filter(_is_module, names):
                if room_of(name) != room_of(module):
                    edges[room_of(module)].add(room_of(name))
    return edges


def test_every_room_has_a_floor():
    rooms = {room_of(_module_name(p)) for p in PACKAGE.rglob("*.py")}
    assert sorted(rooms - set(FLOOR)) == [], "give the new module a floor here and in docs/DESIGN.md"


def test_no_arrow_points_up():
    upward = sorted(f"{a} -> {b}" for a, targets in imports().items() for b in targets
                    if FLOOR.get(b, -1) > FLOOR.get(a, -1))  # fmt: skip
    assert upward == []


def test_no_circle():
    edges = imports()
    seen: dict[str, int] = {}  # 1: on the current path, 2: done
    circles = []

    def visit(room: str, path: list[str]) -> None:
        seen[room] = 1
        for target in sorted(edges.get(room, ())):
            if seen.get(target) == 1:
                circles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in seen:
                visit(target, [*path, target])
        seen[room] = 2

    for room in sorted(edges):
        if room not in seen:
            visit(room, [room])
    assert circles == []


def test_the_walker_sees_function_level_imports():
    # A hand-made check of the walker itself: ranks.trained rebuilds networks through the
    # registry inside a function, and the walker must see that arrow.
    assert "models" in imports()["ranks.trained"]
