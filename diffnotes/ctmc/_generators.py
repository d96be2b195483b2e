r"""Generators and their closed forms (part of :mod:`diffnotes.ctmc`, Chapter 1): the generators
of the chapter (two-state, uniform, independence, Metropolis), marginals by the matrix exponential
or the Kolmogorov forward equation, the two-state closed form, the stationary law and the
spectral gap. NumPy/SciPy.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.integrate
import scipy.linalg

from .._checks import distribution, positive_float, positive_int, real_array, time_grid

__all__ = ["check_generator", "forward_marginals", "independence_generator",
           "metropolis_generator", "path_adjacency", "piecewise_marginals", "solve_kfe",
           "spectral_gap", "stationary_distribution", "transition_matrix", "two_peaks",
           "two_state_generator", "two_state_marginals", "uniform_generator"]


RatesLike = np.ndarray | Callable[[np.ndarray], np.ndarray]


# --------------------------------------------------------------------------------------------
# Generators
# --------------------------------------------------------------------------------------------
def check_generator(Q, name: str = "Q", atol: float = 1e-9) -> np.ndarray:
    """Validate a generator matrix and return it as a float array.

    Raises
    ------
    ValueError
        If ``Q`` is not square, has a negative off-diagonal rate, a non-finite entry, or a row
        that does not sum to zero (within ``atol`` times the row's largest rate).
    """
    Q = real_array(Q, name, ndim=2)
    n = Q.shape[0]
    if Q.shape != (n, n) or n < 1:
        raise ValueError(f"{name} must be a square (n, n) generator matrix, got shape {Q.shape}")
    off = Q - np.diag(np.diag(Q))
    if np.any(off < 0):
        i, j = np.argwhere(off < 0)[0]
        raise ValueError(
            f"{name} must have non-negative off-diagonal rates; {name}[{i}, {j}] = {Q[i, j]:.3g}"
        )
    scale = np.maximum(1.0, np.abs(Q).max(axis=1))
    row_sums = Q.sum(axis=1)
    if np.any(np.abs(row_sums) > atol * scale):
        i = int(np.argmax(np.abs(row_sums) / scale))
        raise ValueError(
            f"every row of {name} must sum to zero (diagonal = minus the exit rate); "
            f"row {i} sums to {row_sums[i]:.3g}"
        )
    return Q


def two_state_generator(u_ab: float, u_ba: float) -> np.ndarray:
    r"""Generator of the two-state chain on (A, B) = (0, 1), :eq:`ch1-generator`.

    Parameters
    ----------
    u_ab, u_ba : float
        The rates ``A -> B`` and ``B -> A``, both ``>= 0``.

    Returns
    -------
    ndarray of shape (2, 2)
        :math:`Q = \begin{pmatrix} -u_{AB} & u_{AB} \\ u_{BA} & -u_{BA} \end{pmatrix}`.
    """
    u_ab = positive_float(u_ab, "u_ab", allow_zero=True)
    u_ba = positive_float(u_ba, "u_ba", allow_zero=True)
    return np.array([[-u_ab, u_ab], [u_ba, -u_ba]])


def uniform_generator(n: int, rate: float = 1.0) -> np.ndarray:
    r"""The uniform noising chain on ``n`` states: jump to each other state at rate ``rate / n``.

    Its stationary distribution is uniform and its spectral gap is exactly ``rate``
    (:ref:`ch1-n-states`): :math:`Q = \tfrac{\text{rate}}{n} \mathbf{1}\mathbf{1}^\top
    - \text{rate}\, I`. For ``n = 2`` this is the note's forward chain with
    ``u_ab = u_ba = rate / 2``.
    """
    n = positive_int(n, "n", minimum=2)
    rate = positive_float(rate, "rate")
    return rate / n * np.ones((n, n)) - rate * np.eye(n)


def independence_generator(p, rate: float = 1.0) -> np.ndarray:
    r"""The "classical" chain with equilibrium ``p`` and global moves: ``Q[x, y] = rate * p[y]``.

    For two states this is the note's classical sampler ``u_ab = C p_B``, ``u_ba = C p_A``,
    :eq:`ch1-classical-rates`.
    :math:`Q = \text{rate}(\mathbf{1} p - I)`, so every non-zero eigenvalue equals ``-rate``:
    the spectral gap is ``rate`` whatever ``p`` is.
    """
    p = distribution(p, "p", single=True)
    rate = positive_float(rate, "rate")
    n = p.size
    return rate * (np.ones((n, 1)) * p[None, :] - np.eye(n))


def path_adjacency(n: int) -> np.ndarray:
    """Adjacency matrix of the path ``0 - 1 - ... - (n-1)``: local, nearest-neighbour moves."""
    n = positive_int(n, "n", minimum=2)
    A = np.zeros((n, n))
    i = np.arange(n - 1)
    A[i, i + 1] = A[i + 1, i] = 1.0
    return A


def metropolis_generator(p, adjacency, rate: float = 1.0) -> np.ndarray:
    r"""Metropolis chain with equilibrium ``p`` moving along the edges of ``adjacency``.

    ``Q[x, y] = rate * min(1, p[y] / p[x])`` for neighbours ``x ~ y``. It satisfies detailed
    balance :math:`p_x Q_{xy} = p_y Q_{yx}`, hence ``p`` is stationary. With ``p`` uniform it is
    the simple random walk on the graph: a *local* noising chain.

    Parameters
    ----------
    p : array of shape (n,)
        Target distribution, strictly positive.
    adjacency : array of shape (n, n)
        Symmetric 0/1 matrix of allowed moves, zero diagonal, connected graph.
    rate : float
        Rate of proposing a move to each neighbour (> 0).
    """
    p = distribution(p, "p", strictly_positive=True, single=True)
    n = p.size
    A = real_array(adjacency, "adjacency", ndim=2)
    if A.shape != (n, n):
        raise ValueError(f"adjacency must have shape ({n}, {n}) to match p, got {A.shape}")
    if not np.all((A == 0) | (A == 1)) or np.any(np.diag(A) != 0) or not np.array_equal(A, A.T):
        raise ValueError("adjacency must be a symmetric 0/1 matrix with a zero diagonal")
    rate = positive_float(rate, "rate")
    Q = rate * A * np.minimum(1.0, p[None, :] / p[:, None])
    Q[np.diag_indices(n)] = -Q.sum(axis=1)
    if spectral_gap(Q) <= 1e-12 * rate:
        raise ValueError("adjacency must describe a connected graph (the chain is reducible)")
    return Q


def two_peaks(n: int, beta: float) -> np.ndarray:
    r"""A data distribution on ``n`` states with two modes, ever more peaked as ``beta`` grows.

    :math:`p(x) \propto e^{-\beta d(x)}`, where :math:`d(x)` is the distance from ``x`` to the
    nearer of the modes :math:`(n-1)/4` and :math:`3(n-1)/4`, divided by :math:`(n-1)/4`. So
    ``beta = 0`` is uniform. When ``n - 1`` is a multiple of 4, the modes and the valley
    between them (at :math:`(n-1)/2`) are states, and the valley-to-peak mass ratio is exactly
    :math:`e^{-\beta}`; otherwise the valley is slightly shallower.
    """
    n = positive_int(n, "n", minimum=3)
    beta = positive_float(beta, "beta", allow_zero=True)
    x = np.arange(n)
    q = (n - 1) / 4
    d = np.minimum(np.abs(x - q), np.abs(x - 3 * q)) / q
    w = np.exp(-beta * (d - d.min()))
    return w / w.sum()


# --------------------------------------------------------------------------------------------
# Marginals, equilibrium, spectral gap
# --------------------------------------------------------------------------------------------
def _expm_batch(Q: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``expm(t_k Q)`` for every ``t_k`` in ``t``: shape ``(len(t), n, n)``.

    Uses the eigendecomposition of ``Q`` when its eigenvectors are well conditioned (fast and
    vectorised over ``t``), and :func:`scipy.linalg.expm` otherwise.
    """
    w, V = np.linalg.eig(Q)
    if np.linalg.cond(V) < 1e6:
        Vinv = np.linalg.inv(V)
        P = np.einsum("ij,mj,jk->mik", V, np.exp(np.outer(t, w)), Vinv)
        return np.real(P)
    return np.stack([scipy.linalg.expm(tk * Q) for tk in t])


def transition_matrix(Q, t: float) -> np.ndarray:
    r"""The transition matrix :math:`P_t = e^{tQ}`: ``P[x, y] = P(X_t = y | X_0 = x)``."""
    Q = check_generator(Q)
    t = positive_float(t, "t", allow_zero=True)
    return scipy.linalg.expm(t * Q)


def forward_marginals(Q, p0, times) -> np.ndarray:
    r"""Solve the Kolmogorov forward equation :math:`\dot p = pQ`: :math:`p_t = p_0 e^{tQ}`.

    Parameters
    ----------
    Q : array of shape (n, n)
        Generator.
    p0 : array of shape (n,)
        Initial distribution.
    times : array of shape (m,) or float
        Non-negative times (any order is accepted only if sorted; a float is one time).

    Returns
    -------
    ndarray of shape (m, n)
        Row ``k`` is the marginal at ``times[k]``.
    """
    Q = check_generator(Q)
    p0 = distribution(p0, "p0", n=Q.shape[0], single=True)
    t = real_array(times, "times", ndim=(0, 1))
    t = np.atleast_1d(t)
    if np.any(t < 0):
        raise ValueError(f"times must be non-negative, got min {t.min():.3g}")
    p = np.einsum("i,mij->mj", p0, _expm_batch(Q, t))
    # Round-off can leave entries like -1e-17; they are not probabilities we want to divide by.
    return np.maximum(p, 0.0)


def solve_kfe(rates: RatesLike, p0, times, *, rtol: float = 1e-8, atol: float = 1e-10,
              max_step: float = np.inf) -> np.ndarray:
    r"""Integrate the Kolmogorov forward equation :math:`\dot p_t = p_t G_t` numerically.

    For time-dependent rates (a rates function) there is usually no closed form; this solves the
    linear ODE with :func:`scipy.integrate.solve_ivp` (DOP853). It is the book's independent
    check on simulations with time-dependent rates. For rates that are constant between known
    times, :func:`piecewise_marginals` is exact and faster.

    Parameters
    ----------
    rates : array of shape (n, n) or callable
        A generator or a rates function (module conventions).
    p0 : array of shape (n,)
        Distribution at ``times[0]``.
    times : array of shape (m,)
        Increasing times; the first is the initial time.
    rtol, atol : float
        Tolerances of the integrator.
    max_step : float
        Largest step of the integrator; set it below the width of any jump in piecewise-constant
        rates so that the integrator does not step over it.

    Returns
    -------
    ndarray of shape (m, n)
    """
    Q, fn, n = _as_rates(rates)
    p0 = distribution(p0, "p0", n=n, single=True)
    t = time_grid(times)
    if t.size < 2:
        return p0[None, :].copy()

    def rhs(s, p):
        G = Q if Q is not None else fn(np.array([s]))[0]
        return p @ G

    sol = scipy.integrate.solve_ivp(rhs, (t[0], t[-1]), p0, t_eval=t, method="DOP853",
                                    rtol=rtol, atol=atol, max_step=max_step)
    if not sol.success:
        raise RuntimeError(f"solve_kfe: the integrator failed: {sol.message}")
    return sol.y.T


def piecewise_marginals(rates: RatesLike, p0, edges) -> np.ndarray:
    r"""Exact marginals of a chain whose rates are constant between consecutive ``edges``.

    On ``[e_k, e_{k+1})`` the generator is taken to be ``rates`` at the midpoint, so
    :math:`p_{e_{k+1}} = p_{e_k} \exp((e_{k+1} - e_k) G_k)`. This is exact for piecewise-constant
    rates (such as reverse rates built from marginals estimated on a time grid) and a midpoint
    approximation otherwise.

    Parameters
    ----------
    rates : array of shape (n, n) or callable
        A generator or a rates function (module conventions).
    p0 : array of shape (n,)
        Distribution at ``edges[0]``.
    edges : array of shape (m,)
        Increasing times.

    Returns
    -------
    ndarray of shape (m, n)
        The marginals at the edges.
    """
    Q, fn, n = _as_rates(rates)
    p0 = distribution(p0, "p0", n=n, single=True)
    e = time_grid(edges, "edges")
    G = np.repeat(Q[None], e.size - 1, axis=0) if Q is not None else fn(0.5 * (e[1:] + e[:-1]))
    out = np.empty((e.size, n))
    out[0] = p0
    for k, dt in enumerate(np.diff(e)):
        out[k + 1] = out[k] @ scipy.linalg.expm(dt * G[k])
    return np.maximum(out, 0.0)


def two_state_marginals(u_ab: float, u_ba: float, p0_a: float, times) -> np.ndarray:
    r"""Closed-form solution of the two-state KFE, :eq:`ch1-two-state-solution`.

    .. math:: x_A(t) = \pi_A + (x_A(0) - \pi_A)\, e^{-(u_{AB}+u_{BA}) t},
        \qquad \pi_A = \frac{u_{BA}}{u_{AB} + u_{BA}}.

    Returns an array of shape ``(len(times), 2)`` with columns ``(x_A, x_B)``.
    """
    u_ab = positive_float(u_ab, "u_ab", allow_zero=True)
    u_ba = positive_float(u_ba, "u_ba", allow_zero=True)
    p0_a = positive_float(p0_a, "p0_a", allow_zero=True, upper=1.0)
    t = time_grid(times)
    lam = u_ab + u_ba
    if lam == 0:
        xa = np.full(t.shape, p0_a)
    else:
        pi_a = u_ba / lam
        xa = pi_a + (p0_a - pi_a) * np.exp(-lam * t)
    return np.stack([xa, 1.0 - xa], axis=1)


def stationary_distribution(Q) -> np.ndarray:
    r"""The stationary distribution :math:`\pi` of ``Q``: :math:`\pi Q = 0`, :math:`\sum \pi = 1`.

    Raises
    ------
    ValueError
        If ``Q`` is not a valid generator, or if its stationary distribution is not unique
        (the chain is reducible: the null space of :math:`Q^\top` has dimension > 1).
    """
    Q = check_generator(Q)
    n = Q.shape[0]
    # The null space of Q^T, from the SVD: singular values near zero count its dimension.
    _, s, vh = np.linalg.svd(Q.T)
    tol = max(n * np.finfo(float).eps * max(s[0], 1.0), 1e-12)
    if n > 1 and s[-2] <= tol:
        raise ValueError(
            "Q must be irreducible: it has more than one stationary distribution "
            f"({int(np.sum(s <= tol))} independent solutions of pi Q = 0)"
        )
    pi = vh[-1]
    pi = pi / pi.sum()
    pi[np.abs(pi) < 1e-15] = 0.0  # remove round-off of states with no mass (transient states)
    return pi


def spectral_gap(Q) -> float:
    r"""Spectral gap of the generator: :math:`-\max\{\operatorname{Re}\lambda : \lambda \ne 0\}`.

    The eigenvalue 0 belongs to the stationary distribution; every other eigenvalue has
    negative real part for an irreducible chain, and the slowest of them sets the rate
    :math:`e^{-\text{gap}\, t}` at which :math:`p_t` forgets :math:`p_0`. For the two-state
    chain the gap is :math:`u_{AB} + u_{BA}`. A reducible chain has gap 0.
    """
    Q = check_generator(Q)
    if Q.shape[0] == 1:
        raise ValueError("Q must have at least 2 states to have a spectral gap")
    re = np.sort(np.linalg.eigvals(Q).real)[::-1]
    return float(max(-re[1], 0.0))


def _as_rates(rates) -> tuple[np.ndarray | None, Callable | None, int]:
    """Split ``rates`` into (constant generator, None, n) or (None, callable, n)."""
    if callable(rates):
        G = np.asarray(rates(np.zeros(1)), dtype=float)
        if G.ndim != 3 or G.shape[0] != 1 or G.shape[1] != G.shape[2]:
            raise ValueError(
                "rates must return generators of shape (m, n, n) for times of shape (m,), "
                f"got shape {G.shape} for m = 1"
            )
        check_generator(G[0], name="rates(0)")
        return None, rates, G.shape[1]
    Q = check_generator(rates, name="rates")
    return Q, None, Q.shape[0]
