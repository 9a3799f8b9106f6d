"""The package's layout: imports flow one way, and modules stay readable."""

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "leed_tf"
MAX_LINES = 600


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, pathlib.Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: pathlib.Path, known: set[str]) -> set[str]:
    """The package modules ``path`` imports, at its top or inside functions
    (a lazy import closes a cycle as surely as a top-level one)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in known:
            for alias in node.names:
                # ``from leed_tf.data import images`` imports the module leed_tf.data.images.
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in known else node.module)
    return found


def import_graph() -> dict[str, set[str]]:
    found = modules()
    graph = {name: imports_of(path, set(found)) - {name} for name, path in found.items()}
    # A package's __init__ re-exporting its own modules is how packages work,
    # not a cycle: drop the edges from a package to its own submodules.
    return {name: {d for d in deps if not d.startswith(name + ".")} for name, deps in graph.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                return stack[stack.index(dep):] + [dep]
            if dep not in state:
                cycle = visit(dep)
                if cycle:
                    return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_graph_sees_lazy_and_submodule_imports():
    graph = import_graph()
    assert "leed_tf.data.images" in graph["leed_tf.training.run"]  # from leed_tf.data import images
    assert "leed_tf.run_folder" in graph["leed_tf.model"]
    assert len(graph) > 50


def test_no_import_cycle_in_the_package():
    assert find_cycle(import_graph()) is None, " -> ".join(find_cycle(import_graph()))


def test_run_folder_imports_nothing_of_the_package():
    assert import_graph()["leed_tf.run_folder"] == set()


def test_no_module_is_over_600_lines():
    long = {name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"
