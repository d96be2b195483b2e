"""Docstrings are rendered as math in the API appendix: a backslash in a non-raw docstring
turns ``\\beta`` into a backspace and ``\\frac`` into a form feed, which MathJax then chokes on.
Every docstring that contains a backslash must be a raw string, and no docstring may contain a
control character."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "diffnotes"


def _docstrings():
    # every module of the package, subpackages (diffnotes/images/...) included; the test ids
    # are the paths relative to diffnotes/, e.g. "sde.py:12" and "images/unet.py:70"
    for path in sorted(PACKAGE.rglob("*.py")):
        name = path.relative_to(PACKAGE).as_posix()
        source = path.read_text()
        lines = source.splitlines()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node, clean=False)
                if doc is not None:
                    first = node.body[0]
                    yield (f"{name}:{first.lineno}", doc,
                           lines[first.lineno - 1][first.col_offset:])


@pytest.mark.parametrize("where,doc,opening", list(_docstrings()),
                         ids=[w for w, _, _ in _docstrings()])
def test_docstrings_with_backslashes_are_raw(where, doc, opening):
    assert not any(ord(c) < 32 and c not in "\n\t" for c in doc), \
        f"{where}: control character in docstring (missing r prefix?)"
    if "\\" in doc:
        assert opening.startswith(("r'", 'r"')), f"{where}: docstring with a backslash is not raw"
