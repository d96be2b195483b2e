r"""Stochastic differential equations for diffusion models: forward noising, reverse-time
sampling and the probability-flow ODE (Chapter 3).

A forward SDE on :math:`[0, T]` is a drift and a diffusion coefficient,

.. math:: dX_t = f(X_t, t)\,dt + g(t)\,dW_t .

Any user-defined pair is an :class:`SDE` and is simulated by Euler-Maruyama
(:meth:`SDE.simulate`); its 1-D marginals solve the Fokker-Planck equation
(:func:`fokker_planck_1d`). The *linear* SDEs, :math:`f(x, t) = -a(t)\,x`, have a Gaussian
transition kernel :math:`X_t \mid X_0 = x_0 \sim \mathcal N(\alpha(t) x_0, \sigma(t)^2 I)` in
closed form (:class:`LinearSDE`): the Ornstein-Uhlenbeck process :class:`OU` (Chapter 2's
Ehrenfest limit), :class:`VPSDE`, :class:`SubVPSDE` and :class:`VESDE`.

Given a score :math:`s(x, t) \approx \nabla_x \log p_t(x)`, the time reversal
(Anderson, 1982) runs from :math:`T` down to 0,

.. math:: dX_t = \bigl[f(X_t, t) - g(t)^2 s(X_t, t)\bigr]\,dt + g(t)\,d\bar W_t ,

and the probability-flow ODE :math:`\dot x = f(x, t) - \tfrac12 g(t)^2 s(x, t)` has the same
marginals. Samplers: :func:`euler_maruyama`, :func:`predictor_corrector`,
:func:`probability_flow` (SciPy's ``solve_ivp``, with its number of function evaluations),
:func:`heun_flow` (the same ODE in a fixed number of second-order Heun steps on the EDM time
grid of Karras et al., 2022) and :func:`log_likelihood` (the instantaneous change of
variables).

A *score function* is a callable ``score(x, t)`` taking points of shape ``(m, d)`` and a float
time and returning an array of shape ``(m, d)``, such as
:meth:`diffnotes.mixtures.GaussianMixture.score_function` or a trained network wrapped by
:func:`diffnotes.score.score_function`. :func:`euler_maruyama` and
:func:`predictor_corrector` also run on torch tensors (on any device) when the starting points
are a tensor and ``rng`` a ``torch.Generator``; :func:`heun_flow` runs on torch tensors
whenever the starting points are one.

The code is in three parts, re-exported here: ``diffnotes/sde/_processes.py`` (the forward
SDEs and the Fokker-Planck solver), ``_samplers.py`` (the reverse-time SDE samplers) and
``_flow.py`` (the probability-flow ODE and the likelihood).
"""

from __future__ import annotations

from .._public import set_module
from ._flow import FlowRun, heun_flow, log_likelihood, probability_flow

# private names that diffnotes.score and diffnotes.images.sampling import from here
from ._flow import _fd_divergence as _fd_divergence
from ._flow import _flow_grid as _flow_grid
from ._processes import OU, SDE, VESDE, VPSDE, LinearSDE, SubVPSDE, fokker_planck_1d
from ._samplers import SampleRun, euler_maruyama, predictor_corrector

__all__ = [
    "OU",
    "SDE",
    "VESDE",
    "VPSDE",
    "FlowRun",
    "LinearSDE",
    "SampleRun",
    "SubVPSDE",
    "euler_maruyama",
    "fokker_planck_1d",
    "heun_flow",
    "log_likelihood",
    "predictor_corrector",
    "probability_flow",
]

set_module(__name__, globals(), __all__)
