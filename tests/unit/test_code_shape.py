"""The size limits issue 22 set, held as tests so that no change quietly breaks them: no module of the run
engine over 300 lines, no class over 300, and no function over 60 lines, where a CLI command's Typer
signature (its options, one per parameter) does not count."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "xsoar_mt"
Function = ast.FunctionDef | ast.AsyncFunctionDef


def modules() -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path, ast.parse(path.read_text(), str(path))


def signature_lines(function: Function) -> int:
    """From `def` to the line before the body: the parameters (a Typer command declares its options there)."""
    return function.body[0].lineno - function.lineno


def counted_lines(function: Function, *, in_cli: bool) -> int:
    """The function's lines; in the CLI, without its signature nor those of the commands defined inside it."""
    lines = function.end_lineno - function.lineno + 1  # type: ignore[operator]
    if not in_cli:
        return lines
    nested = [n for n in ast.walk(function) if isinstance(n, Function) and n is not function]
    return lines - signature_lines(function) - sum(signature_lines(n) for n in nested)


def test_no_module_of_the_run_engine_is_over_300_lines() -> None:
    long = {
        str(path.relative_to(PACKAGE)): n
        for path in (PACKAGE / "engine").rglob("*.py")
        if (n := len(path.read_text().splitlines())) > 300
    }
    assert long == {}


def test_no_class_is_over_300_lines() -> None:
    long = {
        f"{path.relative_to(PACKAGE)}:{node.name}": node.end_lineno - node.lineno + 1  # type: ignore[operator]
        for path, tree in modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > 300  # type: ignore[operator]
    }
    assert long == {}


def test_no_function_is_over_60_lines_outside_typer_signatures() -> None:
    long = {
        f"{path.relative_to(PACKAGE)}:{node.name}": n
        for path, tree in modules()
        for node in ast.walk(tree)
        if isinstance(node, Function)
        and (n := counted_lines(node, in_cli=path.is_relative_to(PACKAGE / "cli"))) > 60
    }
    assert long == {}


def test_the_line_count_sees_a_long_function(tmp_path: Path) -> None:
    """The rule's own control: a 61-line function is counted as 61, and a CLI signature is left out."""
    body = "\n".join(f"    x{i} = {i}" for i in range(60))
    function = ast.parse(f"def f(\n    a: int,\n    b: int,\n) -> None:\n{body}\n").body[0]
    assert isinstance(function, ast.FunctionDef)
    assert counted_lines(function, in_cli=False) == 64
    assert counted_lines(function, in_cli=True) == 60
