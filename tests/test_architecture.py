"""The code's shape: no import cycle between the project's modules (imports inside functions count: a
cycle broken by a late import is still two modules that need each other), no private name imported
from another module, and command lines that dispatch through the suite contract, not by probing."""
from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path


REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("harness", "relabel", "reports")


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


def _absolute(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _project_module(name: str) -> str | None:
    """The project module a dotted name is, or the one it lies in (``harness.score.per_sample`` ->
    ``harness.score``); None outside the project."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


# A lazy reference to project code written as a string: "harness.score:score_run" (a registry target) or
# the argument of importlib.import_module / __import__.
_TARGET = re.compile(r"^((?:harness|relabel|reports)(?:\.\w+)*)(?::(\w+))?$")


def _literal_import(node: ast.AST) -> str | None:
    """The project module named by ``importlib.import_module("...")`` or ``__import__("...")``, else None."""
    if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
            and isinstance(node.args[0].value, str):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        match = _TARGET.match(node.args[0].value) if name in ("import_module", "__import__") else None
        return match.group(1) if match and not match.group(2) else None
    return None


def lazy_targets(path: Path) -> list[tuple[str, str, int]]:
    """(module, attribute, line) of every ``"module:attr"`` string of the project in the file at ``path``: the
    registries' lazy targets (suites, metrics, aggregators, models). They are not import edges: a registry
    names its implementations and they import the registry's base class, as in lm-eval and timm."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and ":" in node.value:
            match = _TARGET.match(node.value)
            if match and match.group(2):
                out.append((match.group(1), match.group(2), node.lineno))
    return out


def imports(module: str, source: str | None = None) -> list[tuple[str, str | None, int]]:
    """(imported project module, imported name or None, line) for every import in ``module`` (its file, or
    ``source`` as if it were that module's text): import statements, also inside functions, and
    ``import_module``/``__import__`` calls with a literal name."""
    path = MODULES.get(module, REPO / (module.replace(".", "/") + ".py"))
    out = []
    for node in ast.walk(ast.parse(path.read_text() if source is None else source, str(path))):
        literal = _literal_import(node)
        if literal and _project_module(literal):
            out.append((_project_module(literal), None, node.lineno))
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _project_module(alias.name)
                if target:
                    out.append((target, None, node.lineno))
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, path, node)
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                if submodule in MODULES:
                    out.append((submodule, None, node.lineno))
                elif _project_module(source):
                    out.append((_project_module(source), alias.name, node.lineno))
    return out


def import_graph() -> dict[str, set[str]]:
    graph = {m: set() for m in MODULES}
    for module in MODULES:
        for target, _, _ in imports(module):
            # a package's __init__ runs before its modules; an edge to it is not a dependency on them
            if target != module and not MODULES[target].name == "__init__.py":
                graph[module].add(target)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def private_imports() -> list[str]:
    found = []
    for module in MODULES:
        for target, name, line in imports(module):
            if name and name.startswith("_") and not name.startswith("__") and target != module:
                found.append(f"{MODULES[module].relative_to(REPO)}:{line} imports {name} from {target}")
    return found


def test_no_import_cycle():
    assert find_cycles(import_graph()) == []


def test_no_private_name_imported_across_modules():
    assert private_imports() == []


def test_the_checks_find_what_they_look_for():
    """The checks themselves, on a graph and on module texts they must flag."""
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []
    late = "def f():\n    from ..store import _empty_select\n    from . import formats, suite\n"
    assert imports("harness.detection.fake", late) == [
        ("harness.store", "_empty_select", 2), ("harness.detection.formats", None, 3),
        ("harness.detection.suite", None, 3)]
    assert imports("reports.fake", "import harness.score as s\nfrom harness.store import Store\nimport os\n") == [
        ("harness.score", None, 1), ("harness.store", "Store", 2)]


def suite_probes(path: Path) -> list[str]:
    """getattr/hasattr calls on something named like a suite (``suite``, ``self.suite``, ``target_suite``)."""
    def named_suite(node: ast.AST) -> bool:
        name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
        return "suite" in name.lower()

    tree = ast.parse(path.read_text())
    return [f"{path.relative_to(REPO)}:{n.lineno}" for n in ast.walk(tree)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in ("getattr", "hasattr")
            and n.args and named_suite(n.args[0])]


def test_no_code_probes_suites_outside_the_contract():
    """Generic code calls the suite contract (harness/suites.py declares every attribute with a default); it
    never asks a suite what it happens to have."""
    contract = REPO / "harness" / "suites.py"
    assert [p for path in MODULES.values() if path != contract for p in suite_probes(path)] == []


def _outside_modules() -> list[Path]:
    return sorted(p for folder in ("tests", "benchmarks", "scripts") for p in (REPO / folder).glob("*.py"))


def test_lazy_targets_name_public_objects_that_exist():
    """Every "module:attr" string of the project (registries' lazy targets) resolves, to a public name."""
    found = 0
    for path in [*MODULES.values(), *_outside_modules()]:
        for module, attr, line in lazy_targets(path):
            found += 1
            where = f"{path.relative_to(REPO)}:{line} names {module}:{attr}"
            assert not attr.startswith("_"), f"{where}, a private name"
            assert hasattr(importlib.import_module(module), attr), f"{where}, which does not exist"
    assert found >= 10


def test_tests_benchmarks_and_scripts_import_public_names_that_exist():
    """benchmarks/ and scripts/ run rarely: an import of a name that was renamed or made private breaks them
    silently (benchmarks/cifar_resnet20.py imported ``_read_checkpoint`` long after it was renamed)."""
    problems = []
    for path in _outside_modules():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES):
                continue
            module = importlib.import_module(node.module)
            for alias in node.names:
                where = f"{path.relative_to(REPO)}:{node.lineno} imports {alias.name} from {node.module}"
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    problems.append(f"{where}: a private name")
                elif not hasattr(module, alias.name) and f"{node.module}.{alias.name}" not in MODULES:
                    problems.append(f"{where}: no such name")
    assert problems == []


def test_listing_suites_imports_nothing_heavy():
    code = ("import sys; from harness.cli import main; main(['suites']); "
            "print(sorted(m for m in ('torch', 'duckdb', 'pandas', 'numpy', 'pyarrow', 'timm') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[-1] == "[]"
    assert any(line.startswith("cifar10.1 ") and "cifar10.1-v6" in line for line in lines)
