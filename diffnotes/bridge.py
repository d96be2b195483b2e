r"""Schrödinger bridges: the static problem (entropic optimal transport) and the Gaussian case.

A diffusion model fixes a *reference* process :math:`\mathbb Q` that carries the data to noise,
and then learns to run it backwards. The Schrödinger bridge problem asks for more: among all
path measures :math:`\mathbb P` on :math:`[0, 1]` whose marginal at time 0 is :math:`\mu` (the
data) and whose marginal at time 1 is :math:`\nu` (the prior), find the one closest to the
reference,

.. math::

    \mathbb P^\star = \operatorname*{arg\,min}\big\{\mathrm{KL}(\mathbb P \,\|\, \mathbb Q) :
    \mathbb P_0 = \mu,\ \mathbb P_1 = \nu\big\},

a KL projection with two marginal constraints. Disintegrating both measures at their endpoints,
:math:`\mathrm{KL}(\mathbb P\,\|\,\mathbb Q) = \mathrm{KL}(\pi\,\|\,q_{01}) + \mathbb E_\pi
\mathrm{KL}(\mathbb P_{\cdot|x,y}\,\|\,\mathbb Q_{\cdot|x,y})`, so the optimum keeps the
reference's bridges :math:`\mathbb Q_{\cdot|x,y}` and only chooses the coupling :math:`\pi` of
the endpoints: the *static* problem :math:`\min_{\pi \in \Pi(\mu, \nu)}
\mathrm{KL}(\pi\,\|\,q_{01})`. For the Brownian reference :math:`dX_t = \sigma\,dW_t` started at
:math:`\mu`, :math:`q_{01}(x, y) = \mu(x)\,\mathcal N(y; x, \sigma^2 I)` and, since the first
marginal of :math:`\pi` is fixed,

.. math::

    \mathrm{KL}(\pi\,\|\,q_{01}) = \frac{1}{2\sigma^2}\int |x - y|^2\,d\pi - H(\pi)
    + \text{const},

that is :math:`\frac{1}{2\sigma^2}\big(\langle \pi, |x-y|^2\rangle - 2\sigma^2 H(\pi)\big)`:
entropic optimal transport with cost :math:`|x - y|^2` and regularisation
:math:`\varepsilon = 2\sigma^2` (POT's ``ot.sinkhorn(a, b, M, reg=2 * sigma**2)`` with
``M = ot.dist(x, y)``, the squared Euclidean distances), or equivalently with cost
:math:`|x - y|^2/2` and :math:`\varepsilon = \sigma^2`.

On discrete spaces the static problem is solved by *iterative proportional fitting* (IPF,
Sinkhorn's algorithm, :func:`ipf`): start from the reference kernel and alternately rescale its
rows to match :math:`\mu` and its columns to match :math:`\nu`. Each half-step is itself a KL
projection onto one marginal constraint; Diffusion Schrödinger Bridge (De Bortoli, Thornton,
Heng and Doucet, 2021) runs the same alternation on path measures, with score matching
standing in for the rescaling. :func:`static_bridge` does it for the Brownian reference between
two weighted point sets.

Between two Gaussians everything is explicit (:func:`gaussian_bridge`; Bunne, Hsieh, Cuturi and
Krause, 2023; the static part is entropic OT between Gaussians, Janati et al. 2020, Mallasto et
al. 2021): the optimal coupling is Gaussian with cross-covariance

.. math::

    C_\sigma = \tfrac12\big(\Sigma_0^{1/2} D_\sigma \Sigma_0^{-1/2} - \sigma^2 I\big),\qquad
    D_\sigma = \big(4\,\Sigma_0^{1/2}\Sigma_1\Sigma_0^{1/2} + \sigma^4 I\big)^{1/2},

and the bridge at time :math:`t` is the mixture of Brownian bridges
:math:`X_t = (1-t)X_0 + tX_1 + \sigma\sqrt{t(1-t)}\,Z`. As :math:`\sigma \to 0`, :math:`C_\sigma`
tends to the optimal-transport (Monge) coupling's
:math:`\Sigma_0^{1/2}(\Sigma_0^{1/2}\Sigma_1\Sigma_0^{1/2})^{1/2}\Sigma_0^{-1/2}`; as
:math:`\sigma \to \infty`, :math:`\sigma^2 C_\sigma \to \Sigma_0\Sigma_1` and the endpoints
become independent.

Conventions: points are arrays of shape ``(n, d)`` (or ``(n,)`` in one dimension); a covariance
may be given as a scalar (isotropic), a 1-D array (diagonal) or a full ``(d, d)`` matrix.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from ._checks import as_rng, distribution, positive_float, positive_int, real_array, time_grid

__all__ = ["GaussianBridge", "IPFResult", "brownian_kernel", "empirical_cross_cov",
           "gaussian_bridge", "gaussian_imf", "gaussian_kl", "ipf", "log_brownian_kernel",
           "plan_cross_cov", "static_bridge"]


# ---------------------------------------------------------------------------------------------
# discrete spaces: IPF / Sinkhorn


@dataclass(frozen=True)
class IPFResult:
    r"""The outcome of :func:`ipf` (and :func:`static_bridge`).

    Attributes
    ----------
    plan : ndarray of shape (n, m)
        The coupling :math:`\pi_{ij} = e^{f_i} K_{ij} e^{g_j}`, with row sums :math:`\mu` and
        column sums :math:`\nu` (the latter exactly, up to rounding, since every iteration ends
        with a column rescaling).
    errors : ndarray of shape (n_iter,)
        Marginal error after each iteration (a row rescaling followed by a column rescaling):
        :math:`\sum_i |\sum_j \pi_{ij} - \mu_i| + \sum_j |\sum_i \pi_{ij} - \nu_j|`.
    n_iter : int
        Number of iterations run.
    converged : bool
        Whether the last error is at most the requested ``tol``.
    kl : float
        :math:`\mathrm{KL}(\pi\,\|\,R)` to the reference coupling
        :math:`R_{ij} = \mu_i K_{ij} / \sum_l K_{il}` (the reference chain started from
        :math:`\mu`, which is also IPF's first half-step).
    log_u, log_v : ndarray of shapes (n,) and (m,)
        The log scalings :math:`f` and :math:`g` (discrete Schrödinger potentials); ``-inf``
        where a weight is zero.
    """

    plan: np.ndarray
    errors: np.ndarray
    n_iter: int
    converged: bool
    kl: float
    log_u: np.ndarray
    log_v: np.ndarray


def _points(x, name: str) -> np.ndarray:
    x = real_array(x, name, ndim=(1, 2))
    return x[:, None] if x.ndim == 1 else x


def log_brownian_kernel(x, y, sigma: float) -> np.ndarray:
    r"""Log of the Brownian transition density over unit time,
    :math:`\log \mathcal N(y_j; x_i, \sigma^2 I)`, shape ``(n, m)``.

    ``x`` of shape ``(n,)`` or ``(n, d)``, ``y`` of shape ``(m,)`` or ``(m, d)``, ``sigma > 0``.
    Use this rather than :func:`brownian_kernel` when ``sigma`` is small compared with the
    distances between points (the kernel itself then underflows to 0).
    """
    x, y = _points(x, "x"), _points(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same dimension, got {x.shape[1]} and "
                         f"{y.shape[1]}")
    sigma = positive_float(sigma, "sigma")
    sq = (np.sum(x * x, 1)[:, None] + np.sum(y * y, 1)[None, :] - 2 * x @ y.T)
    sq = np.maximum(sq, 0.0)
    d = x.shape[1]
    return -sq / (2 * sigma**2) - 0.5 * d * np.log(2 * np.pi * sigma**2)


def brownian_kernel(x, y, sigma: float) -> np.ndarray:
    r"""The Brownian transition density over unit time, :math:`K_{ij} = \mathcal N(y_j; x_i,
    \sigma^2 I)`, shape ``(n, m)`` (see :func:`log_brownian_kernel`)."""
    return np.exp(log_brownian_kernel(x, y, sigma))


def ipf(mu, nu, K, n_iter: int = 1000, tol: float = 1e-9, *, log_kernel: bool = False
        ) -> IPFResult:
    r"""Iterative proportional fitting (Sinkhorn): the coupling of ``mu`` and ``nu`` closest in
    KL to the reference kernel ``K``.

    Solves :math:`\min\{\mathrm{KL}(\pi\,\|\,K) : \pi\mathbf 1 = \mu,\ \pi^\top\mathbf 1 = \nu\}`,
    whose solution has the form :math:`\pi_{ij} = e^{f_i} K_{ij} e^{g_j}`, by alternating
    :math:`f \leftarrow \log\mu - \log\sum_j K_{\cdot j} e^{g_j}` (match the rows) and
    :math:`g \leftarrow \log\nu - \log\sum_i e^{f_i} K_{i\cdot}` (match the columns), in log
    space (:func:`scipy.special.logsumexp`), so that kernels far below the floating-point range
    are handled. Rescaling ``K`` by positive row or column factors does not change the plan.

    Parameters
    ----------
    mu : array of shape (n,)
        Row marginal (a probability vector; zeros allowed).
    nu : array of shape (m,)
        Column marginal (a probability vector; zeros allowed).
    K : array of shape (n, m)
        Reference kernel, entrywise > 0 (or its logarithm, finite, with ``log_kernel=True``).
    n_iter : int
        Maximum number of iterations (>= 1).
    tol : float
        Stop once the L1 marginal error (see :class:`IPFResult`) is at most ``tol`` (>= 0).
    log_kernel : bool
        Whether ``K`` holds :math:`\log K`.

    Returns
    -------
    IPFResult
        The plan, the error after each iteration, and :math:`\mathrm{KL}` to the reference.
    """
    mu = distribution(mu, "mu", single=True)
    nu = distribution(nu, "nu", single=True)
    K = real_array(K, "K", ndim=2)
    if K.shape != (mu.size, nu.size):
        raise ValueError(f"K must have shape ({mu.size}, {nu.size}) (len(mu), len(nu)), "
                         f"got {K.shape}")
    if not log_kernel and np.any(K <= 0):
        raise ValueError(f"K must be entrywise > 0 (pass log_kernel=True for a kernel that "
                         f"underflows), got min {K.min():.3g}")
    n_iter = positive_int(n_iter, "n_iter", minimum=1)
    tol = positive_float(tol, "tol", allow_zero=True)
    if not isinstance(log_kernel, bool):
        raise ValueError(f"log_kernel must be True or False, got {log_kernel!r}")
    logK = K if log_kernel else np.log(K)
    return _ipf_log(mu, nu, logK, n_iter, tol)


def _ipf_log(mu, nu, logK, n_iter, tol) -> IPFResult:
    with np.errstate(divide="ignore"):
        log_mu, log_nu = np.log(mu), np.log(nu)
    g = np.zeros(nu.size)
    row_lse = logsumexp(logK, axis=1)                 # log sum_j K_ij e^{g_j}
    errors = []
    for _ in range(n_iter):
        f = log_mu - row_lse                          # match the rows
        col_lse = logsumexp(logK + f[:, None], axis=0)
        g = log_nu - col_lse                          # match the columns
        row_lse = logsumexp(logK + g[None, :], axis=1)
        # the marginals of e^f K e^g, reusing the sums the next row update needs anyway
        err = (np.abs(np.exp(f + row_lse) - mu).sum() + np.abs(np.exp(g + col_lse) - nu).sum())
        errors.append(float(err))
        if err <= tol:
            break
    plan = np.exp(logK + f[:, None] + g[None, :])
    # KL(plan || R), R_ij = mu_i K_ij / sum_l K_il: log(plan / R) = f + g - log mu + lse_row(K)
    row_lse = logsumexp(logK, axis=1)
    pos = plan > 0
    rows = np.where(mu > 0, f - np.where(mu > 0, log_mu, 0.0), 0.0) + row_lse
    ratio = rows[:, None] + np.where(nu > 0, g, 0.0)[None, :]
    kl = float(np.sum(plan[pos] * np.broadcast_to(ratio, plan.shape)[pos]))
    return IPFResult(plan=plan, errors=np.array(errors), n_iter=len(errors),
                     converged=bool(errors[-1] <= tol), kl=max(kl, 0.0), log_u=f, log_v=g)


def static_bridge(x, mu, y, nu, sigma: float, n_iter: int = 1000, tol: float = 1e-9
                  ) -> IPFResult:
    r"""The static Schrödinger bridge between :math:`\sum_i \mu_i\delta_{x_i}` and
    :math:`\sum_j \nu_j\delta_{y_j}` for the Brownian reference :math:`dX = \sigma\,dW` on
    :math:`[0, 1]`.

    :func:`ipf` with the kernel :func:`log_brownian_kernel`; the plan is the entropic
    optimal-transport plan of POT's ``ot.sinkhorn(mu, nu, ot.dist(x, y), reg=2 * sigma**2)``.
    ``x`` of shape ``(n,)`` or ``(n, d)``, ``y`` of shape ``(m,)`` or ``(m, d)``.
    """
    x, y = _points(x, "x"), _points(y, "y")
    mu = distribution(mu, "mu", n=x.shape[0], single=True)
    nu = distribution(nu, "nu", n=y.shape[0], single=True)
    logK = log_brownian_kernel(x, y, sigma)
    return _ipf_log(mu, nu, logK, positive_int(n_iter, "n_iter", minimum=1),
                    positive_float(tol, "tol", allow_zero=True))


def plan_cross_cov(x, y, plan) -> np.ndarray:
    r"""Cross-covariance :math:`\mathrm{Cov}_\pi(X, Y) = \sum_{ij}\pi_{ij}(x_i - \bar x)
    (y_j - \bar y)^\top` of a coupling ``plan`` (shape ``(n, m)``, summing to 1) between atoms
    ``x`` (shape ``(n,)``/``(n, d)``) and ``y`` (shape ``(m,)``/``(m, d)``); shape ``(d, d)``."""
    x, y = _points(x, "x"), _points(y, "y")
    plan = real_array(plan, "plan", ndim=2)
    if plan.shape != (x.shape[0], y.shape[0]):
        raise ValueError(f"plan must have shape ({x.shape[0]}, {y.shape[0]}), got {plan.shape}")
    distribution(plan.ravel(), "plan", atol=1e-6)
    xc = x - plan.sum(1) @ x
    yc = y - plan.sum(0) @ y
    return xc.T @ plan @ yc


def empirical_cross_cov(x0, x1) -> np.ndarray:
    r"""Sample cross-covariance :math:`\frac{1}{n-1}\sum_k (x_{0,k} - \bar x_0)(x_{1,k} -
    \bar x_1)^\top` of paired samples ``x0``, ``x1`` (shape ``(n, d)`` or ``(n,)``, ``n >= 2``);
    shape ``(d, d)``."""
    x0, x1 = _points(x0, "x0"), _points(x1, "x1")
    if x0.shape != x1.shape:
        raise ValueError(f"x0 and x1 must have the same shape (paired samples), got {x0.shape} "
                         f"and {x1.shape}")
    if x0.shape[0] < 2:
        raise ValueError(f"x0 must hold at least 2 samples, got {x0.shape[0]}")
    a, b = x0 - x0.mean(0), x1 - x1.mean(0)
    return a.T @ b / (x0.shape[0] - 1)


# ---------------------------------------------------------------------------------------------
# Gaussians


def _dim_of(a) -> int:
    a = np.asarray(a)
    return 1 if a.ndim == 0 else a.shape[0]


def _mean(m, name, d) -> np.ndarray:
    m = real_array(m, name, ndim=(0, 1))
    if m.ndim == 0:
        return np.full(d, float(m))
    if m.shape != (d,):
        raise ValueError(f"{name} must be a float or have shape ({d},), got {m.shape}")
    return m


def _cov(c, name, d) -> np.ndarray:
    c = real_array(c, name, ndim=(0, 1, 2))
    if c.ndim == 0:
        c = float(c) * np.eye(d)
    elif c.ndim == 1:
        if c.shape != (d,):
            raise ValueError(f"{name} must be a float, have shape ({d},) (diagonal) or ({d}, {d}),"
                             f" got {c.shape}")
        c = np.diag(c)
    if c.shape != (d, d):
        raise ValueError(f"{name} must be a float, have shape ({d},) (diagonal) or ({d}, {d}), "
                         f"got {c.shape}")
    if not np.allclose(c, c.T, rtol=1e-10, atol=1e-12 * max(1.0, np.abs(c).max())):
        raise ValueError(f"{name} must be symmetric")
    try:
        np.linalg.cholesky(c)
    except np.linalg.LinAlgError:
        raise ValueError(f"{name} must be positive definite") from None
    return 0.5 * (c + c.T)


def _gaussians(args: dict) -> tuple[int, list]:
    """Validate alternating (mean, cov) arguments given as ``{name: value}``; common dim."""
    dims = set()
    for v in args.values():
        if not isinstance(v, numbers.Real) and np.ndim(v) >= 1:
            dims.add(_dim_of(v))
    if len(dims) > 1:
        raise ValueError(f"{', '.join(args)} must share one dimension, got sizes {sorted(dims)}")
    d = dims.pop() if dims else 1
    out = []
    for k, (name, v) in enumerate(args.items()):
        out.append(_mean(v, name, d) if k % 2 == 0 else _cov(v, name, d))
    return d, out


def _sym_fn(S, fn) -> np.ndarray:
    w, V = np.linalg.eigh(S)
    return (V * fn(np.maximum(w, 0.0))) @ V.T


def gaussian_kl(mean_a, cov_a, mean_b, cov_b) -> float:
    r"""Kullback-Leibler divergence :math:`\mathrm{KL}(\mathcal N(m_a, \Sigma_a)\,\|\,
    \mathcal N(m_b, \Sigma_b))`.

    .. math::

        \tfrac12\Big(\operatorname{tr}(\Sigma_b^{-1}\Sigma_a) + (m_b - m_a)^\top\Sigma_b^{-1}
        (m_b - m_a) - d + \log\frac{\det\Sigma_b}{\det\Sigma_a}\Big).

    Means are floats or shape ``(d,)``; covariances floats, shape ``(d,)`` (diagonal) or
    ``(d, d)`` (symmetric positive definite).
    """
    d, (ma, ca, mb, cb) = _gaussians({"mean_a": mean_a, "cov_a": cov_a, "mean_b": mean_b,
                                      "cov_b": cov_b})
    La, Lb = np.linalg.cholesky(ca), np.linalg.cholesky(cb)
    from scipy.linalg import solve_triangular

    M = solve_triangular(Lb, La, lower=True)
    r = solve_triangular(Lb, mb - ma, lower=True)
    logdet = 2 * (np.log(np.diag(Lb)).sum() - np.log(np.diag(La)).sum())
    return float(0.5 * (np.sum(M * M) + r @ r - d + logdet))


class GaussianBridge:
    r"""The Schrödinger bridge between :math:`\mathcal N(m_0, \Sigma_0)` and
    :math:`\mathcal N(m_1, \Sigma_1)` for the reference :math:`dX_t = \sigma\,dW_t` on
    :math:`[0, 1]`. Build it with :func:`gaussian_bridge`.

    Attributes
    ----------
    mean0, mean1 : ndarray of shape (d,)
    cov0, cov1 : ndarray of shape (d, d)
    sigma : float
    cross_cov : ndarray of shape (d, d)
        :math:`C = \mathrm{Cov}(X_0, X_1)` under the optimal (static) coupling.
    """

    def __init__(self, mean0, cov0, mean1, cov1, sigma: float):
        self.sigma = positive_float(sigma, "sigma")
        d, (m0, c0, m1, c1) = _gaussians({"mean0": mean0, "cov0": cov0, "mean1": mean1,
                                          "cov1": cov1})
        self.mean0, self.cov0, self.mean1, self.cov1 = m0, c0, m1, c1
        s2 = self.sigma**2
        w0, V0 = np.linalg.eigh(c0)
        r0 = (V0 * np.sqrt(w0)) @ V0.T                      # Sigma0^{1/2}
        r0i = (V0 / np.sqrt(w0)) @ V0.T                     # Sigma0^{-1/2}
        M = r0 @ c1 @ r0
        lam, V = np.linalg.eigh(0.5 * (M + M.T))
        lam = np.maximum(lam, 0.0)
        # D - sigma^2 I = 4 M (D + sigma^2 I)^{-1}: no cancellation when sigma is large
        dm = (V * (4 * lam / (np.sqrt(4 * lam + s2**2) + s2))) @ V.T
        self.cross_cov = 0.5 * r0 @ dm @ r0i

    @property
    def dim(self) -> int:
        """Dimension ``d`` of the space."""
        return self.mean0.size

    def __repr__(self) -> str:
        return f"GaussianBridge(d={self.dim}, sigma={self.sigma:g})"

    def joint_mean(self) -> np.ndarray:
        """Mean of :math:`(X_0, X_1)`, shape ``(2d,)``."""
        return np.concatenate([self.mean0, self.mean1])

    def joint_cov(self) -> np.ndarray:
        r"""Covariance of :math:`(X_0, X_1)`, the block matrix
        :math:`\begin{pmatrix}\Sigma_0 & C\\ C^\top & \Sigma_1\end{pmatrix}`, shape
        ``(2d, 2d)``."""
        C = self.cross_cov
        return np.block([[self.cov0, C], [C.T, self.cov1]])

    def marginal(self, t):
        r"""Mean and covariance of :math:`X_t`, for ``t`` in :math:`[0, 1]`.

        .. math::

            m_t = (1-t)m_0 + t m_1,\qquad
            \Sigma_t = (1-t)^2\Sigma_0 + t^2\Sigma_1 + t(1-t)(C + C^\top) + \sigma^2 t(1-t) I.

        ``t`` a float gives shapes ``(d,)`` and ``(d, d)``; ``t`` of shape ``(k,)`` gives
        ``(k, d)`` and ``(k, d, d)``.
        """
        t = real_array(t, "t", ndim=(0, 1))
        if np.any(t < 0) or np.any(t > 1):
            raise ValueError(f"t must lie in [0, 1], got values in [{t.min():.3g}, {t.max():.3g}]")
        tt = np.atleast_1d(t)[:, None, None]
        C = self.cross_cov
        cov = ((1 - tt) ** 2 * self.cov0 + tt**2 * self.cov1 + tt * (1 - tt) * (C + C.T)
               + self.sigma**2 * tt * (1 - tt) * np.eye(self.dim))
        mean = (1 - tt[:, :, 0]) * self.mean0 + tt[:, :, 0] * self.mean1
        if t.ndim == 0:
            return mean[0], cov[0]
        return mean, cov

    def sample(self, n: int, rng, times=None):
        r"""Draw ``n`` paths of the bridge.

        Returns ``(x0, x1)``, endpoint pairs from the optimal coupling, each of shape
        ``(n, d)``; with ``times`` (increasing, in :math:`[0, 1]`, shape ``(k,)``) returns
        ``(x0, x1, path)`` with ``path`` of shape ``(k, n, d)``: the same paths at those times,
        :math:`X_t = (1-t)x_0 + t x_1 + \sigma(W_t - tW_1)` (a Brownian bridge pinned at both
        ends, so values at different times are correctly correlated).
        """
        n = positive_int(n, "n", minimum=1)
        rng = as_rng(rng)
        if times is not None:
            times = time_grid(times, "times")
            if times[-1] > 1:
                raise ValueError(f"times must lie in [0, 1], got max {times[-1]:.3g}")
        d = self.dim
        L = np.linalg.cholesky(self.joint_cov())
        z = rng.standard_normal((n, 2 * d)) @ L.T + self.joint_mean()
        x0, x1 = z[:, :d], z[:, d:]
        if times is None:
            return x0, x1
        # Brownian motion at the requested times and at 1 (increments over a sorted grid)
        grid = np.concatenate([times, [1.0]])
        dt = np.diff(np.concatenate([[0.0], grid]))
        W = np.cumsum(np.sqrt(dt)[:, None, None] * rng.standard_normal((grid.size, n, d)), 0)
        tt = times[:, None, None]
        path = (1 - tt) * x0 + tt * x1 + self.sigma * (W[:-1] - tt * W[-1])
        return x0, x1, path

    def drift(self, t: float, x) -> np.ndarray:
        r"""The drift :math:`u_t(x)` of the bridge as an SDE, :math:`dX_t = u_t(X_t)\,dt +
        \sigma\,dW_t` from :math:`\mathcal N(m_0, \Sigma_0)`; ``x`` of shape ``(n, d)``, returns
        ``(n, d)`` (:func:`diffnotes.bridge_dynamic.drift`)."""
        from .bridge_dynamic import drift

        return drift(self, t, x)

    def reference_joint(self) -> tuple[np.ndarray, np.ndarray]:
        r"""Mean and covariance of :math:`(X_0, X_1)` under the reference started at
        :math:`\mathcal N(m_0, \Sigma_0)`: :math:`X_1 = X_0 + \sigma W_1`, so the covariance is
        :math:`\begin{pmatrix}\Sigma_0 & \Sigma_0\\ \Sigma_0 & \Sigma_0 + \sigma^2 I
        \end{pmatrix}`."""
        c0 = self.cov0
        cov = np.block([[c0, c0], [c0, c0 + self.sigma**2 * np.eye(self.dim)]])
        return np.concatenate([self.mean0, self.mean0]), cov

    def kl_to_reference(self) -> float:
        r""":math:`\mathrm{KL}(\mathbb P^\star\,\|\,\mathbb Q)` between the bridge and the
        reference path measure started at :math:`\mathcal N(m_0, \Sigma_0)`. Both share their
        Brownian bridges, so this is the KL between the endpoint laws (:func:`gaussian_kl` in
        dimension :math:`2d`, see :meth:`reference_joint`)."""
        m, c = self.reference_joint()
        return gaussian_kl(self.joint_mean(), self.joint_cov(), m, c)


def gaussian_bridge(mean0, cov0, mean1, cov1, sigma: float) -> GaussianBridge:
    r"""The closed-form Schrödinger bridge between :math:`\mathcal N(m_0, \Sigma_0)` and
    :math:`\mathcal N(m_1, \Sigma_1)` for the Brownian reference :math:`dX = \sigma\,dW` on
    :math:`[0, 1]` (Bunne, Hsieh, Cuturi and Krause, 2023).

    The optimal coupling is Gaussian with cross-covariance
    :math:`C = \tfrac12(\Sigma_0^{1/2} D \Sigma_0^{-1/2} - \sigma^2 I)`,
    :math:`D = (4\Sigma_0^{1/2}\Sigma_1\Sigma_0^{1/2} + \sigma^4 I)^{1/2}`, the solution of the
    first-order condition :math:`\Sigma_0^{-1}C = \sigma^{-2}(\Sigma_1 - C^\top\Sigma_0^{-1}C)`
    of :math:`\min_C\ -\operatorname{tr}C/\sigma^2 - \tfrac12\log\det
    \big(\begin{smallmatrix}\Sigma_0 & C\\ C^\top & \Sigma_1\end{smallmatrix}\big)`. In one
    dimension with unit variances, :math:`C = (\sqrt{4 + \sigma^4} - \sigma^2)/2`.

    Means are floats or shape ``(d,)``; covariances floats (isotropic), shape ``(d,)``
    (diagonal) or ``(d, d)`` (symmetric positive definite); ``sigma > 0``.
    """
    return GaussianBridge(mean0, cov0, mean1, cov1, sigma)


# ---------------------------------------------------------------------------------------------
# iterative Markovian fitting between Gaussians


def _imf_projection(c0, c1, C, sigma, direction) -> np.ndarray:
    r"""Cross-covariance of the Markovian projection of Brownian bridges over a Gaussian
    coupling with cross-covariance ``C`` (see :func:`gaussian_imf`)."""
    from scipy.integrate import solve_ivp

    d, s2, eye = c0.shape[0], sigma**2, np.eye(c0.shape[0])
    _sig = lambda t: (1 - t) ** 2 * c0 + t**2 * c1 + t * (1 - t) * (C + C.T + s2 * eye)  # noqa: E731

    if direction == "forward":      # K(t) = Cov(X_t, X_0): K' = A_t K, K(0) = Sigma_0

        def rhs(t, k):
            G = (1 - t) * (C.T - c0) + t * (c1 - C) - s2 * t * eye   # Cov(drift target, X_t)
            return (np.linalg.solve(_sig(t), G.T).T @ k.reshape(d, d)).ravel()
        start = c0
    else:                           # L(s) = Cov(X_{1-s}, X_1): L' = B_{1-s} L, L(0) = Sigma_1

        def rhs(s, k):
            t = 1 - s
            H = (1 - t) * (c0 - C.T) + t * (C - c1) - s2 * (1 - t) * eye
            return (np.linalg.solve(_sig(t), H.T).T @ k.reshape(d, d)).ravel()
        start = c1
    scale = max(np.abs(c0).max(), np.abs(c1).max())
    sol = solve_ivp(rhs, (0.0, 1.0), start.ravel(), method="DOP853", rtol=1e-12,
                    atol=1e-14 * scale)
    end = sol.y[:, -1].reshape(d, d)
    return end.T if direction == "forward" else end


def gaussian_imf(mean0, cov0, mean1, cov1, sigma: float, n_iter: int = 4,
                 start="independent") -> np.ndarray:
    r"""Exact iterative Markovian fitting (IMF) between :math:`\mathcal N(m_0, \Sigma_0)` and
    :math:`\mathcal N(m_1, \Sigma_1)` for the reference :math:`dX = \sigma\,dW` on
    :math:`[0, 1]`: the cross-covariance :math:`\mathrm{Cov}(X_0, X_1)` after every half-step
    of the exact counterpart of :class:`diffnotes.dsb.BridgeMatching`.

    A half-step takes the Brownian bridges :math:`X_t = (1-t)X_0 + tX_1 +
    \sigma\sqrt{t(1-t)}\,Z` over the current Gaussian coupling (cross-covariance :math:`C`) and
    replaces them by their Markovian projection: the SDE with drift
    :math:`v_t(x) = \mathbb E[(X_1 - X_t)/(1-t) \mid X_t = x]` started from :math:`\mu`
    (forward) or, in reverse time, with drift :math:`\mathbb E[(X_0 - X_t)/t \mid X_t = x]`
    started from :math:`\nu` (backward). Everything is jointly Gaussian, so the drift is linear,
    :math:`v_t(x) = v_t(m_t) + A_t(x - m_t)` with :math:`A_t = G_t\Sigma_t^{-1}`,
    :math:`G_t = (1-t)(C^\top - \Sigma_0) + t(\Sigma_1 - C) - \sigma^2 t I` and
    :math:`\Sigma_t` the bridges' covariance at time :math:`t`
    (:meth:`GaussianBridge.marginal`). The projection keeps every marginal
    :math:`\mathcal N(m_t, \Sigma_t)`, and :math:`K_t = \mathrm{Cov}(X_t, X_0)` solves
    :math:`\dot K_t = A_t K_t`, :math:`K_0 = \Sigma_0`; the new coupling is :math:`K_1^\top`
    (integrated to about :math:`10^{-11}` with :func:`scipy.integrate.solve_ivp`, DOP853; the
    backward half-step integrates the mirror-image ODE from :math:`\Sigma_1`). In continuous
    time both half-steps give the same Markov process (its drifts add up to
    :math:`\sigma^2\nabla\log p_t`), hence the same coupling; the alternation matters only
    for learned drifts, where each direction keeps one marginal exact.

    In one dimension :math:`G_t = (\dot\Sigma_t - \sigma^2)/2`, so the ODE integrates to

    .. math::

        C' = \sqrt{\Sigma_0\Sigma_1}\,\exp\Big(-\frac{\sigma^2}{2}\int_0^1
        \frac{dt}{\Sigma_t}\Big),

    and from the independent coupling with unit variances and :math:`\sigma = 1` the sequence
    is 0.5463, 0.6111, 0.6174, 0.6180, ... towards the Schrödinger bridge's
    :math:`(\sqrt 5 - 1)/2 = 0.6180` (:func:`gaussian_bridge`), the fixed point of the map.

    Parameters
    ----------
    mean0, cov0, mean1, cov1
        The two Gaussians, as in :func:`gaussian_bridge` (the means do not change the
        cross-covariances).
    sigma : float
        Reference noise level, > 0.
    n_iter : int
        Iterations (>= 1), each a forward and a backward half-step.
    start : ``"independent"`` or array of shape (d, d)
        The initial coupling's cross-covariance (``"independent"``: 0); the joint covariance
        must be positive definite.

    Returns
    -------
    ndarray of shape (2 n_iter, d, d)
        ``out[2k]`` after the forward half-step of iteration ``k + 1``, ``out[2k + 1]`` after
        its backward half-step.
    """
    sigma = positive_float(sigma, "sigma")
    n_iter = positive_int(n_iter, "n_iter")
    d, (_, c0, _, c1) = _gaussians({"mean0": mean0, "cov0": cov0, "mean1": mean1,
                                    "cov1": cov1})
    if isinstance(start, str):
        if start != "independent":
            raise ValueError(f"start must be 'independent' or a ({d}, {d}) cross-covariance, "
                             f"got {start!r}")
        C = np.zeros((d, d))
    else:
        C = real_array(start, "start", ndim=(0, 2))
        C = np.full((d, d), float(C)) if C.ndim == 0 and d == 1 else C
        if C.shape != (d, d):
            raise ValueError(f"start must be 'independent' or have shape ({d}, {d}), got "
                             f"shape {C.shape}")
        try:
            np.linalg.cholesky(np.block([[c0, C], [C.T, c1]]))
        except np.linalg.LinAlgError:
            raise ValueError("start must give a positive definite joint covariance "
                             "[[cov0, start], [start^T, cov1]]") from None
    out = []
    for _ in range(n_iter):
        for direction in ("forward", "backward"):
            C = _imf_projection(c0, c1, C, sigma, direction)
            out.append(C)
    return np.array(out)
