"""No hand-typed results in the prose: every decimal number and percentage a chapter's text
states must come from its code.

For every chapter ``book/0*.md`` the test finds each decimal number (``0.546``, ``1.5``,
``2e-3``) and each percentage (``2 %``, ``15%``, ``2\\,\\%``) in the text outside code cells,
inline and display math included. It skips what is not prose: the jupytext header, code
cells and literal code blocks, roles (``{glue:text}`...```, ``{cite:p}`...```, ``{ref}``...;
the content of ``{math}`` roles *is* scanned), literal ````code````, directive option lines
(``:label:``, ``:width:``), link targets and URLs, and HTML comments.

A number is allowed when the same literal appears in a code cell of that chapter -- as a
number or inside a string, comments excluded -- because then it is an input or a setting
(``beta_min = 0.1``), not a result; a percentage when the code holds the same ``15%`` or
``15 %``. Anything else must be inserted with myst-nb's glue (``{glue:text}`ch3-key:.2f```),
or be listed in :data:`ALLOWED` below with the reason it is not a computed result (a value
quoted from a cited paper, a textbook constant). A failure lists chapter, line and number.
"""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parents[1] / "book"
CHAPTERS = sorted(BOOK.glob("0*.md"))

# (chapter file name, literal) -> why the literal is not a computed result. A reason that
# starts with a test file's path ("tests/x.py: ...") quotes a bound or value checked there, and
# the literal must appear in that file.
ALLOWED: dict[tuple[str, str], str] = {
    ("04_schrodinger_bridge.md", "0.2"): "T = 20 x 0.01, the horizon of the DSB paper code's "
                                         "2-D configuration, quoted from its settings",
    ("04_schrodinger_bridge.md", "0.75"): "tests/test_ch4_claims.py: the closed form "
                                          "(1 + s^2 + s^4)/(1 + s^2)^2 at sigma = 1, exactly 3/4",
    ("04_schrodinger_bridge.md", "1.1"): "a version number: Hydra 1.1, whose composition order "
                                         "differs from the Hydra 1.0 the reference code pins",
    ("05_images.md", "1.6"): "tests/test_images.py: the exact-score oracle of the frozen-rates "
                             "step (50 steps on a black image end 1.6 levels too high), a "
                             "Monte Carlo run too slow for the chapter",
}

# a decimal (1.5, 0.546, 2.5e-4) or a power of ten written the code way (2e-3); unsigned
NUMBER = re.compile(r"(?<![\w.\\])(\d+\.\d+(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+)(?![\w]|\.\d)")
# a percentage: 15%, 2 %, 2.5\%, 2\,\%, 2~\%
PERCENT = re.compile(r"(?<![\w.\\])(\d+(?:\.\d+)?)\s*(?:\\[,;: !]|~)?\s*\\?%")
ROLE = re.compile(r"\{([\w:-]+)\}(`+)(.*?)\2")
LITERAL = re.compile(r"(`+)(.+?)\1")
URL = re.compile(r"\]\([^)]*\)|<?https?://[^\s)>]+>?")
FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*(.*?)\s*$")
OPTION = re.compile(r"^\s*:[\w-]+:")
TARGET = re.compile(r"^\s*\([\w:.-]+\)=\s*$")


def _parse(text: str):
    """``(prose, code)``: the prose lines as ``(line number, text)`` and the code cells'
    source, of a MyST notebook."""
    lines = text.splitlines()
    start = 0
    if lines and lines[0].strip() == "---":                      # jupytext header
        start = next(i for i in range(1, len(lines)) if lines[i].strip() == "---") + 1
    prose, code = [], []
    stack: list[tuple[str, str]] = []         # (fence, kind): kind in code / literal / prose
    in_comment = False
    for i in range(start, len(lines)):
        line = lines[i]
        m = FENCE.match(line)
        if m:
            fence, info = m.group(1), m.group(2)
            closes = (not info and stack and fence[0] == stack[-1][0][0]
                      and len(fence) >= len(stack[-1][0]))
            if closes:
                stack.pop()
                continue
            if not stack or stack[-1][1] == "prose":
                if info.startswith("{code-cell}"):
                    kind = "code"
                elif info.startswith("{") and not info.startswith(("{code", "{literal")):
                    kind = "prose"                                # a directive: its body is text
                else:
                    kind = "literal"
                stack.append((fence, kind))
                if kind == "prose":
                    title = info.split("}", 1)[1] if "}" in info else ""
                    prose.append((i + 1, title))                  # an exercise's title
                continue
            stack.append((fence, stack[-1][1]))                   # nested inside code
            continue
        kind = stack[-1][1] if stack else "prose"
        if kind == "code":
            code.append(line)
            continue
        if kind == "literal":
            continue
        if "<!--" in line:
            in_comment = "-->" not in line.split("<!--", 1)[1]
            line = line.split("<!--", 1)[0]
        elif in_comment:
            if "-->" in line:
                in_comment = False
                line = line.split("-->", 1)[1]
            else:
                continue
        if OPTION.match(line) or TARGET.match(line) or line.startswith("+++"):
            continue
        prose.append((i + 1, line))
    return prose, "\n".join(code)


def _strip(line: str) -> str:
    """A prose line without roles (bar ``{math}``), literal code and URLs."""
    line = ROLE.sub(lambda m: f" {m.group(3)} " if m.group(1) == "math" else " ", line)
    line = LITERAL.sub(" ", line)
    return URL.sub(" ", line)


def _code_literals(code: str) -> str:
    """The text of the code cells' numbers and strings, comments and magics dropped."""
    kept = []
    source = "\n".join(s for s in code.splitlines() if not s.lstrip().startswith(("%", "!")))
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source + "\n").readline):
            if tok.type in (tokenize.NUMBER, tokenize.STRING) or \
                    tok.type == getattr(tokenize, "FSTRING_MIDDLE", -1):
                kept.append(tok.string)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        kept = [re.sub(r"#.*", "", s) for s in source.splitlines()]
    return "\n".join(kept)


def _in_code(literal: str, code: str, percent: bool) -> bool:
    if percent:
        return re.search(rf"(?<![\w.]){re.escape(literal)}\s?%", code) is not None
    return re.search(rf"(?<![\w.]){re.escape(literal)}(?![\w]|\.\d)", code) is not None


def hand_typed(path: Path) -> list[tuple[int, str]]:
    """``(line, number)`` of every decimal or percentage in the prose of ``path`` that its code
    cells do not hold and :data:`ALLOWED` does not list."""
    prose, code = _parse(path.read_text())
    code = _code_literals(code)
    found = []
    for number, line in prose:
        text = _strip(line)
        spans = []
        for m in PERCENT.finditer(text):
            spans.append(m.span())
            if not _in_code(m.group(1), code, True) and \
                    (path.name, m.group(1) + "%") not in ALLOWED:
                found.append((number, m.group(1) + "%"))
        for m in NUMBER.finditer(text):
            if any(a <= m.start() < b for a, b in spans):
                continue
            if not _in_code(m.group(1), code, False) and (path.name, m.group(1)) not in ALLOWED:
                found.append((number, m.group(1)))
    return found


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_no_hand_typed_numbers_in_the_prose(chapter):
    found = hand_typed(chapter)
    assert not found, (f"{chapter.name}: numbers in the text that no code cell holds (glue "
                       "them, or allowlist them with a reason in tests/test_prose_numbers.py):"
                       "\n" + "\n".join(f"  {chapter.name}:{line}: {n}" for line, n in found))


def test_the_guard_finds_what_it_should(tmp_path):
    """The scanner on a small chapter: what it flags, what it skips, what code allows."""
    page = tmp_path / "09_demo.md"
    page.write_text("\n".join([
        "---", "jupytext:", "  version: 0.13", "---", "",
        "(ch9-demo)=", "# Demo",
        "The error falls to 0.546, within 2 % and 15%; $t = 2e-3$ and $$x = 1.5$$.",
        "Glued {glue:text}`ch9-a:.2f` and cited {cite:p}`paper2021` and ``0.77`` are skipped,",
        "so are [a link](https://arxiv.org/abs/2106.01357) and {math}`y = 3.25`, which is not.",
        "<!-- a comment with 4.44 -->",
        "```{figure} fig.png", ":width: 80%", ":name: fig-1.5", "Caption with 6.5.", "```",
        "```{code-cell} ipython3", "beta = 0.1  # a comment with 8.88", "label = 'at 7.5'",
        "```", "Settings 0.1 and 7.5 come from the code; 8.88 does not.",
        "Versions 1.2.3, ranges 0..8 and words like x1.5 are not numbers.", "",
    ]))
    assert hand_typed(page) == [(8, "2%"), (8, "15%"), (8, "0.546"), (8, "2e-3"), (8, "1.5"),
                                (10, "3.25"), (15, "6.5"), (21, "8.88")]


def test_the_allowlist_is_justified_and_used():
    root = BOOK.parent
    for (chapter, literal), reason in ALLOWED.items():
        assert (BOOK / chapter).is_file(), chapter
        assert len(reason) > 20, (chapter, literal)
        if reason.startswith("tests/"):
            quoted = reason.split(":", 1)[0]
            assert literal in (root / quoted).read_text(), (chapter, literal, quoted)
        prose, _ = _parse((BOOK / chapter).read_text())
        pattern = PERCENT if literal.endswith("%") else NUMBER
        seen = {m.group(1) + ("%" if literal.endswith("%") else "")
                for _, line in prose for m in pattern.finditer(_strip(line))}
        assert literal in seen, f"{chapter}: {literal} is allowlisted but no longer in the text"
