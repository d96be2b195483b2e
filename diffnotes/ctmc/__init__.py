r"""Finite-state continuous-time Markov chains (Chapter 1).

Conventions, stated once for the whole module
----------------------------------------------
* States are ``0, 1, ..., n-1``. For the two-state chain of Chapter 1, ``A = 0`` and ``B = 1``.
* A *generator* ``Q`` is an ``(n, n)`` array with ``Q[i, j]`` the rate of jumping ``i -> j``
  (``i != j``); off-diagonal entries are ``>= 0`` and every row sums to zero, so
  ``-Q[i, i]`` is the total rate of leaving ``i``.
* Marginals are **row vectors**: ``p[i] = P(X_t = i)``. They obey the Kolmogorov forward
  equation (KFE) :math:`\dot p_t = p_t Q`, whose solution is :math:`p_t = p_0 e^{tQ}`
  (Chapter 1, :eq:`ch1-kfe-solution`).
* A time-inhomogeneous chain is described by a *rates function*: a callable that takes a 1-D
  array of times of shape ``(m,)`` and returns the generators at those times, shape
  ``(m, n, n)``. Wherever a rates function is accepted, a constant ``(n, n)`` generator is too.
* Randomness comes only from an explicit ``rng`` argument: an ``int`` seed or a
  :class:`numpy.random.Generator`.
* Populations of chains are arrays of states with shape ``(n_times, n_chains)``.

The code is in three parts, re-exported here: ``diffnotes/ctmc/_generators.py`` (generators,
marginals and closed forms), ``_reversal.py`` (time reversal) and ``_simulation.py``
(simulating populations of chains).
"""

from __future__ import annotations

from .._public import set_module
from ._generators import (
    check_generator,
    forward_marginals,
    independence_generator,
    metropolis_generator,
    path_adjacency,
    piecewise_marginals,
    solve_kfe,
    spectral_gap,
    stationary_distribution,
    transition_matrix,
    two_peaks,
    two_state_generator,
    two_state_marginals,
    uniform_generator,
)
from ._reversal import (
    empirical_marginals,
    reverse_generator,
    reverse_kernel,
    reverse_rates,
    step_interpolant,
)
from ._simulation import (
    Population,
    sample_states,
    sample_transitions,
    simulate,
    simulate_fixed_step,
)

# a private helper that a test reads from here, and the type of a rates argument
from ._simulation import _thinning_segments as _thinning_segments  # isort: skip
from ._generators import RatesLike as RatesLike  # isort: skip

__all__ = [
    "Population",
    "check_generator",
    "empirical_marginals",
    "forward_marginals",
    "independence_generator",
    "metropolis_generator",
    "path_adjacency",
    "piecewise_marginals",
    "reverse_generator",
    "reverse_kernel",
    "reverse_rates",
    "sample_states",
    "sample_transitions",
    "simulate",
    "simulate_fixed_step",
    "solve_kfe",
    "spectral_gap",
    "stationary_distribution",
    "step_interpolant",
    "transition_matrix",
    "two_peaks",
    "two_state_generator",
    "two_state_marginals",
    "uniform_generator",
]

set_module(__name__, globals(), __all__)
