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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.integrate
import scipy.linalg

from ._checks import as_rng, distribution, positive_float, positive_int, real_array, time_grid

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


# --------------------------------------------------------------------------------------------
# Time reversal
# --------------------------------------------------------------------------------------------
def reverse_generator(Q, p) -> np.ndarray:
    r"""Generator of the time-reversed chain, given the forward marginal ``p`` at that time.

    .. math:: \overleftarrow{Q}_{xy} = Q_{yx}\,\frac{p_y}{p_x}, \qquad x \ne y

    (:eq:`ch1-reverse-generator`), with the diagonal set so that rows sum to zero.

    Parameters
    ----------
    Q : array of shape (n, n)
        Forward generator.
    p : array of shape (n,) or (m, n)
        Forward marginal(s); every entry must be > 0, since the reverse rate out of ``x``
        divides by ``p[x]``.

    Returns
    -------
    ndarray of shape (n, n) or (m, n, n)
    """
    Q = check_generator(Q)
    p = real_array(p, "p", ndim=(1, 2))
    if p.shape[-1] != Q.shape[0]:
        raise ValueError(f"p must have {Q.shape[0]} entries per row to match Q, got {p.shape}")
    if np.any(p <= 0):
        idx = np.argwhere(p <= 0)[0]
        where = f"p[{idx[-1]}]" if p.ndim == 1 else f"p[{idx[0]}, {idx[1]}]"
        raise ValueError(
            f"p must be strictly positive: {where} = {p[tuple(idx)]:.3g}, and the reverse rate "
            f"out of state {idx[-1]} divides by it. A data distribution with a zero makes the "
            "reverse rates blow up at the end; stop the reverse chain at a time eps > 0 before "
            "the end (see reverse_kernel for an exact last step)."
        )
    return _reverse_generator(Q, p)


def _reverse_generator(Q: np.ndarray, p: np.ndarray) -> np.ndarray:
    R = Q.T[None] * p[..., None, :] / p[..., :, None] if p.ndim == 2 else Q.T * p[None] / p[:, None]
    n = Q.shape[0]
    diag = np.arange(n)
    R[..., diag, diag] = 0.0
    R[..., diag, diag] = -R.sum(axis=-1)
    return R


def reverse_kernel(Q, p_s, dt: float) -> np.ndarray:
    r"""Exact reverse transition matrix over a step ``dt``, by Bayes' rule.

    With :math:`p_{s+dt} = p_s e^{dt\,Q}`,

    .. math:: K_{xy} = P(X_s = y \mid X_{s+dt} = x) = \frac{p_s(y)\,(e^{dt\,Q})_{yx}}{p_{s+dt}(x)}.

    Unlike the reverse *rates*, this kernel stays bounded when ``p_s`` has zeros (for instance
    ``p_s`` = a data distribution with an empty state): it is the exact last step of a reverse
    chain that was stopped at forward time ``dt`` (:eq:`ch1-reverse-kernel`).

    Returns an ``(n, n)`` stochastic matrix (rows sum to 1). Rows ``x`` with
    :math:`p_{s+dt}(x) = 0` cannot be reached and are set to :math:`p_s`.
    """
    Q = check_generator(Q)
    p_s = distribution(p_s, "p_s", n=Q.shape[0], single=True)
    dt = positive_float(dt, "dt")
    P = scipy.linalg.expm(dt * Q)
    p_t = p_s @ P
    K = np.empty_like(P)
    pos = p_t > 0
    K[pos] = (p_s[None, :] * P.T)[pos] / p_t[pos, None]
    K[~pos] = p_s
    return K / K.sum(axis=1, keepdims=True)


def reverse_rates(Q, marginals: Callable[[np.ndarray], np.ndarray], T: float) -> Callable:
    r"""Rates function of the reverse chain on ``[0, T]``: at reverse time ``t`` it returns
    :func:`reverse_generator` ``(Q, marginals(T - t))``.

    Parameters
    ----------
    Q : array of shape (n, n)
        Forward generator (time-homogeneous).
    marginals : callable
        ``marginals(s)`` maps forward times ``s`` of shape ``(m,)`` to the forward marginals,
        shape ``(m, n)``: either exact, ``lambda s: forward_marginals(Q, p0, s)``, or estimated,
        e.g. :func:`step_interpolant` of :func:`empirical_marginals`.
    T : float
        Time horizon of the forward chain (> 0).

    Returns
    -------
    callable
        ``rates(t)`` for reverse times ``t`` of shape ``(m,)`` in ``[0, T]``, returning
        ``(m, n, n)``.
    """
    Q = check_generator(Q)
    T = positive_float(T, "T")
    if not callable(marginals):
        raise ValueError("marginals must be a callable mapping forward times to marginals")

    def rates(t):
        t = np.atleast_1d(np.asarray(t, dtype=float))
        if np.any(t < 0) or np.any(t > T * (1 + 1e-12)):
            raise ValueError(f"reverse times t must lie in [0, T] = [0, {T:g}]")
        return reverse_generator(Q, marginals(np.clip(T - t, 0.0, T)))

    return rates


def empirical_marginals(states, n_states: int, pseudocount: float = 0.0) -> np.ndarray:
    r"""Marginals estimated from a population: the fraction of chains in each state.

    Parameters
    ----------
    states : int array of shape (m, n_chains)
        States of a population at ``m`` times (``Population.states``).
    n_states : int
        Number of states ``n``.
    pseudocount : float
        Added to every count before normalising (``>= 0``). With 0, a state that no chain
        visits gets probability exactly 0 -- and the reverse rates built from such an estimate
        divide by it.

    Returns
    -------
    ndarray of shape (m, n)
        :math:`\hat p_t(x) = (N_x(t) + \alpha) / (N + n \alpha)`, :eq:`ch1-empirical`.
    """
    states = np.asarray(states)
    if states.ndim != 2:
        raise ValueError(f"states must have shape (n_times, n_chains), got {states.shape}")
    n_states = positive_int(n_states, "n_states", minimum=1)
    if states.size and (states.min() < 0 or states.max() >= n_states):
        raise ValueError(f"states must lie in 0..{n_states - 1} (n_states = {n_states})")
    pseudocount = positive_float(pseudocount, "pseudocount", allow_zero=True)
    counts = np.stack([(states == x).sum(axis=1) for x in range(n_states)], axis=1)
    return (counts + pseudocount) / (states.shape[1] + n_states * pseudocount)


def step_interpolant(times, values) -> Callable[[np.ndarray], np.ndarray]:
    """Piecewise-constant interpolant: at ``s`` it returns ``values[k]`` for the largest
    ``times[k] <= s`` (the first value before ``times[0]``).

    ``times`` has shape ``(m,)`` (increasing), ``values`` shape ``(m, ...)``.
    """
    t = time_grid(times)
    values = np.asarray(values, dtype=float)
    if values.shape[0] != t.size:
        raise ValueError(
            f"values must have one row per time: {t.size} times but {values.shape[0]} rows"
        )

    def interp(s):
        s = np.atleast_1d(np.asarray(s, dtype=float))
        k = np.clip(np.searchsorted(t, s, side="right") - 1, 0, t.size - 1)
        return values[k]

    return interp


# --------------------------------------------------------------------------------------------
# Simulation
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Population:
    """A simulated population of chains observed on a time grid.

    Attributes
    ----------
    times : ndarray of shape (m,)
        Observation times.
    states : int ndarray of shape (m, n_chains)
        ``states[k, i]`` is the state of chain ``i`` at ``times[k]`` (stored in the smallest
        signed integer type that holds every state, to keep large populations small).
    n_jumps : int ndarray of shape (n_chains,)
        Number of jumps each chain made (thinning's rejected proposals are not jumps).
    """

    times: np.ndarray
    states: np.ndarray
    n_jumps: np.ndarray

    def marginals(self, n_states: int, pseudocount: float = 0.0) -> np.ndarray:
        """Fraction of chains in each state at each time: :func:`empirical_marginals`."""
        return empirical_marginals(self.states, n_states, pseudocount)


def sample_states(p, size: int, rng) -> np.ndarray:
    """Draw ``size`` independent states from the distribution ``p`` (shape ``(n,)``)."""
    p = distribution(p, "p", single=True)
    size = positive_int(size, "size")
    return as_rng(rng).choice(p.size, size=size, p=p)


def sample_transitions(P, x, rng) -> np.ndarray:
    """Move each chain one step with the stochastic matrix ``P``: ``y_i ~ P[x_i, :]``.

    ``P`` has shape ``(n, n)`` with rows summing to 1; ``x`` is an int array of states.
    """
    P = real_array(P, "P", ndim=2)
    if P.shape[0] != P.shape[1] or np.any(P < 0) or np.any(np.abs(P.sum(axis=1) - 1) > 1e-9):
        raise ValueError("P must be a square stochastic matrix (non-negative rows summing to 1)")
    x = np.asarray(x)
    if x.size and (x.min() < 0 or x.max() >= P.shape[0]):
        raise ValueError(f"x must contain states in 0..{P.shape[0] - 1}")
    rng = as_rng(rng)
    return _categorical_rows(np.cumsum(P, axis=1)[x], rng.random(x.shape))


def _categorical_rows(cum: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Index of the first cumulative weight exceeding ``u * total``, row by row."""
    total = cum[..., -1]
    k = (cum <= (u * total)[..., None]).sum(axis=-1)
    return np.minimum(k, cum.shape[-1] - 1)


def _check_x0(x0, n: int) -> np.ndarray:
    x0 = np.asarray(x0)
    if x0.ndim != 1 or x0.size == 0 or not np.issubdtype(x0.dtype, np.integer):
        raise ValueError(
            f"x0 must be a non-empty 1-D int array of initial states, got {x0.dtype} {x0.shape}"
        )
    if x0.min() < 0 or x0.max() >= n:
        raise ValueError(f"x0 must contain states in 0..{n - 1}, got {x0.min()}..{x0.max()}")
    return x0.astype(np.int64)


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


def _state_dtype(n: int):
    """The smallest signed integer type holding the states ``0..n-1`` (and their differences)."""
    for dt in (np.int8, np.int16, np.int32):
        if n <= np.iinfo(dt).max:
            return dt
    return np.int64


def _add_jumps(delta, grid, chains, t_jump, x_from, x_to):
    """Book jumps ``x_from -> x_to`` at times ``t_jump`` of ``chains`` into ``delta``.

    ``delta[k, i]`` accumulates the state changes of chain ``i`` at times in
    ``(grid[k-1], grid[k]]``, so that the states on the grid are ``x0 + cumsum(delta)``. Each
    chain appears at most once per call, so plain fancy-index addition is safe.
    """
    k = np.searchsorted(grid, t_jump, side="left")
    inside = k < grid.size
    delta[k[inside], chains[inside]] += x_to[inside] - x_from[inside]


def _thinning_segments(fn, T: float, target: float = 2.0, max_segments: int = 2048):
    """Cut ``[0, T]`` into segments, each with a constant bound on the exit rates.

    The bound of a segment is 1.25 times the largest exit rate at 9 probe times in it; a segment
    whose expected number of proposals (bound x length) exceeds ``target`` is halved, so that
    regions where the rates are large or change fast get short segments and tight bounds.
    """
    def bound(a, b):
        probe = fn(np.linspace(a, b, 9))
        exit_max = float(np.max(-np.diagonal(probe, axis1=1, axis2=2)))
        if not np.isfinite(exit_max):
            raise ValueError(f"rates returned a non-finite exit rate on [{a:.4g}, {b:.4g}]")
        return 1.25 * exit_max + 1e-12

    todo = [(k * T / 16, (k + 1) * T / 16) for k in range(16)]
    done = []
    while todo:
        a, b = todo.pop()
        lam = bound(a, b)
        if lam * (b - a) > target and len(done) + len(todo) < max_segments and b - a > 1e-9 * T:
            m = 0.5 * (a + b)
            todo += [(m, b), (a, m)]
        else:
            done.append((a, b, lam))
    return sorted(done)


def simulate(rates: RatesLike, x0, T: float, *, rng, times=None, rate_bound=None) -> Population:
    r"""Exact simulation of a population of independent chains on ``[0, T]``.

    Vectorised over chains. A constant generator is simulated with the Gillespie algorithm
    (exponential holding times, then a jump drawn from the jump chain). Time-dependent rates
    use *thinning* (Lewis & Shedler; uniformisation): on a stretch of time where every exit rate
    is at most ``lam``, each chain proposes events at the constant rate ``lam`` and, at a
    proposal at time ``t`` in state ``x``, jumps to ``y`` with probability ``G_t[x, y] / lam``.
    This is exact whenever ``lam`` really bounds the exit rates.

    Parameters
    ----------
    rates : array of shape (n, n) or callable
        A generator, or a rates function ``t (m,) -> (m, n, n)`` (see module conventions).
    x0 : int array of shape (n_chains,)
        Initial states.
    T : float
        Final time (> 0).
    rng : int or numpy.random.Generator
        Source of randomness.
    times : array of shape (m,), optional
        Observation times in ``[0, T]``; default 201 equally spaced times.
    rate_bound : float, optional
        For time-dependent rates: one bound on every exit rate on ``[0, T]``. By default the
        bound is found adaptively, piece by piece (1.25 times the largest exit rate probed in
        each piece, pieces halved where the rates are large). Either way, a proposal whose exit
        rate exceeds its bound raises ``ValueError``. That check sees only the proposal times:
        the result is exact when the bound holds at every time of its piece (true for
        ``rate_bound`` given as a global bound), while an excess between proposals can go
        unnoticed and bias the result. The adaptive bound probes 9 times per piece with a
        margin of 25 %, which covers rates that vary smoothly on the scale of a piece.

    Returns
    -------
    Population
    """
    Q, fn, n = _as_rates(rates)
    x = _check_x0(x0, n).copy()
    T = positive_float(T, "T")
    grid = np.linspace(0.0, T, 201) if times is None else time_grid(times)
    if grid[-1] > T:
        raise ValueError(f"times must lie in [0, T] = [0, {T:g}], got max {grid[-1]:g}")
    rng = as_rng(rng)
    N = x.size
    x0 = x.astype(_state_dtype(n))
    delta = np.zeros((grid.size, N), dtype=x0.dtype)
    n_jumps = np.zeros(N, dtype=np.int64)

    if Q is not None:
        exit_rate = -np.diag(Q)
        jump = np.where(exit_rate[:, None] > 0, Q, 0.0)
        np.fill_diagonal(jump, 0.0)
        cum = np.cumsum(jump, axis=1)
        t = np.zeros(N)
        active = np.arange(N)
        while active.size:
            r = exit_rate[x[active]]
            with np.errstate(divide="ignore"):
                hold = np.where(r > 0, rng.exponential(size=active.size) / r, np.inf)
            t_new = t[active] + hold
            moves = t_new <= T
            mv, t_mv = active[moves], t_new[moves]
            x_old = x[mv]
            x[mv] = _categorical_rows(cum[x_old], rng.random(mv.size))
            _add_jumps(delta, grid, mv, t_mv, x_old, x[mv])
            n_jumps[mv] += 1
            t[mv] = t_mv
            active = mv
        return Population(times=grid, states=x0 + np.cumsum(delta, axis=0, dtype=delta.dtype),
                          n_jumps=n_jumps)

    if rate_bound is None:
        segments = _thinning_segments(fn, T)
    else:
        segments = [(0.0, T, positive_float(rate_bound, "rate_bound"))]
    for a, b, lam in segments:
        t = np.full(N, a)
        active = np.arange(N)
        while active.size:
            t_new = t[active] + rng.exponential(size=active.size) / lam
            prop = t_new <= b
            idx, tp = active[prop], t_new[prop]
            xp = x[idx]
            if idx.size == 0:
                break
            G = fn(tp)
            k = np.arange(idx.size)
            row = G[k, xp].copy()  # (k, n): rates out of each chain's current state
            exit_rate = -row[k, xp]
            if not np.all(np.isfinite(row)):
                raise ValueError("rates returned a non-finite rate during the simulation")
            if np.any(exit_rate > lam):
                j = int(np.argmax(exit_rate - lam))
                raise ValueError(
                    f"rate_bound = {lam:.4g} is below the exit rate {exit_rate[j]:.4g} at "
                    f"t = {tp[j]:.4g}; thinning would be biased. Pass a larger rate_bound."
                )
            row[k, xp] = 0.0
            u = rng.random(idx.size) * lam
            jumps = u < exit_rate
            if np.any(jumps):
                # given a jump, u / exit_rate is uniform on [0, 1): pick y in proportion to rates
                y = _categorical_rows(np.cumsum(row[jumps], axis=1), u[jumps] / exit_rate[jumps])
                _add_jumps(delta, grid, idx[jumps], tp[jumps], xp[jumps], y)
                x[idx[jumps]] = y
                n_jumps[idx[jumps]] += 1
            t[idx] = tp
            active = idx
    return Population(times=grid, states=x0 + np.cumsum(delta, axis=0, dtype=delta.dtype),
                          n_jumps=n_jumps)


def simulate_fixed_step(rates: RatesLike, x0, T: float, dt: float, *, rng) -> Population:
    r"""The naive fixed-step scheme: on each step of length ``dt`` jump ``x -> y`` with
    probability ``G_t[x, y] dt`` (rates frozen at the start of the step).

    This is the note's three-line recipe. Its marginals follow :math:`p_{k+1} = p_k (I + dt\,G)`
    instead of :math:`p_k e^{dt\,G}`: a bias of order ``dt``, :eq:`ch1-euler-bias`.

    Parameters
    ----------
    rates, x0, rng
        As for :func:`simulate`.
    T : float
        Final time; the number of steps is ``round(T / dt)``, which must be a whole number.
    dt : float
        Step size, with ``dt * max exit rate <= 1`` so that jump probabilities stay <= 1.

    Returns
    -------
    Population
        Observed at the step times ``0, dt, ..., T``.
    """
    Q, fn, n = _as_rates(rates)
    x = _check_x0(x0, n).copy()
    T = positive_float(T, "T")
    dt = positive_float(dt, "dt", upper=T)
    n_steps = int(round(T / dt))
    if abs(n_steps * dt - T) > 1e-9 * T:
        raise ValueError(f"dt must divide T: T / dt = {T / dt:.6g} is not a whole number")
    rng = as_rng(rng)
    grid = np.arange(n_steps + 1) * dt
    out = np.empty((n_steps + 1, x.size), dtype=_state_dtype(n))
    out[0] = x
    n_jumps = np.zeros(x.size, dtype=np.int64)
    for k in range(n_steps):
        G = Q if Q is not None else fn(np.array([grid[k]]))[0]
        exit_rate = -np.diag(G)
        if exit_rate.max() * dt > 1 + 1e-12:
            raise ValueError(
                f"dt = {dt:g} is too large: exit rate {exit_rate.max():.4g} times dt exceeds 1 "
                f"at t = {grid[k]:g}; the jump probabilities would not be probabilities"
            )
        step = np.eye(n) + dt * G
        y = _categorical_rows(np.cumsum(np.maximum(step, 0.0), axis=1)[x], rng.random(x.size))
        n_jumps += y != x
        x = y
        out[k + 1] = x
    return Population(times=grid, states=out, n_jumps=n_jumps)
