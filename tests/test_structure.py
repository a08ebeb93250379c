"""The shape of ``src/mtlkaggle``, measured from the code: layers, no import circles, sizes, owners.

Imports inside functions count. Every module belongs to one layer (:data:`LAYERS`, lowest first);
a module may import its own layer and the layers below, never above. A new module is placed here
once, on purpose: the test names any module it cannot place.
"""

from __future__ import annotations

import ast
import fnmatch
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "mtlkaggle"

LAYERS: list[tuple[str, ...]] = [
    ("mtlkaggle", "mtlkaggle.errors", "mtlkaggle.console"),
    ("mtlkaggle.paths", "mtlkaggle.io", "mtlkaggle.readback", "mtlkaggle.progress"),
    ("mtlkaggle.spec", "mtlkaggle.spec.*"),
    (
        "mtlkaggle.data",
        "mtlkaggle.data.*",
        "mtlkaggle.provenance",
        "mtlkaggle.metrics",
        "mtlkaggle.metric_formulas",
        "mtlkaggle.threshold_search",
        "mtlkaggle.cut_points",
        "mtlkaggle.model",
        "mtlkaggle.losses",
        "mtlkaggle.mixing",
        "mtlkaggle.probabilities",
        "mtlkaggle.submission",
        "mtlkaggle.submission_cells",
        "mtlkaggle.demo",
        "mtlkaggle.trackers",
        "mtlkaggle.tracker_backends",
    ),
    ("mtlkaggle.folds", "mtlkaggle.thresholds", "mtlkaggle.check", "mtlkaggle.evaluate"),
    ("mtlkaggle.engine", "mtlkaggle.engine.*"),
    ("mtlkaggle.parallel", "mtlkaggle.train"),
    (
        "mtlkaggle.ensemble",
        "mtlkaggle.predict",
        "mtlkaggle.runs",
        "mtlkaggle.figures",
        "mtlkaggle.report",
        "mtlkaggle.submit",
        "mtlkaggle.kaggle_datasets",
    ),
    (
        "mtlkaggle.bundle",
        "mtlkaggle.export",
        "mtlkaggle.notebook",
        "mtlkaggle.notebook_run",
        "mtlkaggle.kaggle_kernels",
    ),
    ("mtlkaggle.cli", "mtlkaggle.cli.*", "mtlkaggle.__main__"),
]
MAX_FILE_LINES, MAX_FUNCTION_LINES, MAX_CLASS_LINES = 450, 80, 300


def _modules() -> dict[str, Path]:
    found = {}
    for path in (SRC / PACKAGE).rglob("*.py"):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
        found[name] = path
    return found


def _imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (at any depth of the file)."""

    def resolve(name: str) -> str:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name

    edges = {}
    for module, path in modules.items():
        base = module if path.name == "__init__.py" else module.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                parts = base.split(".")
                target = (
                    ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
                    if node.level
                    else node.module or ""
                )
                if target.startswith(PACKAGE):
                    found |= {resolve(target)} | {resolve(f"{target}.{a.name}") for a in node.names}
            elif isinstance(node, ast.Import):
                found |= {resolve(a.name) for a in node.names if a.name.startswith(PACKAGE)}
        own_children = path.name == "__init__.py"
        edges[module] = {
            t for t in found if t and t != module and not (own_children and t.startswith(module + "."))
        }
    return edges


def _layer(module: str) -> int | None:
    for index, patterns in enumerate(LAYERS):
        if any(fnmatch.fnmatchcase(module, p) for p in patterns):
            return index
    return None


def _circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in edges:
        if node not in index:
            visit(node)
    return found


def test_every_module_has_a_layer_and_imports_only_downward():
    edges = _imports(_modules())
    unplaced = sorted(m for m in edges if _layer(m) is None)
    assert not unplaced, f"place these modules in LAYERS: {unplaced}"
    upward = sorted(f"{m} -> {t}" for m, targets in edges.items() for t in targets if _layer(t) > _layer(m))
    assert not upward, f"imports from a lower layer to a higher one: {upward}"


def test_no_import_circles():
    assert _circles(_imports(_modules())) == []


def test_sizes_of_files_functions_and_classes():
    too_long = []
    for module, path in _modules().items():
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > MAX_FILE_LINES:
            too_long.append(f"{module}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            size = getattr(node, "end_lineno", 0) - getattr(node, "lineno", 0) + 1
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and size > MAX_FUNCTION_LINES:
                too_long.append(f"{module}.{node.name}: {size} lines")
            if isinstance(node, ast.ClassDef) and size > MAX_CLASS_LINES:
                too_long.append(f"{module}.{node.name}: {size} lines")
    assert not too_long


def test_run_layouts_travel_as_values():
    built = {
        module: len(re.findall(r"\bRunLayout\(", path.read_text(encoding="utf-8")))
        for module, path in _modules().items()
        if module != "mtlkaggle.paths"
    }
    assert sum(built.values()) <= 6, {m: n for m, n in built.items() if n}


def test_checkpoint_payloads_have_one_writer_and_one_reader():
    owners = {
        module
        for module, path in _modules().items()
        if re.search(r"\b(save_checkpoint|load_checkpoint|torch\.save)\(", path.read_text("utf-8"))
    }
    assert owners == {"mtlkaggle.engine.checkpoint"}


def test_the_layer_check_sees_an_upward_import(tmp_path):
    # the checker itself must be able to fail: a data module importing the CLI is caught
    modules = _modules() | {"mtlkaggle.data.bad": tmp_path / "bad.py"}
    (tmp_path / "bad.py").write_text("def f():\n    from mtlkaggle.cli import app\n", encoding="utf-8")
    edges = _imports(modules)
    assert "mtlkaggle.cli" in edges["mtlkaggle.data.bad"]
    assert _layer("mtlkaggle.cli") > _layer("mtlkaggle.data.bad")
    assert _circles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
