"""The test suite's own rules: every subprocess a test starts is bounded by a timeout, and no
test of a hard dependency can skip (a broken install fails, never hides)."""

import ast
from pathlib import Path

import pytest

from conftest import ROOT

TESTS = ROOT / "tests"
BOUNDED = {"run", "check_call", "check_output"}


def calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            yield node


def scanned() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*.py") if p.name != Path(__file__).name)


@pytest.mark.parametrize("path", scanned(), ids=lambda p: str(p.relative_to(TESTS)))
def test_every_subprocess_has_a_timeout(path: Path) -> None:
    tree = ast.parse(path.read_text())
    for func in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
        body = list(calls(func))
        keywords = {k.arg for c in body for k in c.keywords}
        for call in body:
            owner = call.func.value
            if not (isinstance(owner, ast.Name) and owner.id == "subprocess"):
                continue
            name = call.func.attr
            if name in BOUNDED:
                assert "timeout" in {k.arg for k in call.keywords}, (
                    f"{path.name}:{call.lineno}: subprocess.{name} without timeout"
                )
            elif name == "Popen":  # bounded where it is waited for
                assert "timeout" in keywords, (
                    f"{path.name}:{call.lineno}: Popen never waited with timeout"
                )


@pytest.mark.parametrize("path", scanned(), ids=lambda p: str(p.relative_to(TESTS)))
def test_no_hard_dependency_is_imported_with_a_skip(path: Path) -> None:
    """`pytest.importorskip` turns a broken install into silently skipped tests: every library
    qfeat depends on is imported plainly (an optional one would be declared so)."""
    tree = ast.parse(path.read_text())
    for call in calls(tree):
        assert call.func.attr != "importorskip", f"{path.name}:{call.lineno}: importorskip"


def test_test_files_have_unique_basenames() -> None:
    """pytest imports test modules by basename (rootdir-relative packages are not used): two
    files of one name stop collection of the whole suite."""
    names = [p.name for p in TESTS.rglob("test_*.py")]
    assert sorted(n for n in set(names) if names.count(n) > 1) == []
