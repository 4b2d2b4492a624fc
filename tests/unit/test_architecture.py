"""The architecture rules of ARCHITECTURE.md, checked on the source with ast (nothing is imported).

Each rule is a checker function `check_*(root) -> list[str]` returning one line per violation
(`path:line: what`); the test of the repository asserts the list is empty and prints all of it.
Each checker is also run on a tiny synthetic tree (one violating, one clean), so a pass means the
rule was looked for, not that the checker found nothing to look at.
"""
from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

SKIP_DIRS = {"__pycache__", "build", "dist", "runs", "node_modules"}  # plus hidden and *.egg-info
MAX_SOURCE_LINES = 400
SCHEMA_HOME = "common/results/schema.py"

# The modules every backends/<fw>/ repeats by design (the same names for the same concepts, as
# Keras 3's backend folders do); backends/base.py's MODULES, where defined, replaces this list.
BACKEND_MODULES_DEFAULT = frozenset({"backend", "models", "weights", "runtime", "training", "parallel"})
SHARED_NAMES = frozenset({"__init__", "__main__", "conftest"})

# Heavy framework import names -> the one backend whose folder may import them.
FRAMEWORKS = {"torch": "pytorch", "tensorflow": "tensorflow", "keras": "tensorflow",
              "mxnet": "mxnet", "chainer": "chainer", "chainermn": "chainer", "cupy": "chainer",
              "jax": "jax", "jaxlib": "jax", "flax": "jax", "optax": "jax"}
# Outside backends/<fw>/ and benchmarks/bare/<fw>.py, these files may import these frameworks.
FRAMEWORK_EXCEPTIONS = {
    "backends/compat.py": set(FRAMEWORKS),            # the import shims prepare each framework
    "common/metrics/inception_torch.py": {"torch"},   # FID's Inception network (the fid extra)
    "tools/fid_speed.py": {"torch"},                  # times that network
    "tools/train_feature_net.py": {"torch"},          # trains the MNIST feature net, offline tool
    "benchmarks/peak.py": {"torch"},                  # the measured GEMM peak (torch.matmul)
}


# ----- the source tree -----
@dataclass
class Module:
    name: str        # dotted: common.data.idx, run_all
    path: str        # relative, with '/': common/data/idx.py
    package: str     # the package it belongs to: common.data (a top-level module is its own)
    tree: ast.Module
    lines: int


def _wanted(rel: Path) -> bool:
    return not any(p.startswith(".") or p in SKIP_DIRS or p.endswith(".egg-info")
                   for p in rel.parts[:-1])


@functools.lru_cache(maxsize=None)  # every check walks the same tree: parse it once
def load_modules(root: Path) -> dict[str, Module]:
    modules = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if not _wanted(rel):
            continue
        parts = list(rel.with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        name = ".".join(parts)
        package = name if is_package or len(parts) == 1 else ".".join(parts[:-1])
        text = path.read_text(encoding="utf-8")
        modules[name] = Module(name, rel.as_posix(), package, ast.parse(text, str(rel)),
                               text.count("\n") + (not text.endswith("\n") and bool(text)))
    return modules


def ordered(found: list[str]) -> list[str]:
    """Violations once each, by file and line number."""
    def key(v):
        path, _, rest = v.partition(":")
        line = rest.split(":")[0]
        return path, int(line) if line.isdigit() else 0, v
    return sorted(set(found), key=key)


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def from_base(mod: Module, node: ast.ImportFrom) -> str:
    """The absolute module an ImportFrom names (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    parts = mod.package.split(".")
    base = parts[:len(parts) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imported_modules(mod: Module, node, modules) -> list[str]:
    """The repository modules an import statement names (`from a import b`: a.b if it is a
    module, else a). Parent packages it also runs are left out: every package would otherwise be
    in a cycle with each submodule its __init__ imports."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = from_base(mod, node)
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
    return [name for name in names if name in modules]


def _walk_scope(nodes):
    """The nodes of one scope: does not descend into nested functions, lambdas or classes."""
    stack = list(nodes)
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
                stack.append(child)
            else:
                yield child  # the def itself binds its name here; its body is another scope


def _type_checking_block(node) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


# ----- a. no private name crosses a package -----
class _PrivateUse(ast.NodeVisitor):
    """Walks one module with its scopes, knowing which names are bound to repository modules."""

    def __init__(self, mod: Module, modules: dict[str, Module]):
        self.mod, self.modules, self.found = mod, modules, []
        self.scopes: list[tuple[str, dict]] = []

    def _bindings(self, body, args=None) -> dict:
        bound: dict[str, str | None] = {}
        for a in (args or []):
            bound[a] = None
        for node in _walk_scope(body):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                bound.update(self._imported_names(node))
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                bound.setdefault(node.id, None)  # a local variable shadows an outer module name
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                bound.setdefault(node.name, None)
        return bound

    def _imported_names(self, node) -> dict[str, str | None]:
        """Each name an import binds -> the repository module it is, or None (a function, a
        class, an outside module: not ours to judge)."""
        out = {}
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = alias.name if alias.asname else alias.name.split(".")[0]
                out[alias.asname or target] = target if target in self.modules else None
        else:
            base = from_base(self.mod, node)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out[alias.asname or alias.name] = sub if sub in self.modules else None
        return out

    def lookup(self, name: str) -> str | None:
        for i, (kind, bound) in enumerate(reversed(self.scopes)):
            if kind == "class" and i > 0:
                continue  # a method does not see its class body's names
            if name in bound:
                return bound[name]
        return None

    def module_of(self, expr) -> str | None:
        """The repository module an expression (a name or a.b.c) stands for, if it is one."""
        if isinstance(expr, ast.Name):
            return self.lookup(expr.id)
        if isinstance(expr, ast.Attribute):
            outer = self.module_of(expr.value)
            if outer and f"{outer}.{expr.attr}" in self.modules:
                return f"{outer}.{expr.attr}"
        return None

    def foreign(self, target: str) -> bool:
        return self.modules[target].package != self.mod.package

    def report(self, node, what: str):
        self.found.append(f"{self.mod.path}:{node.lineno}: {what}")

    # scopes
    def visit_Module(self, node):
        self.scopes.append(("module", self._bindings(node.body)))
        self.generic_visit(node)

    def _function(self, node):
        args = [a.arg for a in ast.walk(node.args) if isinstance(a, ast.arg)]
        body = node.body if isinstance(node.body, list) else [node.body]
        # decorators, defaults and annotations belong to the enclosing scope
        for outer in getattr(node, "decorator_list", []) + [node.args, getattr(node, "returns", None)]:
            if outer is not None:
                self.visit(outer)
        self.scopes.append(("function", self._bindings(body, args)))
        for stmt in body:
            self.visit(stmt)
        self.scopes.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_ClassDef(self, node):
        for d in node.decorator_list + node.bases + [k.value for k in node.keywords]:
            self.visit(d)
        self.scopes.append(("class", self._bindings(node.body)))
        for stmt in node.body:
            self.visit(stmt)
        self.scopes.pop()

    # uses
    def visit_ImportFrom(self, node):
        base = from_base(self.mod, node)
        for alias in node.names:
            if is_private(alias.name) and base in self.modules and self.foreign(base):
                self.report(node, f"from {base} import {alias.name}")
        self._private_module_path(node, base)

    def visit_Import(self, node):
        for alias in node.names:
            self._private_module_path(node, alias.name)

    def _private_module_path(self, node, dotted: str):
        parts = dotted.split(".")
        for i, part in enumerate(parts[1:], 1):
            owner = ".".join(parts[:i])
            if is_private(part) and owner in self.modules and self.foreign(owner):
                self.report(node, f"import of private module {dotted}")
                return

    def visit_Attribute(self, node):
        if is_private(node.attr):
            target = self.module_of(node.value)
            if target and self.foreign(target):
                self.report(node, f"{target}.{node.attr}")
        self.generic_visit(node)

    def visit_Call(self, node):
        func = node.func
        fname = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        is_patch_object = fname == "object" and isinstance(func, ast.Attribute) and (
            getattr(func.value, "attr", getattr(func.value, "id", "")) == "patch")
        args = node.args
        # setattr(mod, "_x"), monkeypatch.setattr(mod, "_x", v), mock.patch.object(mod, "_x"), ...
        if (fname in {"setattr", "delattr", "getattr", "hasattr"} or is_patch_object) and len(args) >= 2:
            target = self.module_of(args[0])
            name = args[1]
            if (target and self.foreign(target) and isinstance(name, ast.Constant)
                    and isinstance(name.value, str) and is_private(name.value)):
                self.report(node, f"{fname}({target}, {name.value!r})")
        # monkeypatch.setattr("a.b._x", v), mock.patch("a.b._x"): a dotted string target
        if (fname in {"setattr", "delattr", "patch"} and args and isinstance(args[0], ast.Constant)
                and isinstance(args[0].value, str) and "." in args[0].value):
            self._dotted_target(node, fname, args[0].value)
        self.generic_visit(node)

    def _dotted_target(self, node, fname: str, dotted: str):
        parts = dotted.split(".")
        for i in range(len(parts) - 1, 0, -1):
            owner = ".".join(parts[:i])
            if owner in self.modules:
                if is_private(parts[i]) and self.foreign(owner):
                    self.report(node, f"{fname}({dotted!r})")
                return


def check_private_names(root: Path) -> list[str]:
    modules = load_modules(root)
    found = []
    for mod in modules.values():
        visitor = _PrivateUse(mod, modules)
        visitor.visit(mod.tree)
        found += visitor.found
    return ordered(found)


# ----- b. no import cycle -----
def import_graph(root: Path, in_functions: bool) -> tuple[dict, dict]:
    """module -> set of modules it imports; (importer, imported) -> 'path:line' of the first."""
    modules = load_modules(root)
    graph, where = {name: set() for name in modules}, {}

    def visit(mod, nodes):
        for node in nodes:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) and not in_functions:
                continue
            if _type_checking_block(node):
                visit(mod, node.orelse)  # annotations only: never imported at run time
                continue
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in imported_modules(mod, node, modules):
                    if target != mod.name:
                        graph[mod.name].add(target)
                        where.setdefault((mod.name, target), f"{mod.path}:{node.lineno}")
            visit(mod, ast.iter_child_nodes(node))

    for mod in modules.values():
        visit(mod, mod.tree.body)
    return graph, where


def strongly_connected(graph: dict) -> list[list[str]]:
    """Tarjan's algorithm, iterative; the components of more than one module."""
    index, low, on_stack, stack, out, counter = {}, {}, set(), [], [], [0]
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter[0]; counter[0] += 1
        stack.append(start); on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]; counter[0] += 1
                    stack.append(child); on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop(); on_stack.discard(member); component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def check_import_cycles(root: Path, in_functions: bool = False) -> list[str]:
    graph, where = import_graph(root, in_functions)
    found = []
    for component in strongly_connected(graph):
        edges = [f"{where[(a, b)]}: {a} imports {b}" for a in component for b in sorted(graph[a])
                 if b in component]
        found.append(f"cycle among {', '.join(component)}:\n    " + "\n    ".join(edges))
    return found


# ----- b2. imports run one way between the layers -----
# ARCHITECTURE.md's layers, lowest first: a module imports its own layer and those below, never
# one above (lazy imports inside functions included). tests/ is exempt; the first match wins.
LAYERS = (("ground", ("common",)),                       # framework-free: spec, data, results ...
          ("backends", ("backends",)),
          ("harness", ("common.harness",)),
          ("commands", ("run_all", "benchmarks", "tools")))


def layer_of(module: str) -> int | None:
    """The rank of a module's layer (the longest matching prefix); None for tests/ and others."""
    best, rank = -1, None
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), i
    return rank


def check_layers(root: Path) -> list[str]:
    graph, where = import_graph(root, in_functions=True)
    found = []
    for importer, targets in graph.items():
        low = layer_of(importer)
        if low is None:
            continue
        for target in sorted(targets):
            high = layer_of(target)
            if high is not None and high > low:
                found.append(f"{where[(importer, target)]}: {importer} ({LAYERS[low][0]}) imports "
                             f"{target} ({LAYERS[high][0]}), a layer above it")
    return ordered(found)


def package_graph(root: Path) -> dict[str, set[str]]:
    """Top packages (common.harness counted apart from common) -> the packages they import."""
    def package(module):
        return "common.harness" if layer_of(module) == 2 else module.split(".")[0]
    graph, _ = import_graph(root, in_functions=True)
    out: dict[str, set[str]] = {}
    for importer, targets in graph.items():
        out.setdefault(package(importer), set()).update(
            package(t) for t in targets if package(t) != package(importer))
    return out


# ----- c. no two modules share a file name -----
def backend_module_names(root: Path) -> frozenset[str]:
    base = root / "backends" / "base.py"
    if base.exists():
        for node in ast.parse(base.read_text(encoding="utf-8")).body:
            targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
            if any(isinstance(t, ast.Name) and t.id == "MODULES" for t in targets) and node.value:
                try:
                    return frozenset(ast.literal_eval(node.value))
                except ValueError:
                    break
    return BACKEND_MODULES_DEFAULT


def check_module_names(root: Path) -> list[str]:
    modules = load_modules(root)
    repeated = backend_module_names(root)
    by_stem: dict[str, list[str]] = {}
    for mod in modules.values():
        by_stem.setdefault(Path(mod.path).stem, []).append(mod.path)
    found = []
    for stem, paths in sorted(by_stem.items()):
        if stem in SHARED_NAMES:
            continue
        if stem in repeated:
            # by design once in each backends/<fw>/; anywhere else (common/ included) it is a clash
            others = [p for p in paths if not (p.startswith("backends/") and p.count("/") == 2)]
            if others:
                found.append(f"{', '.join(others)}: reuses the backend module name {stem!r}")
        elif len(paths) > 1:
            found.append(f"{', '.join(paths)}: share the module name {stem!r}")
    return sorted(found)


# ----- d. the results schema version in one place -----
def check_schema_version(root: Path) -> list[str]:
    found = []
    for mod in load_modules(root).values():
        # Tests may write a version literal: a fixture of version 1 must stay version 1.
        test = mod.path.startswith("tests/")
        for node in ast.walk(mod.tree):
            targets = []
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
                targets = [node.target]
            for t in targets:
                name = t.id if isinstance(t, ast.Name) else getattr(t, "attr", None)
                if name == "SCHEMA_VERSION" and mod.path != SCHEMA_HOME:
                    found.append(f"{mod.path}:{node.lineno}: assigns SCHEMA_VERSION")
                if (not test and isinstance(node, ast.Assign) and isinstance(t, ast.Subscript)
                        and _is_version_literal(t.slice, node.value)):
                    found.append(f"{mod.path}:{node.lineno}: writes a literal schema_version")
            if test:
                continue
            pairs = []
            if isinstance(node, ast.Dict):
                pairs = zip(node.keys, node.values)
            elif isinstance(node, ast.Call):
                pairs = ((ast.Constant(k.arg), k.value) for k in node.keywords if k.arg)
            for key, value in pairs:
                if key is not None and _is_version_literal(key, value):
                    found.append(f"{mod.path}:{node.lineno}: writes a literal schema_version")
    return ordered(found)


def _is_version_literal(key, value) -> bool:
    return (isinstance(key, ast.Constant) and key.value == "schema_version"
            and isinstance(value, ast.Constant) and type(value.value) is int)


# ----- e. small source files -----
def check_file_sizes(root: Path) -> list[str]:
    return [f"{mod.path}: {mod.lines} lines (at most {MAX_SOURCE_LINES} outside tests/)"
            for mod in load_modules(root).values()
            if not mod.path.startswith("tests/") and mod.lines > MAX_SOURCE_LINES]


# ----- f. heavy frameworks only in their backend -----
def allowed_frameworks(path: str) -> set[str]:
    parts = path.split("/")
    if parts[0] == "backends" and len(parts) >= 3:
        return {f for f, backend in FRAMEWORKS.items() if backend == parts[1]}
    if parts[:2] == ["benchmarks", "bare"] and len(parts) == 3:
        return {f for f, backend in FRAMEWORKS.items() if backend == Path(parts[2]).stem}
    return FRAMEWORK_EXCEPTIONS.get(path, set())


def check_framework_imports(root: Path) -> list[str]:
    """Every import statement, at any depth (a lazy import in a function counts): the subprocess
    tests of tests/unit/test_registry.py see only what importing common/ loads."""
    found = []
    for mod in load_modules(root).values():
        if mod.path.startswith("tests/"):
            continue  # tests compare against the frameworks directly
        allowed = allowed_frameworks(mod.path)
        for node in ast.walk(mod.tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in FRAMEWORKS and top not in allowed:
                    found.append(f"{mod.path}:{node.lineno}: imports {name}")
    return ordered(found)


# ----- the repository -----
def _assert_none(found: list[str], rule: str):
    assert not found, f"{rule}: {len(found)} violation(s)\n" + "\n".join(found)


def test_the_walk_sees_the_repository():
    modules = load_modules(REPO)
    assert {"run_all", "common.spec", "common.results.schema", "backends.pytorch.backend",
            "benchmarks.bare", "tests.unit.test_architecture"} <= set(modules)
    assert modules["common.data"].package == "common.data" and modules["run_all"].package == "run_all"
    assert not any(m.path.startswith(".venv/") for m in modules.values())


def test_no_private_name_crosses_a_package():
    _assert_none(check_private_names(REPO), "private names used from another package")


def test_no_import_cycle():
    _assert_none(check_import_cycles(REPO), "import cycles (module-level imports)")


def test_no_import_cycle_through_lazy_imports():
    # A function-level import that closes a cycle only hides it (a module that needs the other's
    # helpers and is needed by it: one of them belongs elsewhere).
    _assert_none(check_import_cycles(REPO, in_functions=True), "import cycles (imports in functions included)")


def test_imports_run_one_way_between_layers():
    _assert_none(check_layers(REPO), "upward imports (ground <- backends <- harness <- commands)")


def test_no_two_modules_share_a_name():
    _assert_none(check_module_names(REPO), "module names used twice")


def test_schema_version_is_defined_once():
    _assert_none(check_schema_version(REPO), f"schema version outside {SCHEMA_HOME}")
    assert "SCHEMA_VERSION" in (REPO / SCHEMA_HOME).read_text()


def test_no_source_file_over_the_limit():
    _assert_none(check_file_sizes(REPO), "source files too long")


def test_frameworks_are_imported_only_by_their_backend():
    _assert_none(check_framework_imports(REPO), "framework imports outside their backend")


# ----- each checker on a synthetic tree: it can fail, and it can pass -----
def write_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for d in {p.parent for p in root.rglob("*.py")}:
        if d != root and not (d / "__init__.py").exists():
            (d / "__init__.py").write_text("")
    return root


CASES = {
    "private_names": (check_private_names, {
        "common/util.py": "_helper = 1\nPUBLIC = 2\n_other = 3\n",
        "common/sub/__init__.py": "from common.util import _helper\n",  # common.sub: another package
        "common/local.py": "from common.util import _other\nfrom . import util\nx = util._helper\n",
        "benchmarks/bare/loop.py": "import common.util\ny = common.util._helper\n",
        "tests/unit/test_x.py": ("from common import util as u\n"
                                 "def test(monkeypatch):\n"
                                 "    monkeypatch.setattr(u, '_other', 0)\n"
                                 "    monkeypatch.setattr('common.util._helper', 0)\n"),
        "tools/t.py": "from common import util\ndef f(util=None):\n    return util._x\nz = util.__name__\n",
    }, [
        "benchmarks/bare/loop.py:2: common.util._helper",
        "common/sub/__init__.py:1: from common.util import _helper",
        "tests/unit/test_x.py:3: setattr(common.util, '_other')",
        "tests/unit/test_x.py:4: setattr('common.util._helper')",
    ], {
        "common/util.py": "def helper(): pass\n_private = 1\n",
        "common/local.py": "from common.util import _private\nfrom . import util\nx = util._private\n",
        "benchmarks/x.py": "from common import util\nimport numpy as np\ny = util.helper\nz = np._NoValue\n",
        "tools/u.py": ("from common import util\n"
                       "def f():\n    from json import loads as util\n    return util._x\n"
                       "class C:\n    util = None\n    def m(self):\n        return [util._y for util in ()]\n"),
    }),
    "import_cycles": (check_import_cycles, {
        "common/a.py": "from common import b\n",
        "common/b.py": "import common.c\n",
        "common/c.py": "from common.a import thing\n",
        "common/d.py": "from common import a\n",
    }, ["cycle among common.a, common.b, common.c:\n"
        "    common/a.py:1: common.a imports common.b\n"
        "    common/b.py:1: common.b imports common.c\n"
        "    common/c.py:1: common.c imports common.a"], {
        "common/a.py": "from common import b\n",
        "common/b.py": "def f():\n    from common import a\n",   # a lazy import breaks the cycle
        "common/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from common import a\n",
    }),
    "lazy_import_cycles": (functools.partial(check_import_cycles, in_functions=True), {
        "common/a.py": "from common import b\n",
        "common/b.py": "def f():\n    from common import a\n",
    }, ["cycle among common.a, common.b:\n"
        "    common/a.py:1: common.a imports common.b\n"
        "    common/b.py:2: common.b imports common.a"], {
        "common/a.py": "from common import b\n",
        "common/b.py": "def f():\n    from common import c\n",
        "common/c.py": "import numpy\nfrom common import atomic\n",
        "common/atomic.py": "",
    }),
    "layers": (check_layers, {
        "common/spec.py": "def names():\n    import backends\n",           # lazy: still upward
        "common/results/tables.py": "from common.harness.steplog import COLUMNS\n",
        "common/harness/steplog.py": "COLUMNS = ()\n",
        "backends/base.py": "from common.harness import timing\n",
        "backends/__init__.py": "",
        "common/harness/timing.py": "import run_all\n",
        "run_all.py": "",
    }, [
        "backends/base.py:1: backends.base (backends) imports common.harness.timing (harness), a layer above it",
        "common/harness/timing.py:1: common.harness.timing (harness) imports run_all (commands), a layer above it",
        "common/results/tables.py:1: common.results.tables (ground) imports common.harness.steplog (harness), a layer above it",
        "common/spec.py:2: common.spec (ground) imports backends (backends), a layer above it",
    ], {
        "common/spec.py": "from common import atomic\n", "common/atomic.py": "",
        "backends/base.py": "from common import spec\nfrom common.timing import x\n", "common/timing.py": "",
        "common/harness/worker.py": "import backends\nfrom backends import base\n",
        "benchmarks/throughput.py": "from common.harness import worker\nimport run_all\n",
        "run_all.py": "from common.harness import worker\n",
        "tests/unit/test_x.py": "import run_all\nfrom benchmarks import throughput\n",  # tests: exempt
    }),
    "module_names": (check_module_names, {
        "backends/torchy/models.py": "", "backends/jaxy/models.py": "",
        "common/models.py": "", "benchmarks/scaling.py": "", "common/results/scaling.py": "",
    }, [
        "benchmarks/scaling.py, common/results/scaling.py: share the module name 'scaling'",
        "common/models.py: reuses the backend module name 'models'",
    ], {
        "backends/torchy/models.py": "", "backends/jaxy/models.py": "",
        "benchmarks/__main__.py": "", "tools/__main__.py": "", "tests/conftest.py": "",
        "tests/unit/conftest.py": "",
    }),
    "schema_version": (check_schema_version, {
        "common/results/schema.py": "SCHEMA_VERSION = 2\n",
        "run_all.py": "SCHEMA_VERSION = 2\nr = {'schema_version': 2}\nr['schema_version'] = 1\n",
        "common/other.py": "r = dict(schema_version=1)\n",
    }, [
        "common/other.py:1: writes a literal schema_version",
        "run_all.py:1: assigns SCHEMA_VERSION",
        "run_all.py:2: writes a literal schema_version",
        "run_all.py:3: writes a literal schema_version",
    ], {
        "common/results/schema.py": "SCHEMA_VERSION = 2\n",
        "run_all.py": "from common.results import schema\nr = {'schema_version': schema.SCHEMA_VERSION}\n",
        "tests/unit/test_s.py": "V1 = {'schema_version': 1}\n",
    }),
    "file_sizes": (check_file_sizes, {
        "common/big.py": "x = 1\n" * 401, "tests/unit/test_big.py": "x = 1\n" * 900,
    }, ["common/big.py: 401 lines (at most 400 outside tests/)"], {
        "common/ok.py": "x = 1\n" * 400, "tests/unit/test_big.py": "x = 1\n" * 900,
    }),
    "framework_imports": (check_framework_imports, {
        "common/metrics/m.py": "def f():\n    import torch\n",
        "backends/pytorch/models.py": "import tensorflow as tf\nimport torch\n",
        "benchmarks/bare/mxnet.py": "from chainer import functions\n",
    }, [
        "backends/pytorch/models.py:1: imports tensorflow",
        "benchmarks/bare/mxnet.py:1: imports chainer",
        "common/metrics/m.py:2: imports torch",
    ], {
        "backends/pytorch/models.py": "import torch.nn as nn\n",
        "backends/tensorflow/models.py": "import keras\nfrom tensorflow import nn\n",
        "benchmarks/bare/chainer.py": "import chainermn\n",
        "common/metrics/inception_torch.py": "import torch\n",
        "tests/unit/test_t.py": "import torch, mxnet\n",
    }),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_checker_finds_the_violations(case, tmp_path):
    check, files, expected, _ = CASES[case]
    assert check(write_tree(tmp_path, files)) == expected


@pytest.mark.parametrize("case", sorted(CASES))
def test_checker_passes_a_clean_tree(case, tmp_path):
    check, _, _, clean = CASES[case]
    assert check(write_tree(tmp_path, clean)) == []


def test_backend_module_set_comes_from_base_when_defined(tmp_path):
    write_tree(tmp_path, {"backends/base.py": "MODULES = ('backend', 'models', 'extra')\n",
                          "backends/a/extra.py": "", "backends/b/extra.py": "", "common/parallel.py": ""})
    assert backend_module_names(tmp_path) == {"backend", "models", "extra"}
    assert check_module_names(tmp_path) == []  # 'parallel' is not in this set, and unique
