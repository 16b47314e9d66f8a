"""The layering of the package, read from the source: imports point one way.

faces (cli, commands, setuptools command, build backend) -> use cases -> adapters -> pure core.
Every module that exists when the tests run is checked, so new modules are held to it too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import setuptools_ghcr

PACKAGE = "setuptools_ghcr"
ROOT = Path(setuptools_ghcr.__file__).resolve().parent

#: The layers, lowest first. A module belongs to the first layer whose prefix names it; it may
#: import its own layer and the layers below it, never one above.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("core", ("errors", "core")),
    ("adapters", ("storage", "config")),
    ("use cases", ("usecases",)),
    (
        "faces",
        (
            "cli",
            "__main__",
            "commands",
            "progress",
            "serve",
            "wsgi",
            "setuptools_command",
            "build_meta",
        ),
    ),
)
#: Within the core, each module and the modules of ours it may import.
CORE: dict[str, frozenset[str]] = {
    "errors": frozenset(),
    "core.oci": frozenset({"errors"}),
    "core.targets": frozenset({"errors", "core.oci"}),
    "core.dists": frozenset({"errors", "core.oci"}),
    "core.wire_format": frozenset({"core.dists", "errors", "core.oci"}),
    "core.selection": frozenset({"errors"}),
    "core.dependencies": frozenset({"errors"}),
}
#: Third-party modules the pure core may import at all.
CORE_THIRD_PARTY = frozenset({"packaging"})
#: Where the command line, the index service and the setuptools/PEP 517 faces live.
FACES = LAYERS[-1][1]


@dataclass(frozen=True)
class Import:
    module: str  # absolute dotted name, e.g. "setuptools_ghcr.core.oci" or "requests.adapters"
    line: int
    top_level: bool  # at module level (not inside a function), TYPE_CHECKING blocks excluded
    type_checking: bool  # inside ``if TYPE_CHECKING:``


def _module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join((PACKAGE, *parts))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(node: ast.ImportFrom, module: str, is_package: bool, root: Path = ROOT) -> list[str]:
    if node.level == 0:
        base = node.module or ""
    else:
        anchor = module.split(".")
        if not is_package:
            anchor = anchor[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join([*anchor, node.module] if node.module else anchor)
    if base == PACKAGE or (node.module is None and node.level > 0):
        # ``from setuptools_ghcr import oci`` / ``from . import oci`` import submodules.
        return [f"{base}.{alias.name}" for alias in node.names]
    if base.startswith(PACKAGE + "."):
        # ``from setuptools_ghcr.core import oci`` imports a submodule where one exists.
        folder = root.joinpath(*base.split(".")[1:])
        if folder.is_dir():
            return [
                f"{base}.{alias.name}"
                if (folder / f"{alias.name}.py").is_file() or (folder / alias.name).is_dir()
                else base
                for alias in node.names
            ]
    return [base]


def _imports(path: Path, root: Path = ROOT) -> Iterator[Import]:
    module = _module_name(path, root)
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))

    def visit(nodes: list[ast.stmt], top_level: bool, type_checking: bool) -> Iterator[Import]:
        for node in nodes:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield Import(alias.name, node.lineno, top_level, type_checking)
            elif isinstance(node, ast.ImportFrom):
                for name in _resolve(node, module, is_package, root):
                    yield Import(name, node.lineno, top_level, type_checking)
            elif isinstance(node, ast.If) and _is_type_checking(node.test):
                yield from visit(node.body, False, True)
                yield from visit(node.orelse, top_level, type_checking)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield from visit(node.body, False, type_checking)
            elif isinstance(node, ast.ClassDef):
                yield from visit(node.body, top_level, type_checking)
            else:
                # try/with/if/for bodies keep the level of the statement that holds them.
                for field in ("body", "orelse", "finalbody", "handlers"):
                    children = getattr(node, field, None)
                    if isinstance(children, list):
                        inner = [c for c in children if isinstance(c, ast.stmt)]
                        inner += [
                            s for h in children if isinstance(h, ast.ExceptHandler) for s in h.body
                        ]
                        yield from visit(inner, top_level, type_checking)
                if isinstance(node, ast.Match):
                    for case in node.cases:
                        yield from visit(case.body, top_level, type_checking)

    yield from visit(tree.body, True, False)


MODULES: dict[str, list[Import]] = {
    _module_name(path): list(_imports(path)) for path in sorted(ROOT.rglob("*.py"))
}


def _short(module: str) -> str:
    return module.removeprefix(PACKAGE + ".")


def _ours(imports: list[Import]) -> set[str]:
    """The modules of this package named by ``imports``, as short names (``oci``)."""
    found = set()
    for item in imports:
        if item.module.startswith(PACKAGE + "."):
            found.add(_short(item.module))
        elif item.module == PACKAGE:
            found.add("__init__")
    return found


def _layer(module: str) -> int:
    """The index in ``LAYERS`` of the layer that holds ``module`` (a short or full name)."""
    short = _short(module)
    if short in (PACKAGE, "__version__"):
        return 0  # the package root holds the version and imports nothing heavy
    for index, (_name, prefixes) in enumerate(LAYERS):
        if any(short == prefix or short.startswith(prefix + ".") for prefix in prefixes):
            return index
    raise AssertionError(f"{module} is in no layer: add its package to LAYERS")


def _top(module: str) -> str:
    return module.split(".", maxsplit=1)[0]


def _is_face(module: str) -> bool:
    return _layer(module) == len(LAYERS) - 1


def test_the_walk_sees_the_package() -> None:
    assert {f"{PACKAGE}.{name}" for name in CORE} <= set(MODULES)
    # The walk must find imports of every kind, or the rules below would hold vacuously.
    oci = MODULES[f"{PACKAGE}.core.oci"]
    assert any(i.module == f"{PACKAGE}.errors" and i.top_level for i in oci)
    assert any(i.module == "hashlib" for i in oci)


@pytest.mark.parametrize("name", sorted(CORE))
def test_pure_core_imports_nothing_above_it(name: str) -> None:
    imports = MODULES[f"{PACKAGE}.{name}"]
    assert _ours(imports) <= CORE[name], f"{name} imports {sorted(_ours(imports) - CORE[name])}"


@pytest.mark.parametrize("name", sorted(CORE))
def test_pure_core_uses_only_the_standard_library_and_packaging(name: str) -> None:
    import sys

    imports = MODULES[f"{PACKAGE}.{name}"]
    third_party = {
        _top(i.module)
        for i in imports
        if _top(i.module) not in sys.stdlib_module_names and _top(i.module) != PACKAGE
    }
    assert third_party <= CORE_THIRD_PARTY, f"{name} imports {sorted(third_party)}"


def _may_import_requests(module: str) -> bool:
    return _short(module).startswith("storage.registry.")


@pytest.mark.parametrize("module", sorted(MODULES))
def test_only_the_http_adapters_import_requests(module: str) -> None:
    lines = [
        i.line for i in MODULES[module] if _top(i.module) == "requests" and not i.type_checking
    ]
    if not _may_import_requests(module):
        assert not lines, f"{module} imports requests (line {lines})"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_only_the_faces_import_setuptools_or_rich_at_module_level(module: str) -> None:
    # setuptools imports every registered command module to list commands, and the
    # library stays usable without a terminal: both are imported lazily elsewhere.
    heavy = {
        i.module: i.line
        for i in MODULES[module]
        if i.top_level and _top(i.module) in ("setuptools", "distutils", "rich")
    }
    if not _is_face(module):
        assert not heavy, f"{module} imports {heavy} at module level"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_nothing_below_the_faces_imports_a_face(module: str) -> None:
    if _is_face(module) or _short(module) == PACKAGE:
        return
    faces = sorted(
        {i.module for i in MODULES[module] if i.module.startswith(PACKAGE) and _is_face(i.module)}
    )
    assert not faces, f"{module} imports {faces}"


def _command_line(module: str) -> bool:
    short = _short(module)
    return short in ("cli", "__main__") or short == "commands" or short.startswith("commands.")


@pytest.mark.parametrize("module", sorted(MODULES))
def test_only_the_command_line_imports_its_commands(module: str) -> None:
    # `setup.py ghcr_upload` and the build backend publish through the use case, as the push
    # command does: a face that imported another face would take on its arguments and output.
    if _command_line(module):
        return
    found = sorted({i.module for i in MODULES[module] if _command_line(i.module)})
    assert not found, f"{module} imports {found}"


def test_the_command_line_rule_catches_a_face_importing_a_command() -> None:
    push = Import(f"{PACKAGE}.commands.push", 3, top_level=False, type_checking=False)
    assert _command_line(push.module)
    assert not _command_line(f"{PACKAGE}.usecases.push")
    assert not _command_line(f"{PACKAGE}.setuptools_command")


def test_the_package_root_stays_light() -> None:
    # ``import setuptools_ghcr`` happens whenever setuptools lists its commands.
    ours = _ours(MODULES[PACKAGE])
    assert not ours - {"errors"}, f"__init__ imports {sorted(ours)}"
    heavy = {_top(i.module) for i in MODULES[PACKAGE]} & {"requests", "rich", "setuptools"}
    assert not heavy


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m != PACKAGE))
def test_every_module_is_in_a_layer(module: str) -> None:
    assert 0 <= _layer(module) < len(LAYERS)


def _upward(module: str, imports: list[Import]) -> list[str]:
    """The imports of ours in ``imports`` that point to a layer above ``module``'s."""
    own = _layer(module)
    return sorted(
        f"{i.module} (line {i.line})"
        for i in imports
        if i.module.startswith(PACKAGE + ".") and not i.type_checking and _layer(i.module) > own
    )


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m != PACKAGE))
def test_imports_point_down_the_layers(module: str) -> None:
    upward = _upward(module, MODULES[module])
    assert not upward, f"{module} ({LAYERS[_layer(module)][0]}) imports upward: {upward}"


def test_the_layer_rule_catches_an_upward_import() -> None:
    lazy_face = Import(f"{PACKAGE}.commands.push", 3, top_level=False, type_checking=False)
    use_case = Import(f"{PACKAGE}.usecases.publish", 4, top_level=True, type_checking=False)
    assert _upward(f"{PACKAGE}.usecases.publish", [lazy_face]) == [
        f"{PACKAGE}.commands.push (line 3)"
    ]
    assert _upward(f"{PACKAGE}.storage.layout", [use_case]) == [
        f"{PACKAGE}.usecases.publish (line 4)"
    ]
    assert _upward(f"{PACKAGE}.commands.push", [use_case]) == []


# --- the walker itself -------------------------------------------------------------------------


def test_walker_classifies_levels(tmp_path: Path) -> None:
    source = (
        "from __future__ import annotations\n"
        "import json\n"
        "from typing import TYPE_CHECKING\n"
        "from . import oci\n"
        "from .errors import GhcrError\n"
        "try:\n"
        "    import tomllib\n"
        "except ImportError:\n"
        "    import tomli as tomllib\n"
        "if TYPE_CHECKING:\n"
        "    from setuptools_ghcr.cli import Context\n"
        "def lazy():\n"
        "    import rich\n"
        "class C:\n"
        "    import zlib\n"
    )
    fake_root = tmp_path / "pkg"
    fake_root.mkdir()
    (fake_root / "mod.py").write_text(source)
    found = {
        i.module: (i.top_level, i.type_checking)
        for i in _imports(fake_root / "mod.py", root=fake_root)
    }
    assert found == {
        "__future__": (True, False),
        "json": (True, False),
        "typing": (True, False),
        f"{PACKAGE}.oci": (True, False),
        f"{PACKAGE}.errors": (True, False),
        "tomllib": (True, False),
        "tomli": (True, False),
        f"{PACKAGE}.cli": (False, True),
        "rich": (False, False),
        "zlib": (True, False),
    }
