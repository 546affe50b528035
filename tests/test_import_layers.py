"""The import graph of ringtrain/ and launcher/ obeys the layer table of docs/ARCHITECTURE.md.

Read with ``ast`` (nothing is imported): every ``import`` statement of every module, at module
level or deferred inside a function, must target the module's own layer or one its row lists;
module-level imports must form no cycle; the launcher imports the standard library only. The
table itself is the one in the document (between the ``layers`` markers), so the rule is
written in one place.
"""

from __future__ import annotations

import ast
import graphlib
import pathlib
import re
import sys
from dataclasses import dataclass

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "ARCHITECTURE.md"
SOURCES = {"ringtrain": ROOT / "ringtrain", "ringrun": ROOT / "launcher" / "ringrun"}

# Imports that break the table today, each with the issue and the helper who removes it.
# An entry that no longer occurs fails the test: delete it with the fix.
KNOWN_EXCEPTIONS: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Layer:
    name: str
    modules: tuple[str, ...]    # prefixes; "x.__init__" means the package x itself only
    may_import: tuple[str, ...]
    stdlib_only: bool


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    line: int
    deferred: bool              # inside a function (runs when called, not at import)


def read_layers() -> list[Layer]:
    text = DOC.read_text()
    block = re.search(r"<!-- layers:begin -->(.*?)<!-- layers:end -->", text, re.DOTALL)
    assert block, f"{DOC} lost its layer table (the <!-- layers:begin/end --> markers)"
    layers = []
    for row in block.group(1).splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[0] in ("Layer", "") or set(cells[0]) <= set("-: "):
            continue
        layers.append(Layer(cells[0], tuple(re.findall(r"`([\w.]+)`", cells[1])),
                            tuple(re.findall(r"`([\w.]+)`", cells[2])),
                            "standard library only" in cells[2]))
    return layers


def module_names() -> dict[str, tuple[pathlib.Path | None, bool]]:
    """Every module: name -> (file, is_package); compiled extensions have no source."""
    found: dict[str, tuple[pathlib.Path | None, bool]] = {}
    for top, folder in SOURCES.items():
        for path in folder.rglob("*.py"):
            parts = [top, *path.relative_to(folder).with_suffix("").parts]
            package = parts[-1] == "__init__"
            found[".".join(parts[:-1] if package else parts)] = (path, package)
        for path in folder.rglob("*.so"):
            parts = [top, *path.relative_to(folder).parent.parts, path.name.split(".")[0]]
            found[".".join(parts)] = (None, False)
    return found


def _walk(body: list[ast.stmt], deferred: bool):
    """Import statements with whether they are deferred; ``if TYPE_CHECKING:`` blocks are
    skipped (they never run)."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, deferred
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from _walk(node.orelse, deferred)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield from _walk(node.body, True)
        else:
            for field in ("body", "orelse", "finalbody", "handlers", "cases"):
                children = getattr(node, field, None)
                if isinstance(children, list):
                    yield from _walk([c for c in children if isinstance(c, ast.AST)], deferred)


def imports_of(name: str, path: pathlib.Path, package: bool, known: set[str]) -> list[Import]:
    found = []
    for node, deferred in _walk(ast.parse(path.read_text(), str(path)).body, False):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            if node.level:
                base = name.split(".") if package else name.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # ``from package import submodule`` imports the submodule.
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in known else module
                       for a in node.names]
        found += [Import(name, t, node.lineno, deferred) for t in targets]
    return found


def layer_of(module: str, layers: list[Layer]) -> Layer | None:
    best, length = None, -1
    for layer in layers:
        for prefix in layer.modules:
            if prefix.endswith(".__init__"):
                hit = module == prefix.removesuffix(".__init__")
            else:
                hit = module == prefix or module.startswith(prefix + ".")
            if hit and len(prefix) > length:
                best, length = layer, len(prefix)
    return best


def allowed(target: str, rules: tuple[str, ...]) -> bool:
    return any(target == r or target.startswith(r + ".") for r in rules)


def all_imports() -> tuple[list[Import], dict]:
    modules = module_names()
    known = set(modules)
    edges = []
    for name, (path, package) in sorted(modules.items()):
        if path is not None:
            edges += imports_of(name, path, package, known)
    return edges, modules


def test_the_layer_table_is_an_order():
    """Each layer may import only layers listed before it (so the table itself has no cycle)."""
    layers = read_layers()
    names = [layer.name for layer in layers]
    assert len(layers) >= 8 and len(set(names)) == len(names), names
    for i, layer in enumerate(layers):
        for rule in layer.may_import:
            owner = layer_of(rule, layers)
            assert owner is not None, f"{layer.name}: {rule} is in no layer of the table"
            assert names.index(owner.name) < i, (
                f"layer {layer.name} may import {rule} (layer {owner.name}), which is not "
                f"below it in the table")


def test_every_module_has_a_layer():
    layers = read_layers()
    _, modules = all_imports()
    unplaced = sorted(m for m in modules if layer_of(m, layers) is None)
    assert not unplaced, f"modules in no layer of {DOC.name}'s table: {unplaced}"


def test_imports_follow_the_layer_table():
    layers = read_layers()
    edges, _ = all_imports()
    stdlib = set(sys.stdlib_module_names)
    wrong, seen_exceptions = [], set()
    for edge in edges:
        mine = layer_of(edge.source, layers)
        top = edge.target.split(".")[0]
        if top not in SOURCES:
            if mine.stdlib_only and top not in stdlib and top != "__future__":
                wrong.append(f"{edge.source}:{edge.line} imports {edge.target} (the launcher "
                             f"uses the standard library only)")
            continue
        theirs = layer_of(edge.target, layers)
        if theirs is mine or allowed(edge.target, mine.may_import):
            continue
        key = (edge.source, edge.target)
        if key in KNOWN_EXCEPTIONS:
            seen_exceptions.add(key)
            continue
        kind = "deferred import" if edge.deferred else "import"
        wrong.append(f"{edge.source}:{edge.line}: {kind} of {edge.target} (layer "
                     f"{theirs.name if theirs else '?'}) from layer {mine.name}, which may "
                     f"import only {', '.join(mine.may_import) or 'nothing'}")
    assert not wrong, "imports against docs/ARCHITECTURE.md's layer table:\n" + "\n".join(wrong)
    stale = sorted(set(KNOWN_EXCEPTIONS) - seen_exceptions)
    assert not stale, f"known exceptions that no longer occur (delete them): {stale}"


def test_module_level_imports_have_no_cycle():
    edges, modules = all_imports()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for edge in edges:
        if not edge.deferred and edge.target in graph:
            graph[edge.source].add(edge.target)
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        raise AssertionError(f"module-level import cycle: {' -> '.join(exc.args[1])}") from None
