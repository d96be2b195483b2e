"""Execute one chapter (a MyST notebook in ``book/``) as the book build does, without Sphinx.

    .venv/bin/python tools/run_chapter.py book/03_sde_score.md [--out /tmp/ch3.ipynb]

Runs every cell with ``book/`` as the working directory (as ``_config.yml``'s ``run_in_temp:
false`` does), prints the wall time of the slowest cells and of the whole chapter, and checks
that every ``{glue}`` reference in the text names a value that a cell glued, and that no
glued value is a NumPy scalar (whose text form myst-nb cannot format). Exits non-zero on a
cell error or a missing glue key; ``--out`` saves the executed notebook.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

GLUE_REF = re.compile(r"\{glue(?::[a-z]+)?\}`([^`:]+)")


def glued_keys(nb) -> dict[str, str]:
    """The glued keys with the text/plain form of their values."""
    keys = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            meta = out.get("metadata", {}).get("scrapbook", {})
            if "name" in meta:
                prefix = meta.get("mime_prefix", "")
                keys[meta["name"]] = out.get("data", {}).get(prefix + "text/plain", "")
    return keys


def main(argv=None) -> int:
    import jupytext
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("chapter", type=Path)
    ap.add_argument("--out", type=Path, default=None, help="save the executed notebook here")
    ap.add_argument("--timeout", type=int, default=300, help="seconds per cell (as the book)")
    args = ap.parse_args(argv)
    if not args.chapter.is_file():
        print(f"run_chapter: no such chapter: {args.chapter}", file=sys.stderr)
        return 2
    nb = jupytext.read(args.chapter)
    times = []
    client = NotebookClient(nb, timeout=args.timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(args.chapter.parent)}})
    t0 = time.perf_counter()
    rc = 0
    with client.setup_kernel():
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            c0 = time.perf_counter()
            try:
                client.execute_cell(cell, i)
            except CellExecutionError as err:
                print(f"cell {i} failed:\n{err}", file=sys.stderr)
                rc = 1
                break
            times.append((time.perf_counter() - c0, i, cell.source.splitlines()[:1]))
    total = time.perf_counter() - t0
    for dt, i, first in sorted(times, reverse=True)[:8]:
        print(f"  {dt:7.2f} s  cell {i}: {first[0][:70] if first else ''}")
    print(f"{args.chapter}: {total:.1f} s in all")
    if args.out:
        import nbformat
        nbformat.write(nb, args.out)
    text = args.chapter.read_text()
    glued = glued_keys(nb)
    missing = sorted(set(GLUE_REF.findall(text)) - set(glued))
    if rc == 0 and missing:
        print(f"glue keys used in the text but never glued: {', '.join(missing)}",
              file=sys.stderr)
        rc = 1
    # myst-nb formats {glue:text}`key:.2f` from the text/plain form, which for a NumPy scalar
    # under numpy 2 is "np.float64(0.5)" and cannot be parsed: glue float(...) instead
    numpy_reprs = sorted(k for k, v in glued.items() if v.startswith("np."))
    if rc == 0 and numpy_reprs:
        print(f"glued NumPy scalars (glue float(...) or int(...)): {', '.join(numpy_reprs)}",
              file=sys.stderr)
        rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
