"""No module of ``scaler/`` or ``affinity/`` imports another's private name (``from X import
_name``, on one line or several): what one module uses of another is that module's public
interface (issue 24). A third-party module's private names (``tensorflow.python.util``'s) are
not ours to rename and are left alone."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("scaler", "affinity")
# None left (issue 24). An entry no longer found fails the test: the list only shrinks.
KNOWN_EXCEPTIONS: frozenset[tuple[str, str]] = frozenset()


def _module_of(path: str) -> str:
    """``scaler/simulate/des.py`` -> ``scaler.simulate.des`` (a package: its own name)."""
    parts = path[:-3].split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def private_imports(source: str, path: str) -> list[str]:
    """``module._name`` for every private name ``path`` imports from another module of the
    packages (relative imports resolved)."""
    found = []
    here = _module_of(path)
    package = here if path.endswith("__init__.py") else here.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ImportFrom):
            continue
        module = node.module or ""
        if node.level:
            base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
            module = ".".join(base + ([module] if module else []))
        if module.split(".")[0] not in PACKAGES or module == here:
            continue
        found += [f"{module}.{a.name}" for a in node.names
                  if a.name.startswith("_") and not a.name.startswith("__")]
    return found


def offenders(root: Path = ROOT) -> set[tuple[str, str]]:
    return {(rel, name)
            for package in PACKAGES for path in sorted((root / package).rglob("*.py"))
            for rel in [path.relative_to(root).as_posix()]
            for name in private_imports(path.read_text(), rel)}


def test_no_module_imports_another_modules_private_name():
    found = offenders()
    new = sorted(found - KNOWN_EXCEPTIONS)
    assert not new, ("private names imported across modules (make them public, or move the "
                     "code): " + ", ".join(f"{p}: {n}" for p, n in new))
    stale = sorted(KNOWN_EXCEPTIONS - found)
    assert not stale, ("no longer imported: remove from KNOWN_EXCEPTIONS: "
                       + ", ".join(f"{p}: {n}" for p, n in stale))


def test_the_rule_sees_every_form_and_only_ours():
    source = '''
from scaler.a import public, _one
from scaler.b import (
    Thing,
    _two,
)
from affinity.c import __version__, _three as alias
from tensorflow.python.util import _pywrap_util_port
from . import _four
from .sibling import _five
from scaler.simulate.des import _self_is_fine
import scaler.coordinator
'''
    assert private_imports(source, "scaler/simulate/des.py") == [
        "scaler.a._one", "scaler.b._two", "affinity.c._three", "scaler.simulate._four",
        "scaler.simulate.sibling._five"]
    assert private_imports("from .. import _x\n", "scaler/cli/__init__.py") == ["scaler._x"]
