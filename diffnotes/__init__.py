"""diffnotes: the package behind the *diffnotes* textbook on diffusion generative models.

One module per idea; each chapter of the book imports its machinery from here.

- :mod:`diffnotes.ctmc` -- finite-state continuous-time Markov chains (Chapter 1).
- :mod:`diffnotes.ehrenfest` -- the Ehrenfest process and its OU limit (Chapter 2).
- :mod:`diffnotes.schedules` -- time changes (noise schedules) shared with the SDEs.
- :mod:`diffnotes.mixtures` -- Gaussian mixtures with exact diffused scores.
- :mod:`diffnotes.metrics` -- distances between distributions.
- :mod:`diffnotes.plotting` -- figure helpers shared by the chapters.
- :mod:`diffnotes.widgets` -- interactive figures (ipywidgets) with static fallbacks.
- :mod:`diffnotes.utils` -- the compute device (CUDA when present) for the learning chapters.

Dependencies run one way: ``ctmc`` and ``metrics`` need only NumPy/SciPy; ``plotting`` adds
Matplotlib; ``widgets`` adds ipywidgets; torch is imported only where a network is trained.
"""

from . import ctmc, ehrenfest, metrics, mixtures, schedules

__all__ = ["ctmc", "ehrenfest", "metrics", "mixtures", "schedules"]
__version__ = "0.1.0"
