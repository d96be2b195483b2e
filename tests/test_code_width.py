"""Code fits the book's text column: no code block scrolls sideways in the HTML.

At the 1280-px window of ``tools/check_html.py`` the text column holds 77 characters of code
per line, 74 inside an exercise or a solution (the check prints the measured numbers). For
every ``book/*.md`` this test checks each line of a code cell (```` ```{code-cell} ````) and of
a fenced literal block (```` ```python ````, ```` ```bash ````, a bare ```` ``` ````, a
``{code-block}``) against that width; the narrower limit applies between
``{exercise-start}`` / ``{solution-start}`` and their ``-end``, and inside ``{exercise}`` /
``{solution}`` directive fences. A code cell's option lines (``:tags: [...]`` or a ``---``
YAML block at the top of the cell) are not shown and are not checked. Printed output wraps in
the HTML (``book/_static/diffnotes.css``) and cannot be checked statically.

The failure lists ``file:line (length > limit)`` for every line that is too long.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parents[1] / "book"
PAGES = sorted(BOOK.glob("*.md"))

WIDTH = 77            # characters of code per line in the text column at 1280 px
WIDTH_BOXED = 74      # inside an exercise or a solution (an indented box)

FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*(.*?)\s*$")
DIRECTIVE = re.compile(r"^\{([\w:-]+)\}")
CODE = {"code-cell", "code-block", "code", "sourcecode"}    # directives whose body is code
BOXES = {"exercise", "solution"}                             # directive fences drawn as a box
GATES = {"exercise-start": "exercise-end", "solution-start": "solution-end"}
NOT_TEXT = {"eval-rst", "math", "bibliography"}              # bodies that are neither
OPTION = re.compile(r"^\s*:[\w-]+:")


def code_lines(text: str) -> list[tuple[int, str, int]]:
    """``(line number, line, limit)`` for every line a MyST page shows in a code block."""
    lines = text.splitlines()
    start = 0
    if lines and lines[0].strip() == "---":                          # jupytext header
        start = next(i for i in range(1, len(lines)) if lines[i].strip() == "---") + 1
    out = []
    stack: list[tuple[str, str]] = []     # (fence, kind): code / literal / prose / box / skip
    gates: list[str] = []                 # the -end names of the open gated exercises
    head = yaml = False                   # at the top of a code cell / in its --- options
    for i in range(start, len(lines)):
        line = lines[i]
        kind = stack[-1][1] if stack else "prose"
        m = FENCE.match(line)
        if m:
            fence, info = m.group(1), m.group(2)
            if (not info and stack and fence[0] == stack[-1][0][0]
                    and len(fence) >= len(stack[-1][0])):
                stack.pop()
                continue
            if kind in ("prose", "box"):
                d = DIRECTIVE.match(info)
                name = d.group(1) if d else None
                if name is None or name in CODE:
                    new = "code" if name else "literal"
                elif name in GATES:
                    gates.append(GATES[name])
                    new = "skip"
                elif name in GATES.values():
                    if name in gates:
                        gates.remove(name)
                    new = "skip"
                elif name in BOXES:
                    new = "box"
                elif name in NOT_TEXT:
                    new = "skip"
                else:
                    new = "prose"                             # a directive: its body is text
                stack.append((fence, new))
                head, yaml = new == "code", False
                continue
            if kind == "skip":
                stack.append((fence, "skip"))
                continue
            # a fence inside code or a literal block is shown as code: fall through
        if kind not in ("code", "literal"):
            continue
        if head:
            if line.strip() == "---":
                yaml = not yaml
                continue
            if yaml or OPTION.match(line):
                continue
            head = False
        boxed = bool(gates) or any(k == "box" for _, k in stack)
        out.append((i + 1, line, WIDTH_BOXED if boxed else WIDTH))
    return out


def test_parser_finds_code_and_limits():
    page = "\n".join([
        "---", "jupytext: {}", "---", "text " + "x" * 100,
        "```{code-cell} ipython3", ":tags: [hide-input]", "a = 1", "```",
        "````{solution-start} ex-a", "````", "```{code-cell} ipython3", "b = 2", "```",
        "````{solution-end}", "````",
        "````{exercise} Title", "prose " * 30, "```python", "c = 3", "```", "````",
        "```{math}", "x" * 100, "```", "```bash", "ls", "```",
        "```{code-cell} ipython3", "---", "tags: [remove-output]", "---", "d = 4", "```",
    ])
    assert code_lines(page) == [(7, "a = 1", WIDTH), (12, "b = 2", WIDTH_BOXED),
                                (19, "c = 3", WIDTH_BOXED), (26, "ls", WIDTH),
                                (32, "d = 4", WIDTH)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_code_lines_fit_the_text_column(page):
    long = [f"{page.name}:{n} ({len(line)} > {limit})"
            for n, line, limit in code_lines(page.read_text(encoding="utf-8"))
            if len(line) > limit]
    assert not long, "code lines wider than the text column:\n" + "\n".join(long)
