"""The package's layers only point down, and no module imports itself back through others (every import counts,
the ones inside functions too)."""

from __future__ import annotations

import ast
from pathlib import Path

import prefkit

ROOT = Path(prefkit.__file__).parent
# low to high: a module may import its own layer and the ones before it
LAYERS = [
    ("infrastructure", {"prefkit", "prefkit.errors", "prefkit.lock", "prefkit.io", "prefkit.console", "prefkit.shipped",
                        "prefkit.config"}),
    ("data", {"prefkit.data"}),
    ("scoring contract", {"prefkit.competition", "prefkit.metrics", "prefkit.submission"}),
    ("toolbox", {"prefkit.toolbox"}),
    ("core", {"prefkit.core"}),
    ("rm", {"prefkit.rm"}),
    ("cot", {"prefkit.cot"}),
    ("kaggle", {"prefkit.kaggle"}),
    ("recipes", {"prefkit.recipes"}),
    ("cli", {"prefkit.cli"}),
]


def modules() -> dict[str, Path]:
    out = {}
    for p in ROOT.rglob("*.py"):
        parts = p.relative_to(ROOT.parent).with_suffix("").parts
        if "kernels" in parts:  # kernel templates: rendered into scripts that run on Kaggle, not imported
            continue
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = p
    return out


def layer(name: str) -> int:
    for i, (_, members) in enumerate(LAYERS):
        if name in members or any(name.startswith(m + ".") for m in members if m != "prefkit"):
            return i
    raise AssertionError(f"{name}: in no layer of tests/test_layers.py; add it where it belongs")


def imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([node.module] if node.module else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            else:
                continue
            for t in targets:
                while t not in mods and "." in t:
                    t = t.rsplit(".", 1)[0]
                if t in mods and t != name:
                    found.add(t)
        graph[name] = found
    return graph


def test_every_module_has_a_layer():
    for name in modules():
        layer(name)


def stale_entries(layers: list[tuple[str, set[str]]], mods: dict[str, Path]) -> list[str]:
    """Entries of the layer table that name no module or package: a table that drifts from the tree would
    otherwise go on passing while checking nothing for the name it lists."""
    return [f"{m} (layer {title})" for title, members in layers for m in sorted(members) if m not in mods]


def test_every_layer_entry_names_a_real_module():
    stale = stale_entries(LAYERS, modules())
    assert not stale, "layer table entries that name no module or package:\n" + "\n".join(stale)


def test_a_stale_layer_entry_is_noticed():
    """The check above is worth something only if it would fail: a table with a removed module shows it does."""
    table = [("infrastructure", {"prefkit", "prefkit.errors", "prefkit.gone"}), ("cli", {"prefkit.cli"})]
    mods = {"prefkit": ROOT / "__init__.py", "prefkit.errors": ROOT / "errors.py", "prefkit.cli": ROOT / "cli.py"}
    assert stale_entries(table, mods) == ["prefkit.gone (layer infrastructure)"]
    assert stale_entries(table[1:], mods) == []


def test_imports_point_down():
    graph = imports(modules())
    upward = [f"{a} ({LAYERS[layer(a)][0]}) imports {b} ({LAYERS[layer(b)][0]})"
              for a, targets in sorted(graph.items()) for b in sorted(targets) if layer(b) > layer(a)]
    assert not upward, "imports that point up a layer:\n" + "\n".join(upward)


def test_no_import_cycles():
    graph = imports(modules())
    cycles, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if nxt == "prefkit" or node == "prefkit":  # the package itself: __version__ only
                continue
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = "done"

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


# A recipe is a leaf: what two recipes share lives below recipes/ (torchtune's recipes import no other recipe). Every
# recipe may import the shared prologue; the two demos orchestrate other recipes, and are named here as such.
SHARED_RECIPES = {"prefkit.recipes", "prefkit.recipes.common"}
ORCHESTRATORS = {"prefkit.recipes.demo", "prefkit.recipes.cot_demo"}


def recipe_imports(graph: dict[str, set[str]]) -> list[str]:
    """Each import of one recipe by another, but for the shared prologue and the orchestrating demos'."""
    return [f"{a} imports {b}" for a, targets in sorted(graph.items())
            if a.startswith("prefkit.recipes.") and a not in ORCHESTRATORS
            for b in sorted(targets) if b.startswith("prefkit.recipes") and b not in SHARED_RECIPES]


def test_no_recipe_imports_another():
    found = recipe_imports(imports(modules()))
    assert not found, ("a recipe imports another (move what they share below recipes/, into the layer that fits):\n"
                       + "\n".join(found))


def test_a_recipe_importing_another_is_noticed():
    graph = {"prefkit.recipes.predict": {"prefkit.recipes.common", "prefkit.rm.run"},
             "prefkit.recipes.repredict": {"prefkit.recipes.predict", "prefkit.recipes.common"},
             "prefkit.recipes.demo": {"prefkit.recipes.cv", "prefkit.recipes.predict"},
             "prefkit.cli": {"prefkit.recipes.predict"}}
    assert recipe_imports(graph) == ["prefkit.recipes.repredict imports prefkit.recipes.predict"]
    assert ORCHESTRATORS <= set(modules()), "the demos named as orchestrators exist"


def test_the_checker_sees_an_upward_and_a_cyclic_import(tmp_path, monkeypatch):
    """The checks above are worth something only if they would fail: a planted package shows they do."""
    pkg = tmp_path / "prefkit"
    for rel, text in {"__init__.py": "", "errors.py": "from prefkit.rm import heads\n", "rm/__init__.py": "",
                      "rm/heads.py": "def f():\n    from prefkit.rm import pair\n", "rm/pair.py": "from prefkit.rm.heads import f\n"}.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text(text)
    monkeypatch.setattr(__import__(__name__, fromlist=["ROOT"]), "ROOT", pkg)
    graph = imports(modules())
    assert graph["prefkit.errors"] == {"prefkit.rm.heads"} and layer("prefkit.rm.heads") > layer("prefkit.errors")
    assert "prefkit.rm.pair" in graph["prefkit.rm.heads"] and "prefkit.rm.heads" in graph["prefkit.rm.pair"]
    import pytest

    with pytest.raises(AssertionError, match="point up"):
        test_imports_point_down()
    with pytest.raises(AssertionError, match="prefkit.rm.heads -> prefkit.rm.pair -> prefkit.rm.heads"):
        test_no_import_cycles()


def test_every_prefkit_import_names_something_that_exists():
    """Lazy imports inside functions run only when their branch does: after a module moves, a stale one would
    fail at that moment in a user's job. Each `from prefkit.X import name` is resolved here, all of them."""
    import importlib

    missing = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").startswith("prefkit"):
                try:
                    module = importlib.import_module(node.module)
                except ImportError as e:
                    missing.append(f"{name}: from {node.module} import ... ({e})")
                    continue
                for alias in node.names:
                    if not hasattr(module, alias.name) and f"{node.module}.{alias.name}" not in modules():
                        missing.append(f"{name}: from {node.module} import {alias.name}")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("prefkit") and alias.name not in modules():
                        missing.append(f"{name}: import {alias.name}")
    assert not missing, "imports of names that do not exist:\n" + "\n".join(missing)
