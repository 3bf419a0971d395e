"""The package's folders are its architecture: imports point one way, and never in a circle.

Every module of ``one_hooks`` is read with :mod:`ast` (nothing is imported),
and every import counts: at module level, inside functions (a lazy import is
still a dependency) and under ``if TYPE_CHECKING:``. So do modules named in
full by a string (``"one_hooks.hooks.entry"``): the command line loads its
subcommands by name. Layers, lowest first, as the README's layout shows:

* ground: the top-level modules (``errors``, ``config``, ``fsio``, ...);
* doors: ``oned/`` (XML-RPC, parsed objects), ``node/`` (subprocesses, iSCSI, the gate);
* engine: ``recovery/``, ``cpu/``;
* entry points: ``hooks/``, ``install/``, ``commands/``, ``cli``, ``__main__``,
  and ``sim/`` (a tool: the simulated oned).

A module imports only from its own layer or lower ones; no module imports
``one_hooks.sim`` from outside it (the command line names its demo as the
``simulate`` subcommand, loaded only when that runs); there are no cycles at
all; and each ``__init__.py`` is a docstring without imports, so that
reaching a module never loads its neighbours (the VM hooks' first look counts
every import, see test_triage.py).
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterator, List, NamedTuple, Optional, Set

import one_hooks

PACKAGE = "one_hooks"
ROOT = Path(one_hooks.__file__).resolve().parent

GROUND, DOORS, ENGINE, ENTRY = range(4)
LAYER_NAMES = ("ground", "doors", "engine", "entry points")
#: Each folder of one_hooks and its layer; a new folder must be given one here.
FOLDERS = {"oned": DOORS, "node": DOORS, "recovery": ENGINE, "cpu": ENGINE,
           "hooks": ENTRY, "install": ENTRY, "commands": ENTRY, "sim": ENTRY}
#: Top-level modules that are entry points (every other one is ground).
TOP_ENTRY = {"cli", "__main__"}
SIM = f"{PACKAGE}.sim"
#: (importer, module): references to the simulator allowed outside it.
SIM_BY_NAME = {(f"{PACKAGE}.cli", f"{SIM}.demo")}


class Import(NamedTuple):
    """One dependency: ``source`` needs ``target`` (``where`` is file:line)."""

    source: str
    target: str
    where: str
    by_name: bool = False


def module_files() -> Dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = [PACKAGE, *path.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = module_files()


def is_package(module: str) -> bool:
    return MODULES[module].name == "__init__.py"


def layer(module: str) -> int:
    """The layer of a module, from its place in the tree."""
    parts = module.split(".")
    if len(parts) == 1:
        return GROUND  # one_hooks/__init__.py: the version
    if parts[1] in FOLDERS:
        return FOLDERS[parts[1]]
    assert len(parts) == 2 and not is_package(module), f"{module}: a folder without a layer in FOLDERS"
    return ENTRY if parts[1] in TOP_ENTRY else GROUND


def _resolve(source: str, node: ast.ImportFrom) -> str:
    """The absolute module a ``from ... import`` reads from."""
    if not node.level:
        return node.module or ""
    base = source.split(".") if is_package(source) else source.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _ours(name: str) -> Optional[str]:
    """The deepest module of the package that importing ``name`` loads, if any."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in MODULES:
            return candidate
        parts.pop()
    return None


def imports_of(source: str, text: Optional[str] = None) -> Iterator[Import]:
    """Every dependency of ``source`` (its file, or ``text`` in its place) on another module."""
    path = MODULES[source]
    rel = path.relative_to(ROOT.parent)
    tree = ast.parse(path.read_text() if text is None else text, str(rel))
    for node in ast.walk(tree):
        where = f"{rel}:{getattr(node, 'lineno', 0)}"
        targets: List[str] = []
        by_name = False
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(source, node)
            # "from pkg import mod" loads pkg.mod; "from mod import name" loads mod.
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and node.value.startswith(PACKAGE + ".") and node.value in MODULES:
            targets, by_name = [node.value], True
        for target in sorted({_ours(name) or source for name in targets} - {source}):
            yield Import(source, target, where, by_name)


def all_imports() -> List[Import]:
    return [imp for module in MODULES for imp in imports_of(module)]


def find_cycles(edges: List[Import]) -> List[List[Import]]:
    """Cycles among the imports: for each group of modules that reach each other (Tarjan's
    strongly connected components), a shortest way round through each of its modules."""
    graph: Dict[str, List[Import]] = {}
    for edge in edges:
        graph.setdefault(edge.source, []).append(edge)
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    groups: List[Set[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for edge in graph.get(module, []):
            if edge.target not in index:
                visit(edge.target)
                low[module] = min(low[module], low[edge.target])
            elif edge.target in on_stack:
                low[module] = min(low[module], index[edge.target])
        if low[module] == index[module]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == module:
                    break
            if len(group) > 1:
                groups.append(group)

    for module in sorted({e.source for e in edges} | {e.target for e in edges}):
        if module not in index:
            visit(module)
    cycles: List[List[Import]] = []
    for group in groups:
        for start in sorted(group):
            cycle = _cycle_from(start, group, graph)
            if not any(set(cycle) == set(seen) for seen in cycles):
                cycles.append(cycle)
    return cycles


def _cycle_from(start: str, group: Set[str], graph: Dict[str, List[Import]]) -> List[Import]:
    """A shortest way round from ``start`` back to itself within its group (breadth first)."""
    paths: Dict[str, List[Import]] = {start: []}
    queue = [start]
    while queue:
        module = queue.pop(0)
        for edge in graph.get(module, []):
            if edge.target == start:
                return paths[module] + [edge]
            if edge.target in group and edge.target not in paths:
                paths[edge.target] = paths[module] + [edge]
                queue.append(edge.target)
    raise AssertionError(f"no way round from {start}")  # pragma: no cover


def _say(edge: Import) -> str:
    how = " (by name)" if edge.by_name else ""
    return (f"{edge.where}: {edge.source} [{LAYER_NAMES[layer(edge.source)]}] imports{how} "
            f"{edge.target} [{LAYER_NAMES[layer(edge.target)]}]")


# --- the rules ----------------------------------------------------------------------------


def test_every_module_has_a_layer() -> None:
    for module in MODULES:
        layer(module)


def test_imports_point_down_or_sideways_only() -> None:
    upward = [_say(edge) for edge in all_imports() if layer(edge.target) > layer(edge.source)]
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)


def test_there_are_no_import_cycles() -> None:
    cycles = find_cycles(all_imports())
    described = [" -> ".join([cycle[0].source] + [f"{e.target} ({e.where})" for e in cycle])
                 for cycle in cycles]
    assert not cycles, "import cycles:\n" + "\n".join(described)


def test_only_the_simulator_imports_the_simulator() -> None:
    outside = [_say(edge) for edge in all_imports()
               if (edge.target == SIM or edge.target.startswith(SIM + "."))
               and not (edge.source == SIM or edge.source.startswith(SIM + "."))
               and (edge.source, edge.target) not in SIM_BY_NAME]
    assert not outside, "production modules importing the simulator:\n" + "\n".join(outside)


def test_package_inits_are_docstrings_without_imports() -> None:
    problems = []
    for module, path in MODULES.items():
        if not is_package(module):
            continue
        tree = ast.parse(path.read_text(), str(path))
        rel = path.relative_to(ROOT.parent)
        if not (ast.get_docstring(tree) or "").strip():
            problems.append(f"{rel}: no docstring (say what the part owns and what it may import)")
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                problems.append(f"{rel}:{node.lineno}: an import in a package __init__ "
                                "(loaded by every module of the part)")
    assert not problems, "\n".join(problems)


# --- the walker itself, on made-up edges ------------------------------------------------------


def test_the_cycle_finder_reports_the_way_round() -> None:
    edges = [Import("a", "b", "a.py:1"), Import("b", "c", "b.py:2"), Import("c", "a", "c.py:3"),
             Import("c", "d", "c.py:4")]
    edges += [Import("b", "a", "b.py:5")]
    cycles = find_cycles(edges)
    assert [[e.where for e in cycle] for cycle in cycles] == [["a.py:1", "b.py:5"],
                                                             ["c.py:3", "a.py:1", "b.py:2"]]


def test_lazy_type_checking_relative_and_named_imports_all_count() -> None:
    text = ("from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from .errors import OneHooksError\n"
            "def run():\n    from . import fsio\n    import one_hooks.logline\n"
            "COMMANDS = {'x': 'one_hooks.configpath', 'y': 'one_hooks.nothing', 'z': 'one_hooks'}\n")
    found = {(e.target, e.where, e.by_name) for e in imports_of(f"{PACKAGE}.cli", text)}
    assert found == {(f"{PACKAGE}.errors", "one_hooks/cli.py:3", False),
                     (f"{PACKAGE}.fsio", "one_hooks/cli.py:5", False),
                     (f"{PACKAGE}.logline", "one_hooks/cli.py:6", False),
                     (f"{PACKAGE}.configpath", "one_hooks/cli.py:7", True)}


def external_imports(source: str) -> Set[str]:
    """Top-level names of the packages outside one_hooks that ``source`` imports (any depth)."""
    tree = ast.parse(MODULES[source].read_text())
    names: Set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names - {PACKAGE}


def test_pyone_is_behind_the_oned_door() -> None:
    """pyone, and requests under it, are imported by one module: oned/rpc.py (the door's call)."""
    users = {module for module in MODULES if external_imports(module) & {"pyone", "requests", "urllib3"}}
    assert users == {f"{PACKAGE}.oned.rpc"}
