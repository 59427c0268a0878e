"""Imports go one way: every module of src/analysis sits in a layer and imports only from its own
layer or the layers below, and no two modules import each other, even through imports inside
functions. Parsed with ``ast``, so a module is checked without being imported."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "analysis"

#: Bottom to top. A module may import modules of its own layer (without a cycle) and of lower ones.
LAYERS = (
    # L0: records, file formats, configuration (the only home of defaults)
    {"analysis", "analysis.schema", "analysis.files", "analysis.config"},
    # L1: text handling, masking, embedding backends
    {"analysis.text", "analysis.privacy", "analysis.embed", "analysis.embed.base", "analysis.embed.cache",
     "analysis.embed.e5", "analysis.embed.e5_fast", "analysis.embed.e5_file", "analysis.embed.sentencepiece",
     "analysis.embed.st", "analysis.embed.tfidf", "analysis.embed.transformer"},
    # L2: reading inputs (notes, exchange files), manifests (pure build/compare)
    {"analysis.load", "analysis.exchange", "analysis.exchange.refi", "analysis.manifest"},
    # L3: the stages' own work: themes, words, labels, overrides, learning from confirmed notes and the
    # review queue, statistics, agreement, personas
    {"analysis.themes", "analysis.lexical", "analysis.labels", "analysis.overrides", "analysis.learn",
     "analysis.review", "analysis.stats", "analysis.metrics", "analysis.personas", "analysis.breakdowns"},
    # L4: the one path, in memory (pipeline), and its measurement (evaluate)
    {"analysis.pipeline", "analysis.evaluate"},
    # L5: what writes, draws, verifies or reads a finished run, or serves the notebooks
    {"analysis.outputs", "analysis.plots", "analysis.export", "analysis.export.codebook", "analysis.export.html", "analysis.export.refi",
     "analysis.export.report", "analysis.explore", "analysis.bundle", "analysis.project"},
    # L6: the command line
    {"analysis.cli"},
)
LAYER = {module: level for level, modules in enumerate(LAYERS) for module in modules}


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, known: set[str], root: Path = PACKAGE) -> list[tuple[str, int]]:
    """(imported module of the package, line) for every import in the file, at any depth."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            for alias in node.names:  # "from analysis import pipeline" imports the module pipeline
                candidate = f"{base}.{alias.name}"
                found.append((candidate if candidate in known else base, node.lineno))
    return [(target, line) for target, line in found if target in known and target != name]


def import_graph(root: Path = PACKAGE) -> dict[str, list[tuple[str, int]]]:
    files = sorted(root.rglob("*.py"))
    known = {module_name(path, root) for path in files}
    return {module_name(path, root): imports_of(path, known, root) for path in files}


def upward_imports(graph, layer) -> list[str]:
    return [f"{module} (L{layer[module]}) imports {target} (L{layer[target]}) at line {line}"
            for module, targets in graph.items() for target, line in targets if layer[target] > layer[module]]


def cycles(graph) -> list[list[str]]:
    """Every import cycle, as the path that closes it (depth-first search)."""
    found, state = [], {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target, _ in graph.get(module, []):
            if state.get(target) == "open":
                found.append(path[path.index(target):] + [target] if target in path else [module, target])
            elif target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return found


def test_every_module_has_a_layer():
    missing = sorted(set(import_graph()) - set(LAYER))
    assert not missing, f"give these modules a layer in tests/test_layers.py: {missing}"


def test_no_module_imports_from_a_higher_layer():
    problems = upward_imports(import_graph(), LAYER)
    assert not problems, "imports against the layers:\n" + "\n".join(problems)


def test_there_is_no_import_cycle():
    found = cycles(import_graph())
    assert not found, "import cycles: " + "; ".join(" -> ".join(cycle) for cycle in found)


def test_the_checks_catch_a_function_level_upward_import_and_a_cycle(tmp_path):
    root = tmp_path / "analysis"
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "low.py").write_text("def f():\n    from analysis import high\n")
    (root / "high.py").write_text("from analysis.low import f\n")
    graph = import_graph(root)
    assert graph["analysis.low"] == [("analysis.high", 2)]
    assert upward_imports(graph, {"analysis": 0, "analysis.low": 0, "analysis.high": 1}) == [
        "analysis.low (L0) imports analysis.high (L1) at line 2"]
    assert cycles(graph) == [["analysis.high", "analysis.low", "analysis.high"]] or \
        cycles(graph) == [["analysis.low", "analysis.high", "analysis.low"]]


@pytest.mark.parametrize("relative", ["from .low import f\n", "from . import low\n"])
def test_relative_imports_are_resolved(tmp_path, relative):
    root = tmp_path / "analysis"
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "low.py").write_text("")
    (root / "high.py").write_text(relative)
    assert import_graph(root)["analysis.high"] == [("analysis.low", 1)]
