"""Re-exporting a module's parts under the module's own name.

A module that grew past the house limit of about 600 lines is split by idea into private parts
(``diffnotes/sde/_samplers.py`` ...), and the module, now a package, re-exports their public
names. :func:`set_module` makes the module the ``__module__`` of the re-exported classes and
functions (as NumPy's ``set_module`` does), so that ``repr``, pickles and the API appendix's
``automodule`` (type hints, base classes, cross-references) name them where readers import
them: ``diffnotes.sde.heun_flow``, not ``diffnotes.sde._flow.heun_flow``.
"""

from __future__ import annotations

import sys
import typing

__all__ = ["set_module"]


def set_module(module: str, namespace: dict, names) -> None:
    """Give the classes and functions ``namespace[name]`` for ``name`` in ``names`` the
    ``__module__`` ``module`` when they are defined in one of its parts (a module whose name
    starts with ``module + "."``); other objects (constants, names imported from elsewhere)
    are left as they are.

    A class's string annotations (``from __future__ import annotations``) are evaluated first,
    in the part that defines them, since :func:`typing.get_type_hints` looks names up in the
    globals of ``__module__``."""
    for name in names:
        obj = namespace[name]
        home = getattr(obj, "__module__", None) or ""
        if not (callable(obj) and home.startswith(module + ".")):
            continue
        if isinstance(obj, type) and "__annotations__" in vars(obj):
            scope = vars(sys.modules[home])
            try:
                hints = typing.get_type_hints(obj, scope, include_extras=True)
                obj.__annotations__ = {k: hints[k] for k in vars(obj)["__annotations__"]}
            except NameError:       # a name the part cannot resolve either: keep the strings
                pass
        obj.__module__ = module
