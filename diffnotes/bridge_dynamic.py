r"""The dynamic Schrödinger bridge: stochastic control, the Schrödinger system, and the drift
of the Gaussian bridge as an SDE one can simulate (Chapter 4).

**Control.** Among the processes :math:`dX_t = u_t(X_t)\,dt + \sigma\,dW_t` started at
:math:`\mu`, Girsanov's theorem gives the KL divergence to the reference :math:`\mathbb Q`
(:math:`u = 0`, the same start law) as the expected energy of the control,

.. math::

    \mathrm{KL}(\mathbb P^u\,\|\,\mathbb Q) = \mathbb E_{\mathbb P^u}\int_0^1
    \frac{|u_t(X_t)|^2}{2\sigma^2}\,dt,

so the Schrödinger bridge is the cheapest steering of :math:`\mu` to :math:`\nu`: minimise the
energy subject to :math:`X_1 \sim \nu`. Its optimal control is a gradient,
:math:`u_t = \sigma^2\nabla\log\varphi_t`, where the pair :math:`(\varphi, \hat\varphi)`
solves the *Schrödinger system*

.. math::

    \partial_t\varphi + \tfrac{\sigma^2}{2}\Delta\varphi = 0,\qquad
    \partial_t\hat\varphi - \tfrac{\sigma^2}{2}\Delta\hat\varphi = 0,\qquad
    \varphi_0\hat\varphi_0 = \mu,\quad \varphi_1\hat\varphi_1 = \nu,

and the marginals are :math:`p_t = \varphi_t\hat\varphi_t`: :math:`\varphi` runs the heat
equation backwards from time 1, :math:`\hat\varphi` forwards from time 0, and the two boundary
conditions are the continuous version of IPF's row and column rescalings
(:func:`diffnotes.bridge.ipf`).

**The Gaussian bridge.** For :class:`diffnotes.bridge.GaussianBridge` the drift is affine,
:math:`u_t(x) = (m_1 - m_0) + A_t(x - m_t)` with :math:`A_t = G_t\Sigma_t^{-1}`,
:math:`G_t = (1-t)(C^\top - \Sigma_0) + t(\Sigma_1 - C) - \sigma^2 t I` (the covariance of
the bridge-matching target :math:`(X_1 - X_t)/(1-t)` with :math:`X_t`, see
:func:`diffnotes.bridge.gaussian_imf`; the bridge is its own Markovian projection), and
:math:`\Sigma_t` the covariance of :meth:`~diffnotes.bridge.GaussianBridge.marginal`
(:func:`drift`, :func:`drift_matrix`). :math:`A_t` is symmetric and solves the Riccati
equation :math:`\dot A_t = -A_t^2`, which is the backward heat equation for
:math:`\log\varphi_t = -\tfrac12 x^\top P_t x + q_t^\top x + c_t`, :math:`P_t = -A_t/\sigma^2`
(:func:`schrodinger_potentials`). The energy of the control is, in closed form,

.. math::

    \int_0^1 \frac{|m_1 - m_0|^2 + \operatorname{tr}(A_t\Sigma_t A_t^\top)}{2\sigma^2}\,dt
    = \mathrm{KL}(\mathbb P^\star\,\|\,\mathbb Q)

(:func:`control_cost`), which must agree with the static value
:meth:`~diffnotes.bridge.GaussianBridge.kl_to_reference` and with the Monte Carlo Girsanov
integral along simulated paths (:func:`simulate`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._checks import as_rng, positive_int, real_array, time_grid
from .bridge import GaussianBridge

__all__ = ["SchrodingerPotentials", "SimulatedBridge", "control_cost", "drift",
           "drift_matrix", "schrodinger_potentials", "simulate"]


def _bridge(bridge) -> GaussianBridge:
    if not isinstance(bridge, GaussianBridge):
        raise ValueError(f"bridge must be a diffnotes.bridge.GaussianBridge (see "
                         f"gaussian_bridge), got {type(bridge).__name__}")
    return bridge


def _time(t, name="t") -> np.ndarray:
    t = real_array(t, name, ndim=(0, 1))
    if np.any(t < 0) or np.any(t > 1):
        raise ValueError(f"{name} must lie in [0, 1], got values in [{t.min():.3g}, "
                         f"{t.max():.3g}]")
    return t


def _drift_matrix(b: GaussianBridge, t: np.ndarray) -> np.ndarray:
    """A_t for times ``t`` of shape (k,): shape (k, d, d)."""
    tt = t[:, None, None]
    C, s2, eye = b.cross_cov, b.sigma**2, np.eye(b.dim)
    G = (1 - tt) * (C.T - b.cov0) + tt * (b.cov1 - C) - s2 * tt * eye
    _, cov = b.marginal(t)
    # A = G Sigma^{-1}, i.e. A^T = Sigma^{-1} G^T (Sigma symmetric)
    return np.swapaxes(np.linalg.solve(cov, np.swapaxes(G, 1, 2)), 1, 2)


def drift_matrix(bridge: GaussianBridge, t):
    r"""The matrix :math:`A_t = G_t\Sigma_t^{-1}` of the bridge's affine drift
    :math:`u_t(x) = (m_1 - m_0) + A_t(x - m_t)` (see the module's introduction).

    ``t`` a float in :math:`[0, 1]` gives shape ``(d, d)``; ``t`` of shape ``(k,)`` gives
    ``(k, d, d)``. In one dimension with unit variances,
    :math:`A_t = (\dot\Sigma_t - \sigma^2)/(2\Sigma_t)`.
    """
    b = _bridge(bridge)
    t = _time(t)
    A = _drift_matrix(b, np.atleast_1d(t))
    return A[0] if t.ndim == 0 else A


def _drift(b: GaussianBridge, t: float, x: np.ndarray) -> np.ndarray:
    A = _drift_matrix(b, np.array([t]))[0]
    m_t = (1 - t) * b.mean0 + t * b.mean1
    return (b.mean1 - b.mean0) + (x - m_t) @ A.T


def drift(bridge: GaussianBridge, t: float, x) -> np.ndarray:
    r"""The drift :math:`u_t(x)` of the Schrödinger bridge ``bridge``: the SDE
    :math:`dX_t = u_t(X_t)\,dt + \sigma\,dW_t` started at :math:`\mathcal N(m_0, \Sigma_0)`
    has the bridge's law (marginals :meth:`~diffnotes.bridge.GaussianBridge.marginal`, the
    coupling :math:`C` at the ends).

    ``t`` a float in :math:`[0, 1]`, ``x`` of shape ``(n, d)``; returns shape ``(n, d)``.
    Also available as :meth:`diffnotes.bridge.GaussianBridge.drift`.
    """
    b = _bridge(bridge)
    t = _time(t)
    if t.ndim != 0:
        raise ValueError(f"t must be a float in [0, 1], got shape {t.shape}")
    x = real_array(x, "x", ndim=2)
    if x.shape[1] != b.dim:
        raise ValueError(f"x must have shape (n, {b.dim}), got {x.shape}")
    return _drift(b, float(t), x)


@dataclass(frozen=True)
class SimulatedBridge:
    r"""The outcome of :func:`simulate`.

    Attributes
    ----------
    times : ndarray of shape (k,)
        The requested times (each rounded to the step grid).
    paths : ndarray of shape (k, n, d)
        The simulated points at those times.
    x0, x1 : ndarray of shape (n, d)
        The start and end points.
    cost : ndarray of shape (n,)
        Per path, the Girsanov energy :math:`\int_0^1 |u_t(X_t)|^2/(2\sigma^2)\,dt`
        (left Riemann sum on the step grid); its mean estimates
        :math:`\mathrm{KL}(\mathbb P\,\|\,\mathbb Q)`.
    """

    times: np.ndarray
    paths: np.ndarray
    x0: np.ndarray
    x1: np.ndarray
    cost: np.ndarray


def simulate(bridge: GaussianBridge, n: int, rng, *, n_steps: int = 500, times=None
             ) -> SimulatedBridge:
    r"""Euler-Maruyama for :math:`dX_t = u_t(X_t)\,dt + \sigma\,dW_t` (:func:`drift`) from
    ``n`` draws of :math:`\mathcal N(m_0, \Sigma_0)`, in ``n_steps`` uniform steps on
    :math:`[0, 1]`; the weak error is :math:`O(1/\texttt{n\_steps})`.

    ``times`` (increasing, in :math:`[0, 1]`) are where the points are kept (default: none but
    the ends); each is rounded to the nearest grid time. Returns a :class:`SimulatedBridge`
    with the Girsanov control cost of every path.
    """
    b = _bridge(bridge)
    n = positive_int(n, "n")
    n_steps = positive_int(n_steps, "n_steps")
    rng = as_rng(rng)
    keep = np.zeros(0) if times is None else time_grid(times, "times")
    if keep.size and keep[-1] > 1:
        raise ValueError(f"times must lie in [0, 1], got max {keep[-1]:.3g}")
    idx = np.rint(keep * n_steps).astype(int)
    grid = np.linspace(0.0, 1.0, n_steps + 1)
    A = _drift_matrix(b, grid[:-1])
    h, d = 1.0 / n_steps, b.dim
    L = np.linalg.cholesky(b.cov0)
    x = rng.standard_normal((n, d)) @ L.T + b.mean0
    x0 = x.copy()
    out = np.empty((idx.size, n, d))
    out[idx == 0] = x
    cost = np.zeros(n)
    dm = b.mean1 - b.mean0
    for k in range(n_steps):
        t = grid[k]
        u = dm + (x - ((1 - t) * b.mean0 + t * b.mean1)) @ A[k].T
        cost += np.sum(u * u, 1) * h / (2 * b.sigma**2)
        x = x + h * u + b.sigma * np.sqrt(h) * rng.standard_normal((n, d))
        out[idx == k + 1] = x
    return SimulatedBridge(times=grid[idx], paths=out, x0=x0, x1=x, cost=cost)


def control_cost(bridge: GaussianBridge, n_quad: int = 64) -> float:
    r"""The energy :math:`\mathbb E\int_0^1 |u_t(X_t)|^2/(2\sigma^2)\,dt` of the bridge's
    control in closed form, :math:`\int_0^1 (|m_1 - m_0|^2 + \operatorname{tr}(A_t\Sigma_t
    A_t^\top))/(2\sigma^2)\,dt`, by Gauss-Legendre quadrature with ``n_quad`` nodes (the
    integrand is smooth; 64 nodes give about 12 digits for moderate :math:`\sigma`).
    By Girsanov it equals :meth:`~diffnotes.bridge.GaussianBridge.kl_to_reference`."""
    b = _bridge(bridge)
    n_quad = positive_int(n_quad, "n_quad", minimum=2)
    z, w = np.polynomial.legendre.leggauss(n_quad)
    t, w = (z + 1) / 2, w / 2
    A = _drift_matrix(b, t)
    _, cov = b.marginal(t)
    tr = np.einsum("kij,kjl,kil->k", A, cov, A)
    dm = b.mean1 - b.mean0
    return float(np.sum(w * (dm @ dm + tr)) / (2 * b.sigma**2))


@dataclass(frozen=True)
class SchrodingerPotentials:
    r"""The Schrödinger potentials of a Gaussian bridge at one time :math:`t`
    (:func:`schrodinger_potentials`), up to additive constants in their logarithms:
    :math:`\log\varphi_t(x) = -\tfrac12 x^\top P x + q^\top x`,
    :math:`\log\hat\varphi_t(x) = -\tfrac12 x^\top Q x + r^\top x`.

    Attributes
    ----------
    P, Q : ndarray of shape (d, d)
    q, r : ndarray of shape (d,)
    """

    P: np.ndarray
    q: np.ndarray
    Q: np.ndarray
    r: np.ndarray


def schrodinger_potentials(bridge: GaussianBridge, t: float) -> SchrodingerPotentials:
    r"""The solution :math:`(\varphi_t, \hat\varphi_t)` of the Schrödinger system for a
    Gaussian bridge at time ``t`` in :math:`[0, 1]`.

    :math:`\varphi_t` is read off the drift, :math:`u_t = \sigma^2\nabla\log\varphi_t`:
    :math:`P = -A_t/\sigma^2`, :math:`q = (m_1 - m_0 - A_t m_t)/\sigma^2`; and
    :math:`\hat\varphi_t = p_t/\varphi_t`: :math:`Q = \Sigma_t^{-1} - P`,
    :math:`r = \Sigma_t^{-1}m_t - q`. The heat equations of the system become
    :math:`\dot P = \sigma^2 P^2`, :math:`\dot q = \sigma^2 P q` (backward) and
    :math:`\dot Q = -\sigma^2 Q^2`, :math:`\dot r = -\sigma^2 Q r` (forward), which the tests
    check.
    """
    b = _bridge(bridge)
    t = _time(t)
    if t.ndim != 0:
        raise ValueError(f"t must be a float in [0, 1], got shape {t.shape}")
    t = float(t)
    A = _drift_matrix(b, np.array([t]))[0]
    m, cov = b.marginal(t)
    s2 = b.sigma**2
    P = -0.5 * (A + A.T) / s2
    q = (b.mean1 - b.mean0 - A @ m) / s2
    prec = np.linalg.inv(cov)
    return SchrodingerPotentials(P=P, q=q, Q=prec - P, r=prec @ m - q)
