"""The package's shape: no import cycles (imports inside functions count), and layers import only downward.

The layers themselves are declared once, in pyproject.toml's ``[tool.importlinter]``; STYLE.md explains them.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"


def module_names(src: Path) -> dict[str, Path]:
    """Every module under ``src`` by dotted name (a package by its own name, namespace packages included)."""
    modules = {}
    for path in src.rglob("*.py"):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts:
            modules[".".join(parts)] = path
    return modules


def import_graph(src: Path) -> dict[str, dict[str, int]]:
    """``{importer: {imported: line}}`` over the modules under ``src``, from every import statement anywhere.

    ``from a import b`` imports ``a`` and, when it is a module, ``a.b``; an import of a name that is not a
    module of ``src`` counts as an import of its nearest enclosing module that is.
    """
    modules = module_names(src)
    graph: dict[str, dict[str, int]] = {name: {} for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].setdefault(target, node.lineno)
    return graph


def find_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) for each strongly connected group of modules that import each other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(start: str) -> None:
        # Tarjan's algorithm without recursion: the graph may be deeper than Python's recursion limit
        work = [(start, iter(sorted(graph[start])))]
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
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(group)

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return [shortest_cycle(graph, group) for group in groups]


def shortest_cycle(graph: dict[str, dict[str, int]], group: set[str]) -> list[str]:
    """The shortest path from the group's first module back to itself, staying inside the group."""
    start = min(group)
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node]):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [*reversed(path), start]
                if child in group and child not in came_from:
                    came_from[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {sorted(group)}")


def describe(graph: dict[str, dict[str, int]], cycle: list[str]) -> str:
    return " -> ".join(f"{a} (l.{graph[a][b]})" for a, b in zip(cycle, cycle[1:])) + f" -> {cycle[-1]}"


def test_the_cycle_finder_sees_imports_inside_functions_and_relative_imports(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "low.py").write_text("def late():\n    from pkg.sub import high\n    return high\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "high.py").write_text("from .. import low\n")
    (package / "alone.py").write_text("import pkg.low\n")

    graph = import_graph(tmp_path)

    assert graph["pkg.low"] == {"pkg.sub": 2, "pkg.sub.high": 2}
    assert graph["pkg.sub.high"] == {"pkg": 1, "pkg.low": 1}
    assert find_cycles(graph) == [["pkg.low", "pkg.sub.high", "pkg.low"]]
    assert describe(graph, find_cycles(graph)[0]) == "pkg.low (l.2) -> pkg.sub.high (l.1) -> pkg.low"


def test_shotfit_has_no_import_cycles() -> None:
    graph = import_graph(SRC)
    assert "shotfit.api" in graph and len(graph) > 50  # the walk found the package
    cycles = [describe(graph, cycle) for cycle in find_cycles(graph)]
    assert not cycles, "import cycles in src/shotfit:\n" + "\n".join(cycles)


def test_layers_import_only_downward() -> None:
    """import-linter checks the ``layers`` contract in pyproject.toml (it sees imports inside functions too)."""
    lint_imports = Path(sys.executable).with_name("lint-imports")
    assert lint_imports.is_file(), f"{lint_imports} not found: install the test extra (pip install -e '.[test]')"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [str(lint_imports), str(REPO / "pyproject.toml"), "--no-cache"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def imports_in_functions_without_a_reason(src: Path) -> list[str]:
    """``path:line`` of every import of the package's own modules made inside a function with no comment
    on its line or the line above saying why (an optional dependency, or start-up time)."""
    found = []
    for path in sorted((src / "shotfit").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        for function in ast.walk(ast.parse(text, filename=str(path))):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                own = (isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("shotfit"))
                       or isinstance(node, ast.Import) and any(a.name.startswith("shotfit") for a in node.names))
                if not own:
                    continue
                above = node.lineno - 2  # the line above the block of imports this one belongs to
                while above >= 0 and lines[above].strip().startswith(("from ", "import ")):
                    above -= 1
                said = "#" in lines[above] or any("#" in line for line in lines[node.lineno - 1:node.end_lineno])
                if not said:
                    found.append(f"{path.relative_to(src)}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    return found


def test_imports_inside_functions_say_why() -> None:
    """The graph a reader sees at the top of a module is the one that runs, unless a comment says otherwise."""
    unexplained = imports_in_functions_without_a_reason(SRC)
    assert not unexplained, "imports inside functions with no reason given:\n" + "\n".join(unexplained)


def test_the_reason_finder_sees_an_unexplained_import(tmp_path: Path) -> None:
    package = tmp_path / "shotfit"
    package.mkdir()
    (package / "a.py").write_text("def f():\n    from shotfit import b\n\n\ndef g():\n"
                                  "    # optional dependency\n    from shotfit import c\n", encoding="utf-8")
    assert imports_in_functions_without_a_reason(tmp_path) == ["shotfit/a.py:2: from shotfit import b"]
