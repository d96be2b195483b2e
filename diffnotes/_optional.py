"""Optional dependencies: a missing one fails at import, naming the extra that installs it.

The core of :mod:`diffnotes` needs NumPy, SciPy, Matplotlib and POT only. The learning modules
need the ``learn`` extra (torch, tqdm; scikit-learn for the 8x8 digits), the explorers the
``widgets`` extra (ipywidgets); ``all`` is both::

    pip install "diffnotes[learn]"      # diffnotes.score, diffnotes.dsb, diffnotes.images

:func:`require` imports one package or raises :class:`ImportError` with the command that fixes
it. A module that needs the ``learn`` extra checks it with one import line, placed before its
own ``import torch`` (the name is resolved by this module's ``__getattr__``)::

    from ._optional import score_needs  # noqa: F401  # isort: skip

so ``import diffnotes.score`` without torch says ``diffnotes.score needs torch: pip install
'diffnotes[learn]'`` instead of ``No module named 'torch'``.
"""

from __future__ import annotations

import importlib

__all__ = ["EXTRAS", "NEEDS", "require"]

EXTRAS = {
    "learn": {"torch": "torch", "tqdm": "tqdm", "sklearn": "scikit-learn"},
    "widgets": {"ipywidgets": "ipywidgets"},
}
"""Extra -> {import name: distribution name}, as in ``pyproject.toml``'s optional dependencies."""

NEEDS = {
    "score_needs": ("diffnotes.score", "learn", ("torch", "tqdm")),
    "dsb_needs": ("diffnotes.dsb", "learn", ("torch", "tqdm")),
    "images_needs": ("diffnotes.images", "learn", ("torch", "tqdm")),
    "discrete_images_needs": ("diffnotes.discrete_images", "learn", ("torch", "tqdm")),
    "flow_train_needs": ("diffnotes.flow_train", "learn", ("torch", "tqdm")),
    "guidance_needs": ("diffnotes.guidance", "learn", ("torch", "tqdm")),
    "ot_flow_train_needs": ("diffnotes.ot_flow_train", "learn", ("torch", "tqdm")),
}
"""The names a module imports from here -> (that module, its extra, the packages it needs)."""


def require(package: str, *, extra: str, module: str):
    """Import and return ``package``, or raise :class:`ImportError` naming ``module`` (which
    needs it) and the ``pip install`` command of ``extra``.

    Only a missing ``package`` is turned into this message; a package that is installed but
    fails to import (a broken build) raises its own error.
    """
    if extra not in EXTRAS or package not in EXTRAS[extra]:
        raise ValueError(f"package must be one of the {extra!r} extra's "
                         f"{sorted(EXTRAS.get(extra, {}))}, got {package!r}")
    try:
        return importlib.import_module(package)
    except ModuleNotFoundError as err:
        if err.name != package:
            raise                      # the package is there, something it needs is not
        dist = EXTRAS[extra][package]
        what = package if dist == package else f"{package} (the {dist} distribution)"
        raise ImportError(f"{module} needs {what}: pip install 'diffnotes[{extra}]'",
                          name=package) from err


def __getattr__(name: str):
    if name not in NEEDS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, extra, packages = NEEDS[name]
    for package in packages:
        require(package, extra=extra, module=module)
    return True
