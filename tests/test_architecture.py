"""Structural rules from docs/architecture.md."""

import ast
import sys
from pathlib import Path

SRC = Path(__file__).parents[1] / "src" / "costline"
STDLIB = set(sys.stdlib_module_names)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text("utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_core_is_pure() -> None:
    io_modules = {"socket", "http", "urllib", "sqlite3", "subprocess", "os", "io", "pathlib", "shutil", "time"}
    for path in sorted((SRC / "core").glob("*.py")):
        for module in _imports(path):
            top = module.split(".")[0]
            assert top in STDLIB or module.startswith("costline.core") or module == "costline.errors", (
                f"{path.name} imports {module}")
            assert top not in io_modules, f"{path.name} imports I/O module {module}"


def test_modules_stay_small() -> None:
    for path in SRC.rglob("*.py"):
        lines = len(path.read_text("utf-8").splitlines())
        assert lines <= 500, f"{path.relative_to(SRC)} has {lines} lines"


def test_no_grab_bag_modules() -> None:
    names = {p.stem for p in SRC.rglob("*.py")}
    assert not names & {"utils", "helpers", "misc", "common"}
