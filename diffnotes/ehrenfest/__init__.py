r"""The Ehrenfest process, its Ornstein-Uhlenbeck limit and its time reversal (Chapter 2).

Conventions of the Ehrenfest module
-----------------------------------
* ``S`` balls, each either in the urn or outside. The state ``n`` in ``{0, ..., S}`` counts the
  balls in the urn. Each ball switches side at rate ``lambda(t) / 2``, so
  ``r(n+1 | n) = lambda(t) (S - n) / 2`` and ``r(n-1 | n) = lambda(t) n / 2``
  (:eq:`ch2-rates`). ``lambda`` is a :class:`diffnotes.schedules.Schedule` (``schedule=None``
  means ``lambda = 1``); only its clock ``Theta(t) = int_0^t lambda`` enters the laws.
* Generators follow :mod:`diffnotes.ctmc`: ``Q[i, j]`` is the rate of ``i -> j``; transition
  matrices are ``P[n0, n] = p_{t|0}(n | n0)``.
* The scaled state is ``x = (2 / sqrt(S)) (n - S/2)`` (:func:`scale`), a lattice of spacing
  ``delta = 2 / sqrt(S)`` on ``[-sqrt(S), sqrt(S)]``. As ``S -> infinity`` it follows the
  Ornstein-Uhlenbeck process ``dX = -lambda X dt + sqrt(2 lambda) dW`` (:eq:`ch2-ou`).
* In ``d`` dimensions every coordinate is an independent Ehrenfest process. Batches of states
  have shape ``(m, d)``. A *rates function* ``rates(n, t) -> (up, down)`` takes integer states
  ``n`` of shape ``(m, d)`` and forward times ``t`` of shape ``(m,)`` and returns the reverse-time
  rates of the moves ``n_i -> n_i + 1`` and ``n_i -> n_i - 1``, each of shape ``(m, d)``.
* The reverse process runs from forward time ``T`` down to ``t_min``. Randomness comes only from
  an explicit ``rng`` (an ``int`` seed or a :class:`numpy.random.Generator`).
* NumPy/SciPy only; torch is imported inside the learning functions
  (:func:`rate_matching_loss`, :func:`fit_rate_model`, :func:`model_rates`).

The code is in four parts, re-exported here: ``diffnotes/ehrenfest/_process.py`` (the forward
process, its closed forms and the OU scaling), ``_rates.py`` (the reverse rates and the transfer
of a score), ``_samplers.py`` (the reverse samplers) and ``_learning.py`` (rate matching).
"""

from __future__ import annotations

from .._public import set_module
from ._learning import fit_rate_model, model_rates, rate_matching_loss
from ._process import (
    generator,
    lattice_pmf,
    lattice_projection,
    log_transition_matrix,
    log_transition_prob,
    marginal,
    mean_variance,
    mixture_score,
    ou_coefficients,
    ou_distance,
    sample_forward,
    sample_stationary,
    scale,
    to_lattice,
    transition_matrix,
    unscale,
)
from ._rates import ExactReverseRates, reverse_rates, score_rates, score_to_rates
from ._samplers import ReverseRun, sample_reverse_exact, sample_reverse_tau

# private names and limits that tests and callers read from here
from ._learning import _torch_log_kernel as _torch_log_kernel  # isort: skip
from ._process import MAX_S as MAX_S  # isort: skip
from ._process import FFT_MAX_S as FFT_MAX_S  # isort: skip

__all__ = [
    "ExactReverseRates",
    "ReverseRun",
    "fit_rate_model",
    "generator",
    "lattice_pmf",
    "lattice_projection",
    "log_transition_matrix",
    "log_transition_prob",
    "marginal",
    "mean_variance",
    "mixture_score",
    "model_rates",
    "ou_coefficients",
    "ou_distance",
    "rate_matching_loss",
    "reverse_rates",
    "sample_forward",
    "sample_reverse_exact",
    "sample_reverse_tau",
    "sample_stationary",
    "scale",
    "score_rates",
    "score_to_rates",
    "to_lattice",
    "transition_matrix",
    "unscale",
]

set_module(__name__, globals(), __all__)
