"""plugins/ sits above everything: it uses ipsecconf's public API, never the CLI.

The module may import the service (engine.service), the config and plan layers, the
error types and the state layer's exported helpers (where the store lives, the KEK); the
module_utils import nothing of ipsecconf, so the sanity import test can load them bare.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ALLOWED = (
    "ipsecconf.engine.service",
    "ipsecconf.config",
    "ipsecconf.plan",
    "ipsecconf.errors",
    "ipsecconf.state",
)


def ipsecconf_imports(path: Path) -> list[tuple[str, list[str]]]:
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names if a.name.split(".")[0] == "ipsecconf"]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "ipsecconf":
            found.append((node.module or "", [a.name for a in node.names]))
    return found


def test_modules_use_the_public_api_only() -> None:
    modules = sorted((ROOT / "plugins" / "modules").glob("*.py"))
    assert modules, "no module found"
    seen = 0
    for path in modules:
        for module, names in ipsecconf_imports(path):
            seen += 1
            assert not module.startswith("ipsecconf.cli"), f"{path.name} imports the CLI"
            assert module.startswith(ALLOWED), f"{path.name}: {module} is not public API"
            exported = getattr(importlib.import_module(module), "__all__", None)
            if exported is not None:
                private = [
                    n
                    for n in names
                    if n not in exported and importlib.util.find_spec(f"{module}.{n}") is None
                ]
                assert not private, f"{path.name}: {module} does not export {private}"
            assert not any(n.startswith("_") for n in names), f"{path.name}: {names}"
    assert seen, "the module imports nothing from ipsecconf"


def test_module_utils_import_nothing_of_ipsecconf() -> None:
    for path in sorted((ROOT / "plugins" / "module_utils").glob("*.py")):
        assert ipsecconf_imports(path) == [], path.name
