"""Every backend has the same shape: the modules and public names of backends/base.py's contract
(MODULES, REPLICAS_METHODS). Read from the source with ast, so a backend whose framework is not
installed is checked too, and a new backend (JAX next) is told what it still lacks."""
from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

import backends
from backends.base import MODULES, REPLICAS_METHODS
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


@pytest.mark.parametrize("name", backends.NAMES)
def test_backend_class_names_its_runtime_and_weights_modules(name):
    """The shared behaviour of BackendBase calls them (synchronize, peak_memory, load/export)."""
    cls = _class(_tree(name, "backend"), "Backend")
    assert [b.id for b in cls.bases if isinstance(b, ast.Name)] == ["BackendBase"]
    assert {"runtime", "weights", "nets"} <= _class_names(cls)


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
