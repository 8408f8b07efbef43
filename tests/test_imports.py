"""The package's import graph: no cycle, loading a model pulls in no trainer, tests stand alone."""
import ast
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "d2ljax"


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, top-level or inside a function (a deferred import still
    closes a cycle), as dotted names: `from d2ljax import x` counts as d2ljax.x."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def package_graph() -> dict[str, set[str]]:
    """d2ljax module -> the d2ljax modules it imports (the package's __init__ left out: every
    submodule's import runs it first, and it imports submodules only to re-export them)."""
    modules = {f"d2ljax.{p.stem}": p for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    return {name: imported_modules(path) & (modules.keys() - {name}) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """A cycle of the graph as a list of nodes (first == last), or [] when it is acyclic."""
    state: dict[str, str] = {}

    def visit(node, path):
        state[node] = "open"
        for child in sorted(graph[node]):
            if state.get(child) == "open":
                return path[path.index(child):] + [child]
            if child not in state and (cycle := visit(child, path + [child])):
                return cycle
        state[node] = "done"
        return []

    for node in sorted(graph):
        if node not in state and (cycle := visit(node, [node])):
            return cycle
    return []


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_no_import_cycle_in_the_package():
    graph = package_graph()
    assert "d2ljax.checkpoints" in graph["d2ljax.pretrained"]  # the graph is read at all
    assert find_cycle(graph) == []


def test_checkpoints_model_pretrained_train_lib_form_a_chain():
    graph = package_graph()
    assert "d2ljax.model" in graph["d2ljax.checkpoints"]
    assert "d2ljax.checkpoints" in graph["d2ljax.pretrained"]
    assert {"d2ljax.pretrained", "d2ljax.checkpoints"} <= graph["d2ljax.train_lib"]


def test_tests_import_nothing_from_benchmarks_or_tools():
    """Benchmarks and tools may use the library; the tests' helpers live in the library or in tests/."""
    importers = [p.name for p in Path(__file__).parent.glob("test_*.py") if p.name != "test_benchmarks.py"
                 and any(m.split(".")[0] in ("benchmarks", "tools") for m in imported_modules(p))]
    assert importers == []


def test_loading_and_restoring_import_no_trainer(tmp_path):
    """A user who loads a shipped model and restores with it needs neither the trainer, optax
    nor TensorFlow; an array (no JPEG quality) goes to the blind model of its kind."""
    code = ("import sys\n"
            "import numpy as np\n"
            "import d2ljax\n"
            "d2ljax.load_pretrained('gray_qf10')\n"
            "_, info = d2ljax.restore(np.zeros((8, 8), np.uint8), return_info=True)\n"
            "print(info.model, info.quality)\n"
            "print(sorted(m for m in ('d2ljax.train_lib', 'optax', 'tensorflow') if m in sys.modules))\n")
    env = {**os.environ, "D2LJAX_MODELS": "", "XDG_CACHE_HOME": str(tmp_path)}  # the shipped models only
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-2:] == ["gray_blind None", "[]"]
