"""The tree shows the plan (docs/architecture.md): imports run one way and never in a circle.

  commands  ->  service (the wiring)  ->  web (the edge)  ->  rooms (everything else)

Every `import` and `from ... import` counts, at module level or inside a function, and importing
`a.b.c` counts as importing the packages `a` and `a.b` too (Python runs their __init__ first).
Each rule is checked on a small planted tree first (the positive control), then on the project.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("appliance", "mqtt", "web", "firmware_cache")
WIRING = "appliance.service"
COMMANDS = "appliance.commands"


def modules(root: Path) -> dict[str, Path]:
    found = {}
    for pkg in PACKAGES:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def graph(root: Path) -> dict[str, set[str]]:
    mods = modules(root)

    def known(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    edges: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            for target in filter(None, map(known, targets)):
                while target:                 # the module and every package above it
                    if target != mod and not mod.startswith(target + "."):
                        edges[mod].add(target)
                    target = target.rpartition(".")[0]
    return edges


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def layer(mod: str) -> int:
    """3 commands, 2 the wiring, 1 the web edge, 0 a room."""
    if mod == COMMANDS or mod.startswith(COMMANDS + "."):
        return 3
    if mod == WIRING:
        return 2
    if mod == "web" or mod.startswith("web."):
        return 1
    return 0


def upward(edges: dict[str, set[str]]) -> list[str]:
    """Imports that go up a layer (a room importing web, web importing the wiring, ...)."""
    return sorted(f"{m} -> {t}" for m, targets in edges.items() for t in targets if layer(t) > layer(m))


def plant(root: Path, files: dict[str, str]) -> Path:
    for pkg in PACKAGES:
        (root / pkg).mkdir(parents=True, exist_ok=True)
        (root / pkg / "__init__.py").write_text('"""planted"""\n')
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_a_planted_circle_and_a_planted_upward_import_are_found(tmp_path):
    clean = plant(tmp_path / "clean", {
        "appliance/service.py": "from web import server\nfrom appliance.state import store\n",
        "appliance/state/__init__.py": '"""state"""\n',
        "appliance/state/store.py": "import sqlite3\n",
        "web/server.py": "from appliance.state.store import x\n",
    })
    assert circles(graph(clean)) == [] and upward(graph(clean)) == []
    # a circle through a function-level import and a relative one
    circle = plant(tmp_path / "circle", {
        "appliance/state/__init__.py": '"""state"""\n',
        "appliance/state/store.py": "def f():\n    from appliance.state import backup\n",
        "appliance/state/backup.py": "from . import store\n",
    })
    assert circles(graph(circle)) == [["appliance.state.backup", "appliance.state.store"]]
    # one through a package's __init__: importing web.csrf runs web/__init__ first
    through_init = plant(tmp_path / "init", {
        "web/__init__.py": "from web.pages import render\n",
        "appliance/voice/inbound.py": "import web.csrf\n",
        "web/csrf.py": "import secrets\n",
        "web/pages.py": "from appliance.voice import inbound\n",
    })
    assert circles(graph(through_init)) == [["appliance.voice.inbound", "web", "web.pages"]]
    # a room that imports web, and web that imports the wiring
    up = plant(tmp_path / "up", {
        "firmware_cache/room.py": "def install(service):\n    from web import firmware_routes\n",
        "web/firmware_routes.py": "from appliance.service import VERSION\n",
        "appliance/service.py": "VERSION = '1'\n",
    })
    assert upward(graph(up)) == ["firmware_cache.room -> web", "firmware_cache.room -> web.firmware_routes",
                                 "web.firmware_routes -> appliance.service"]


def test_the_project_has_no_import_circle():
    edges = graph(ROOT)
    assert len(edges) > 150, "the walk found too few modules to mean anything"
    assert {"web.app", "appliance.voice.inbound", "appliance.stt.engines"} <= edges.keys()
    assert circles(edges) == []


def test_imports_run_one_way_commands_wiring_web_rooms():
    edges = graph(ROOT)
    assert "web.server" in edges[WIRING] and WIRING in edges["appliance.commands.runner"]   # the layers are used
    assert upward(edges) == []


@pytest.mark.parametrize("package", [p for p in sorted((ROOT / "appliance").iterdir())
                                     if (p / "__init__.py").exists()], ids=lambda p: p.name)
def test_each_room_says_what_it_owns(package: Path):
    doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text()))
    assert doc and len(doc.split()) >= 12, f"appliance/{package.name}/__init__.py needs a docstring saying what it owns"


def test_appliance_top_level_is_rooms_and_a_handful_of_modules():
    loose = sorted(p.name for p in (ROOT / "appliance").glob("*.py"))
    assert loose == ["__init__.py", "service.py", "version.py"]
