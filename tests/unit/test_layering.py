"""The hexagon's rule: domain/ and application/ know nothing of the frameworks
and drivers that adapters/ and entrypoints/ wrap."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {"tornado", "redis", "sqlalchemy", "pymysql", "alembic", "jwt", "argon2", "dependency_injector",
             "orjson", "prometheus_client", "adapters", "entrypoints"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", ["domain", "application"])
def test_the_inner_layers_import_no_framework_or_driver(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files
    offenders = {str(f.relative_to(ROOT)): sorted(imported_modules(f) & FORBIDDEN) for f in files}
    assert {f: names for f, names in offenders.items() if names} == {}


# The one library the domain may use, and where: Unicode's script properties, which the
# standard library lacks, for the username rule. It is a library for text, not a framework.
DOMAIN_TEXT_LIBRARIES = {"regex": {"domain/lookalikes.py"}}


def test_the_domain_imports_only_the_standard_library_and_itself():
    import sys

    for path in sorted((ROOT / "domain").rglob("*.py")):
        for name in imported_modules(path):
            allowed_here = str(path.relative_to(ROOT)) in DOMAIN_TEXT_LIBRARIES.get(name, ())
            assert name in sys.stdlib_module_names or name in ("domain", "__future__") or allowed_here, (path, name)
