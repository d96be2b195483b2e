"""diffnotes: the package behind the *diffnotes* textbook on diffusion generative models.

One module per idea; each chapter of the book imports its machinery from here.

- :mod:`diffnotes.ctmc` -- finite-state continuous-time Markov chains (Chapter 1).
- :mod:`diffnotes.widgets` -- interactive figures for the notebooks.
"""

__version__ = "0.1.0"
