"""No code path from input: YAML is loaded safely, and the package neither renders templates
nor runs code it was given (no eval, exec or compile, no pickle or other object
deserialisers, no template engines, no subprocesses, no imports named at run time)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import edgeproxy
from edgeproxy.config import ConfigError, load

PACKAGE = Path(edgeproxy.__file__).parent
FORBIDDEN_MODULES = frozenset(
    {"pickle", "marshal", "shelve", "dill", "cloudpickle", "jinja2", "mako", "subprocess"}
)
FORBIDDEN_CALLS = frozenset({"eval", "exec", "compile", "__import__"})
# What of PyYAML may be used: the safe loader (of one document or a stream of them) and its
# errors, nothing that builds objects.
YAML_ALLOWED = frozenset(
    {"safe_load", "safe_load_all", "safe_dump", "safe_dump_all", "YAMLError", "MarkedYAMLError"}
)


def violations(source: str) -> list[str]:
    """Each construct in `source` that could turn data into code, with its line."""
    found = []
    for node in ast.walk(ast.parse(source)):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            names = []
        found += [f"{line}: imports {n}" for n in names if n.split(".")[0] in FORBIDDEN_MODULES]
        if isinstance(node, ast.Call):
            found += _call_violations(node, line)
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "yaml"
            and node.attr not in YAML_ALLOWED
        ):
            found.append(f"{line}: yaml.{node.attr}")
    return found


def _call_violations(node: ast.Call, line: int) -> list[str]:
    function = node.func
    if isinstance(function, ast.Name) and function.id in FORBIDDEN_CALLS:
        return [f"{line}: calls {function.id}()"]
    if isinstance(function, ast.Attribute) and function.attr in ("system", "popen"):
        return [f"{line}: calls .{function.attr}()"]
    dynamic = not all(isinstance(arg, ast.Constant) for arg in node.args)
    if isinstance(function, ast.Attribute) and function.attr == "import_module" and dynamic:
        return [f"{line}: imports a module named at run time"]
    return []


@pytest.mark.parametrize(
    "source",
    [
        "import pickle",
        "from jinja2 import Template",
        "import subprocess",
        "eval(text)",
        "exec(code)",
        "compile(text, 'x', 'exec')",
        "__import__(name)",
        "os.system(command)",
        "importlib.import_module(name)",
        "yaml.load(text, Loader=yaml.Loader)",
        "yaml.unsafe_load(text)",
        "yaml.full_load(text)",
    ],
)
def test_the_scan_finds_every_construct_it_looks_for(source: str) -> None:
    assert violations(source) != []


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_no_module_turns_data_into_code(path: Path) -> None:
    assert violations(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    "document",
    [
        "server: !!python/object/apply:os.system ['touch {marker}']\n",
        "!!python/object/new:os.system ['touch {marker}']\n",
        "models: !!python/name:os.system\n",
        "providers:\n  x: !!python/object:edgeproxy.config.Secret {{_value: '{marker}'}}\n",
    ],
)
def test_yaml_that_would_build_python_objects_is_refused(tmp_path: Path, document: str) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "edgeproxy.yaml"
    path.write_text(document.format(marker=marker), encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load(path, {})
    (problem,) = raised.value.problems
    assert problem.startswith(f"{path}: not valid YAML at line ")
    assert "could not determine a constructor for the tag" in problem
    assert "python/" in problem
    assert not marker.exists()
