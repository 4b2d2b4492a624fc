"""Every backend has the same shape: the modules and public names of backends/base.py's contract
(MODULES, REPLICAS_METHODS), each with the same parameters in every backend. Read from the
source with ast, so a backend whose framework is not installed is checked too, and a new
backend is told what it still lacks."""
from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

import backends
from backends.base import FRAMEWORK_SHAPED, MODULES, REPLICAS_METHODS
from common.spec import model_spec

ROOT = Path(importlib.util.find_spec("backends").submodule_search_locations[0])


def _tree(name: str, module: str) -> ast.Module:
    return ast.parse((ROOT / name / f"{module}.py").read_text(), filename=f"{name}/{module}.py")


def _defined(tree: ast.Module) -> set[str]:
    """Top-level names a module defines: functions, classes, assignments and imports."""
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {n.id for t in node.targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def _class(tree: ast.Module, name: str) -> ast.ClassDef:
    found = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name]
    assert found, f"no class {name}"
    return found[0]


def _class_names(cls: ast.ClassDef) -> set[str]:
    return _defined(ast.Module(body=cls.body, type_ignores=[]))


def _parameters(body: list, name: str) -> tuple[str, ...] | None:
    """The parameter names, in order, of function `name` defined in body (*args as '*args',
    keyword-only ones after a '*'); None if body does not define it with def."""
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            a = node.args
            names = [p.arg for p in a.posonlyargs + a.args]
            if a.vararg:
                names.append("*" + a.vararg.arg)
            if a.kwonlyargs and not a.vararg:
                names.append("*")
            names += [p.arg for p in a.kwonlyargs]
            if a.kwarg:
                names.append("**" + a.kwarg.arg)
            return tuple(names)
    return None


def signatures(trees: dict[str, dict[str, ast.Module]]) -> dict[str, dict[str, tuple | None]]:
    """{"module.function" or "Replicas.method": {backend: parameters}} over the contract, from
    {backend: {module: tree}}: what must be the same in every backend."""
    out: dict[str, dict[str, tuple | None]] = {}
    for module, names in MODULES.items():
        for name in names:
            if name not in FRAMEWORK_SHAPED and not name[0].isupper():  # classes: below
                out[f"{module}.{name}"] = {b: _parameters(t[module].body, name) for b, t in trees.items()}
    for method in ("__init__", *REPLICAS_METHODS):
        out[f"Replicas.{method}"] = {b: _parameters(_class(t["parallel"], "Replicas").body, method)
                                     for b, t in trees.items()}
    return out


def differing(signatures_: dict[str, dict[str, tuple | None]]) -> list[str]:
    """One line per contract function whose parameters are not the same in every backend (or
    that a backend defines other than with def)."""
    lines = []
    for function, by_backend in signatures_.items():
        if len(set(by_backend.values())) > 1 or None in by_backend.values():
            shown = ", ".join(f"{b}({', '.join(p) if p is not None else 'not a def'})"
                              for b, p in by_backend.items())
            lines.append(f"{function}: {shown}")
    return lines


@pytest.mark.parametrize("name", backends.NAMES)
def test_backend_folder_has_exactly_the_contract_modules(name):
    assert backends.REGISTRY[name].module == f"backends.{name}.backend"
    found = {p.stem for p in (ROOT / name).glob("*.py")}
    assert found == set(MODULES), (f"backends/{name}/: missing {sorted(set(MODULES) - found)}, "
                                   f"not in the contract {sorted(found - set(MODULES))}")


@pytest.mark.parametrize("name", backends.NAMES)
@pytest.mark.parametrize("module", [m for m, names in MODULES.items() if names])
def test_module_defines_the_contract_names(name, module):
    missing = set(MODULES[module]) - _defined(_tree(name, module))
    assert not missing, f"backends/{name}/{module}.py lacks {sorted(missing)} (backends/base.py MODULES)"


@pytest.mark.parametrize("name", backends.NAMES)
def test_replicas_has_the_contract_methods(name):
    missing = set(REPLICAS_METHODS) - _class_names(_class(_tree(name, "parallel"), "Replicas"))
    assert not missing, f"backends/{name}/parallel.py: Replicas lacks {sorted(missing)}"


def test_contract_functions_have_the_same_parameters_in_every_backend():
    trees = {name: {module: _tree(name, module) for module in MODULES if MODULES[module]}
             for name in backends.NAMES}
    found = differing(signatures(trees))
    assert not found, "parameters differ between backends (backends/base.py):\n" + "\n".join(found)


def test_a_parameter_mismatch_is_reported():
    """The check above can fail: one backend naming a parameter otherwise, or taking another,
    or binding the name without def, is caught."""
    same = "def f(requested):\n    pass\nclass Replicas:\n    def rows(self, batch_size): pass\n"
    trees = {"a": ast.parse(same), "b": ast.parse(same.replace("(requested)", "(requested, local_rank)")),
             "c": ast.parse(same.replace("batch_size", "n")), "d": ast.parse("f = print\n" + same[24:])}
    assert _parameters(trees["a"].body, "f") == ("requested",)
    assert _parameters(ast.parse("def g(a, *rest, k=1, **kw): pass").body, "g") == ("a", "*rest", "k", "**kw")
    assert _parameters(ast.parse("def g(a, *, k): pass").body, "g") == ("a", "*", "k")
    found = differing({"runtime.f": {n: _parameters(t.body, "f") for n, t in trees.items()},
                       "Replicas.rows": {n: _parameters(_class(t, "Replicas").body, "rows")
                                         for n, t in trees.items()}})
    assert found == ["runtime.f: a(requested), b(requested, local_rank), c(requested), d(not a def)",
                     "Replicas.rows: a(self, batch_size), b(self, batch_size), c(self, n), "
                     "d(self, batch_size)"]


@pytest.mark.parametrize("name", backends.NAMES)
def test_backend_class_names_its_runtime_and_weights_modules(name):
    """The shared behaviour of BackendBase calls them (probe, device_info, synchronize,
    peak_memory, load/export)."""
    cls = _class(_tree(name, "backend"), "Backend")
    assert [b.id for b in cls.bases if isinstance(b, ast.Name)] == ["BackendBase"]
    assert {"runtime", "weights"} <= _class_names(cls)


@pytest.mark.parametrize("name", backends.NAMES)
def test_backend_modules_name_the_device_self_device(name):
    """One attribute name for the device in every backend (the framework's own device object)."""
    source = (ROOT / name / "backend.py").read_text()
    assert "self.device = runtime.select_device(" in source
    assert "self.ctx" not in source


def test_a_missing_module_or_name_is_reported(tmp_path):
    """The checks above can fail: a module without the contract's names is caught."""
    tree = ast.parse("import os\nfrom x import y as z\nA, (B, C) = 1, (2, 3)\nD: int = 4\n"
                     "def e(): pass\nclass F:\n    def rows(self): pass\n")
    assert _defined(tree) == {"os", "z", "A", "B", "C", "D", "e", "F"}
    assert set(REPLICAS_METHODS) - _class_names(_class(tree, "F")) == {"mean_losses", "info"}
    assert set(MODULES["runtime"]) - _defined(tree) == set(MODULES["runtime"])


def test_layer_local_names_are_the_in_network_names():
    spec = model_spec("mnist32")
    g0, d1 = spec.generator[0], spec.discriminator[1]
    assert (g0.local_name, g0.bn_local_name, g0.activation_local_name) == ("deconv0", "bn0", "relu0")
    assert g0.name == "G.deconv0" and g0.bn_name == "G.bn0"
    assert (d1.local_name, d1.bn_local_name, d1.name, d1.bn_name) == ("conv1", "bn1", "D.conv1", "D.bn1")
    assert spec.discriminator[0].bn_local_name is None and spec.discriminator[0].bn_name is None
