"""Print how long each chapter notebook took to execute, from the jupyter-cache.

myst-nb (``execute_notebooks: cache``) records every notebook it executes in the
jupyter-cache of the build, with its execution time. This script lists them::

    python tools/exec_report.py _build/.jupyter_cache
    python tools/exec_report.py _build/test/_build/.jupyter_cache --max-seconds 180 --require-all

Exit status 1 when a notebook took longer than ``--max-seconds``, when a
notebook's last execution failed, or (``--require-all``) when a notebook of the
project has no cached execution.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cache", type=Path, help="path of the .jupyter_cache folder")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        help="fail when a notebook's execution took longer than this",
    )
    parser.add_argument(
        "--require-all",
        action="store_true",
        help="fail when a notebook of the project was not executed and cached",
    )
    args = parser.parse_args(argv)

    if not (args.cache / "global.db").is_file():
        if args.require_all:
            print(f"exec_report: no jupyter-cache at {args.cache}", file=sys.stderr)
            return 1
        print(f"exec_report: no jupyter-cache at {args.cache} (no notebook executed)")
        return 0

    from jupyter_cache import get_cache

    cache = get_cache(str(args.cache))
    latest: dict[str, object] = {}
    for record in cache.list_cache_records():
        prev = latest.get(record.uri)
        if prev is None or record.created > prev.created:
            latest[record.uri] = record
    project = {rec.uri: rec for rec in cache.list_project_records()}

    failures: list[str] = []
    cwd = Path.cwd()
    print("notebook execution times (jupyter-cache):")
    for uri in sorted(set(project) | set(latest)):
        try:
            name = os.path.relpath(uri, cwd)
        except ValueError:  # other drive (Windows)
            name = uri
        proj = project.get(uri)
        rec = latest.get(uri)
        if proj is not None and proj.traceback:
            print(f"  FAILED   {name}: last execution raised an error")
            failures.append(f"{name} failed to execute")
            continue
        if rec is None:
            print(f"  -------  {name}: not executed / not cached")
            if args.require_all:
                failures.append(f"{name} has no cached execution")
            continue
        seconds = (rec.data or {}).get("execution_seconds")
        if seconds is None:
            print(f"  ?        {name}: execution time unknown")
            continue
        flag = ""
        if args.max_seconds is not None and seconds > args.max_seconds:
            flag = f"  <-- over the limit of {args.max_seconds:g} s"
            failures.append(f"{name} took {seconds:.1f} s > {args.max_seconds:g} s")
        print(f"  {seconds:7.1f} s  {name}{flag}")

    if not project and not latest:
        print("  (no notebooks)")
    if failures:
        print("exec_report: FAIL: " + "; ".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
