"""The import graph of colorize_core: no module imports another that imports it back, and the driver's side
(the jobs' flags, the pipeline, the settings, the model file's checks) starts without Keras, TensorFlow or Ray."""
import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "colorize_core"


def imports_of(path: Path) -> set[str]:
    """The colorize_core modules a file imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "colorize_core":
                found.update(alias.name for alias in node.names)
            elif node.module.startswith("colorize_core."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("colorize_core."))
    return found


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle in the graph as the list of its modules, or None."""
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> list[str] | None:
        state[module] = "open"
        for other in sorted(graph.get(module, ())):
            if state.get(other) == "open":
                return path[path.index(other):] + [other]
            if other not in state and (found := visit(other, path + [other])):
                return found
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state and (found := visit(module, [module])):
            return found
    return None


def test_no_module_of_colorize_core_imports_itself_back():
    graph = {path.stem: imports_of(path) - {path.stem} for path in PACKAGE.glob("*.py")}
    assert "model_file" in graph["model"] and "model" not in graph["model_file"]
    assert cycle(graph) is None, f"import cycle: {' -> '.join(cycle(graph))}"
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]  # the check itself finds one


def test_the_driver_side_imports_neither_keras_nor_ray():
    code = ("import sys, jobs.colorize, colorize_core.pipeline, colorize_core.settings, colorize_core.model_file; "
            "print(sorted(m for m in ('keras', 'tensorflow', 'jax', 'ray') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
