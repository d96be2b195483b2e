r"""Diffusion Schrödinger bridges in torch (Chapter 4): DSB by iterative proportional fitting
(De Bortoli, Thornton, Heng and Doucet, 2021) and bridge matching by iterative Markovian
fitting (Shi, De Bortoli, Campbell and Doucet, 2023).

**Discretisation and reference.** Time is cut into ``N`` steps of sizes
:math:`\gamma_1, \dots, \gamma_N` (:func:`gammas`: constant, or the DSB paper's symmetric
ramp), of total time :math:`T = \sum_k \gamma_k`, at the times
:math:`t_k = \gamma_1 + \dots + \gamma_k` (:math:`t_0 = 0`). The reference process is

.. math::
    X_{k+1} = X_k + \gamma_{k+1} f(X_k) + \sqrt{2\gamma_{k+1}}\, Z_{k+1},
    \qquad Z_{k+1} \sim \mathcal N(0, I),

with :math:`f = 0` (a Brownian motion run at speed 2) or the Ornstein-Uhlenbeck drift
:math:`f(x) = -\alpha x` (``alpha > 0``), which pulls toward :math:`\mathcal N(0, I/\alpha)`.

*Convention.* With the :math:`\sqrt{2\gamma}` noise and :math:`f = 0`, :math:`X_N - X_0 \sim
\mathcal N(0, 2T\, I)`: the reference is a Brownian motion of variance :math:`\sigma^2 = 2T`
per unit time on :math:`[0, 1]`. The Schrödinger bridge depends on the reference only through
the law of :math:`(X_0, X_N)`, so the DSB coupling is that of
``diffnotes.bridge.gaussian_bridge(..., sigma=sqrt(2 T))`` (see :func:`reference_sigma`) and of
:class:`BridgeMatching` with ``sigma = sqrt(2 T)``. For one-dimensional unit Gaussians at both
ends and zero means, :math:`\operatorname{Cov}(X_0, X_N) = (\sqrt{4 + \sigma^4} - \sigma^2)/2`
(:func:`diffnotes.bridge.gaussian_bridge` gives the general closed form).

**DSB (mean matching, Algorithm 1 of the paper).** Write the forward transition of the
current forward process as :math:`X_{k+1} = F(k, X_k) + \sqrt{2\gamma_{k+1}} Z` and the
backward one as :math:`X_k = B(k+1, X_{k+1}) + \sqrt{2\gamma_{k+1}} Z`. Iteration :math:`n`
of IPF has two half-steps:

1. *backward*: simulate forward paths from the data, and regress
   :math:`B(k+1, X_{k+1}) \approx X_{k+1} + F(k, X_k) - F(k, X_{k+1})`;
2. *forward*: simulate backward paths from the prior, and regress
   :math:`F(k, X_k) \approx X_k + B(k+1, X_{k+1}) - B(k+1, X_k)`.

At iteration 0 the forward process is the reference, and the first backward half-step is
an ordinary score-based generative model (:math:`F(k, x) = x` gives :math:`B(k+1, x) =
\mathbb E[X_k \mid X_{k+1} = x]`, Tweedie's formula). Each mean map is the identity plus
:math:`\gamma` times a drift, :math:`F(k, x) = x + \gamma_{k+1} f(x, t_k/T)`,
:math:`B(k+1, x) = x + \gamma_{k+1} b(x, t_{k+1}/T)`, and each drift is a network
(:class:`ScoreMLP` used as a plain map :math:`(x, s) \to \mathbb R^d`) times a fixed
``drift_scale``, by default :math:`\ell / T` with :math:`\ell` the spread of the points (the
larger root-mean-square deviation of the two ends, from 1000 draws of each at the first
:meth:`DSB.fit`): the drift that crosses the distribution in the time :math:`T` is of order
one in the network's units. The loss is the squared error on the drift scale, the
mean-matching loss divided by :math:`\gamma^2`. The time :math:`s = t/T` enters through
``embed_dim = 2`` features, :math:`(\sin s, \cos s)`: smooth in time. Both choices matter on
the DSB paper's 2-D problem (``diffnotes.dsb_problems``, ``benchmarks/bench_dsb.py``): with
the score models' embedding (frequencies up to 1000) and a network that predicts the drift in
the points' units (``drift_scale=1``, the old default), the first half-step's held-out loss
stays nearer its noise floor (``diffnotes.dsb_problems.first_half_step_ablation``), and the
samples after two IPF iterations are further from the data
(``diffnotes.dsb_problems.S_CURVE_MEASURED``).

Trajectories are simulated for a cache of ``cache_size`` paths at once, a tensor of shape
``(N + 1, M, d)``; the regression pairs ``(x, k, target)`` of all steps and paths are
computed with one network call per step on all paths (on a CPU, faster than one call on all
``N M`` rows), and minibatches are drawn from them at random. The
cache is redrawn every ``cache_refresh`` steps. Both networks keep an :class:`EMA`, and each
half-step simulates with the average of the other network.

**Bridge matching (DSBM).** :class:`BridgeMatching` takes a Brownian reference
:math:`dX = \sigma dW` on :math:`[0, 1]` and a coupling of :math:`(X_0, X_1)` (at first
independent). It samples Brownian bridges :math:`X_t = (1 - t) x_0 + t x_1 +
\sigma\sqrt{t(1-t)}\, Z`, regresses the forward drift :math:`(x_1 - X_t)/(1 - t)` (or the
backward drift :math:`(x_0 - X_t)/t`), then redraws the coupling by simulating the learned SDE
(Euler-Maruyama, all paths at once) from the data (forward) or from the prior (backward),
alternating the two directions so that each keeps one marginal exact.
"""

from __future__ import annotations

from ._optional import dsb_needs  # noqa: F401  # isort: skip (missing torch: pip hint)
import math
import time as _time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ._checks import positive_float, positive_int, real_array
from .dsb_fit import _fit, _generator, _out, _points_in, _regress
from .dsb_problems import S_CURVE_ALPHA, s_curve, s_curve_prior
from .score import EMA, ScoreMLP

__all__ = [
    "DSB",
    "S_CURVE_ALPHA",
    "BridgeMatching",
    "Coupling",
    "HalfStep",
    "coupling",
    "gammas",
    "reference_sigma",
    "s_curve",
    "s_curve_prior",
]


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------
def gammas(n_steps: int, gamma_min: float, gamma_max: float | None = None) -> np.ndarray:
    r"""Step sizes :math:`\gamma_1, \dots, \gamma_N` of a DSB discretisation.

    With ``gamma_max`` ``None`` (or equal to ``gamma_min``) all steps are ``gamma_min``.
    Otherwise the DSB paper's symmetric schedule: the first half increases linearly from
    ``gamma_min`` to ``gamma_max`` and the second half mirrors it (small steps near both
    marginals, large ones in the middle). Returns a float array of shape ``(n_steps,)``; the
    total time is its sum.
    """
    n_steps = positive_int(n_steps, "n_steps")
    gamma_min = positive_float(gamma_min, "gamma_min")
    if gamma_max is None:
        return np.full(n_steps, gamma_min)
    gamma_max = positive_float(gamma_max, "gamma_max")
    if gamma_max < gamma_min:
        raise ValueError(f"gamma_max must be >= gamma_min = {gamma_min:g}, got {gamma_max:g}")
    half = np.linspace(gamma_min, gamma_max, (n_steps + 1) // 2)
    return np.concatenate([half, half[: n_steps // 2][::-1]])


def reference_sigma(gamma) -> float:
    r"""The Brownian :math:`\sigma = \sqrt{2T}`, :math:`T = \sum_k \gamma_k`, whose bridge on
    :math:`[0, 1]` has the same endpoint law as the DSB reference with ``f = 0`` (pass it to
    ``bridge.gaussian_bridge(..., sigma=...)`` or :class:`BridgeMatching`)."""
    g = real_array(gamma, "gamma", ndim=(0, 1))
    if np.any(g <= 0):
        raise ValueError("gamma must be > 0")
    return float(np.sqrt(2 * np.sum(g)))


@dataclass
class Coupling:
    """The endpoints of simulated paths and their empirical cross-covariance."""

    x0: np.ndarray
    x1: np.ndarray
    cross_cov: np.ndarray


def coupling(traj) -> Coupling:
    r"""The coupling of a batch of trajectories of shape ``(N + 1, m, d)`` (from
    :meth:`DSB.sample_forward`...): its endpoints ``x0 = traj[0]``, ``x1 = traj[-1]`` (NumPy,
    ``(m, d)``) and the empirical cross-covariance
    :math:`\frac{1}{m-1}\sum_i (x_{0,i} - \bar x_0)(x_{1,i} - \bar x_1)^\top`, ``(d, d)``."""
    if isinstance(traj, torch.Tensor):
        traj = traj.detach().cpu().double().numpy()
    traj = real_array(traj, "traj", ndim=3)
    if traj.shape[0] < 2 or traj.shape[1] < 2:
        raise ValueError(f"traj must have shape (N + 1, m, d) with N >= 1 and m >= 2, got "
                         f"{traj.shape}")
    x0, x1 = traj[0], traj[-1]
    c = (x0 - x0.mean(0)).T @ (x1 - x1.mean(0)) / (x0.shape[0] - 1)
    return Coupling(x0, x1, c)


@dataclass
class HalfStep:
    """One half-step of training: which ``iteration``, which ``direction`` (``"backward"`` or
    ``"forward"``), the minibatch ``losses`` and the wall time ``seconds`` (simulation of the
    caches included)."""

    iteration: int
    direction: str
    losses: np.ndarray
    seconds: float


class _Drift(nn.Module):
    r"""A drift network in the problem's units, ``out_scale * net(x, s)``: ``net`` predicts
    numbers of order one whatever the size of the drifts."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.register_buffer("out_scale", torch.ones(()))

    def forward(self, x, s):
        net = self.net
        if isinstance(net, ScoreMLP) and isinstance(s, torch.Tensor) and s.ndim == 0:
            # one time for all rows: its embedding enters the first layer as a bias (the same
            # numbers, without an (m, embed_dim) embedding), a third faster on a CPU
            first = net.net[0]
            bias = first.bias + net.embed(s.reshape(1)) @ first.weight[:, net.dim:].T
            return self.out_scale * net.net[1:](torch.addmm(bias, x, first.weight[:, :net.dim].T))
        return self.out_scale * net(x, s)


# --------------------------------------------------------------------------------------------
# DSB by iterative proportional fitting (mean matching)
# --------------------------------------------------------------------------------------------
class DSB:
    r"""Diffusion Schrödinger bridge between a data law (time 0) and a prior (time ``T``).

    Parameters
    ----------
    dim : int
        Dimension of the points.
    n_steps : int, default 20
        Number of time steps ``N``.
    gamma : float or array of shape (n_steps,), default 0.01
        Step sizes (a float for constant steps; see :func:`gammas`). The total time is
        ``T = sum(gamma)``; with ``alpha = 0`` the reference is Brownian with
        :math:`\sigma^2 = 2T` (:func:`reference_sigma`). A horizon too short for the
        reference to approach the prior makes IPF slow: on the DSB paper's s-curve problem,
        20 steps of ``gammas(20, 0.01, 0.5)`` (:math:`T = 5.1`) reach SW2 0.44 in four
        iterations where constant steps of 0.01 (:math:`T = 0.2`) are at 1.52 after two
        (``diffnotes.dsb_problems.S_CURVE_SCHEDULES``), and exact IPF at that discretisation
        stays near 1.7 for four (``diffnotes.dsb_problems.exact_ipf_sw2``).
    alpha : float, default 0
        Drift :math:`f(x) = -\alpha x` of the reference (0: Brownian).
    hidden, depth, embed_dim : int, default 64, 3, 2
        Size of the two :class:`~diffnotes.score.ScoreMLP` networks (forward and backward
        drifts), used as plain maps :math:`(x, t/T) \to \mathbb R^d`; ``embed_dim = 2``
        embeds the time by :math:`(\sin s, \cos s)` alone. (The defaults were 128, 3 and
        32 before; 64 wide is as good on the s-curve and 2.5x cheaper, while on two moons
        with 500 steps per half-step 128 wide is better: SW2 0.081 against 0.112 after four
        iterations, floor 0.049.)
    seed : int
        Seed of the initial weights.
    drift_scale : float or None
        The drifts are ``drift_scale`` times the networks' outputs; ``None``: the spread of the
        points over ``T``, set at the first :meth:`fit` (see the module docstring). ``1`` was
        the behaviour before.

    Attributes
    ----------
    history : list of HalfStep
        One entry per trained half-step, in order.
    n_iterations : int
        IPF iterations done so far; :meth:`fit` continues from there.
    """

    def __init__(self, dim: int, n_steps: int = 20, gamma=0.01, *, alpha: float = 0.0,
                 hidden: int = 64, depth: int = 3, embed_dim: int = 2, seed: int = 0,
                 drift_scale: float | None = None):
        self.dim = positive_int(dim, "dim")
        self.n_steps = positive_int(n_steps, "n_steps")
        g = real_array(gamma, "gamma", ndim=(0, 1))
        if g.ndim == 0:
            g = np.full(self.n_steps, float(g))
        if g.shape != (self.n_steps,) or np.any(g <= 0):
            raise ValueError(f"gamma must be a float > 0 or an array of {self.n_steps} values "
                             f"> 0 (one per step), got shape {g.shape}")
        self.gamma = g
        self.T = float(g.sum())
        self.times = np.concatenate([[0.0], np.cumsum(g)])
        self.alpha = positive_float(alpha, "alpha", allow_zero=True)
        if np.any(self.alpha * g >= 1):
            raise ValueError(f"alpha * gamma must be < 1 for every step, got alpha = "
                             f"{self.alpha:g} and max gamma {g.max():g}")
        seed = positive_int(seed, "seed", minimum=0)
        kw = dict(hidden=hidden, depth=depth, embed_dim=embed_dim, parameterization="score")
        self.backward_net = _Drift(ScoreMLP(self.dim, seed=seed, **kw))
        self.forward_net = _Drift(ScoreMLP(self.dim, seed=seed + 1, **kw))
        self.drift_scale = (None if drift_scale is None
                            else positive_float(drift_scale, "drift_scale"))
        self.backward_ema: nn.Module | None = None
        self.forward_ema: nn.Module | None = None
        self.n_iterations = 0
        self.history: list[HalfStep] = []
        if self.drift_scale is not None:
            self._set_drift_scale(self.drift_scale)

    def _set_drift_scale(self, value):
        self.drift_scale = float(value)
        for net in (self.backward_net, self.forward_net):
            net.out_scale.fill_(self.drift_scale)

    @property
    def sigma(self) -> float:
        r"""The Brownian :math:`\sigma = \sqrt{2T}` equivalent to the reference (``alpha = 0``)."""
        return math.sqrt(2 * self.T)

    # -- the mean maps, in drift form: F(k, x) = x + gamma_{k+1} f, B(k+1, x) = x + gamma b ---
    def _tables(self, dev):
        g = torch.as_tensor(self.gamma, dtype=torch.float32, device=dev)
        s = torch.as_tensor(self.times / self.T, dtype=torch.float32, device=dev)
        return g, s

    def _f(self, x, k, s):
        """Forward drift at step k (time t_k) for points x; the reference before training."""
        if self.forward_ema is None:
            return -self.alpha * x
        return self.forward_ema(x, s[k])

    def _b(self, x, k1, s):
        """Backward drift at index k + 1 (time t_{k+1})."""
        return self.backward_ema(x, s[k1])

    @torch.no_grad()
    def _forward_paths(self, x0, gen):
        g, s = self._tables(x0.device)
        xs, drifts = [x0], []
        x = x0
        for k in range(self.n_steps):
            f = self._f(x, k, s)
            drifts.append(f)
            z = torch.randn(x.shape, generator=gen, device=x.device)
            x = x + g[k] * f + torch.sqrt(2 * g[k]) * z
            xs.append(x)
        return torch.stack(xs), torch.stack(drifts)

    @torch.no_grad()
    def _backward_paths(self, xN, gen, final_noise=True):
        if self.backward_ema is None:
            raise RuntimeError("DSB: no backward network yet; call fit first")
        g, s = self._tables(xN.device)
        xs = [xN]
        drifts = []
        x = xN
        for k in range(self.n_steps - 1, -1, -1):
            b = self._b(x, k + 1, s)
            drifts.append(b)
            z = torch.randn(x.shape, generator=gen, device=x.device)
            x = x + g[k] * b + (torch.sqrt(2 * g[k]) * z if final_noise or k else 0)
            xs.append(x)
        return torch.stack(xs[::-1]), torch.stack(drifts[::-1])   # drifts[k] at index k + 1

    @torch.no_grad()
    def _cache(self, direction, x_start, gen):
        """Flattened regression pairs (x, s, target) from M fresh paths, shapes (N M, ...)."""
        g, s = self._tables(x_start.device)
        N, M, d = self.n_steps, x_start.shape[0], self.dim
        gcol = g[:, None, None]
        if direction == "backward":      # target for b at (X_{k+1}, t_{k+1})
            xs, f_at_k = self._forward_paths(x_start, gen)
            x_in = xs[1:]                                    # X_{k+1}, (N, M, d)
            # one call per step on M rows: faster on a CPU than one call on N M rows
            f_at_next = torch.stack([self._f(x_in[k], k, s) for k in range(N)])
            target = (xs[:-1] - xs[1:]) / gcol + f_at_k - f_at_next
            t_in = s[1:].repeat_interleave(M)
        else:                              # target for f at (X_k, t_k)
            xs, b_at_next = self._backward_paths(x_start, gen)
            x_in = xs[:-1]                                   # X_k
            b_at_k = torch.stack([self._b(x_in[k], k + 1, s) for k in range(N)])
            target = (xs[1:] - xs[:-1]) / gcol + b_at_next - b_at_k
            t_in = s[:-1].repeat_interleave(M)
        return x_in.reshape(N * M, d), t_in, target.reshape(N * M, d)

    def fit(self, sample_data, sample_prior="gaussian", *, n_ipf: int = 5, n_train: int = 5000,
            batch_size: int = 512, lr: float = 1e-4, ema_decay: float = 0.999,
            cache_size: int = 10_000, cache_refresh: int = 100, grad_clip: float | None = None,
            seed: int = 0, device=None, progress: bool = True,
            cpu_threads: int | None = 1, lr_min: float | None = None) -> list[HalfStep]:
        r"""Run ``n_ipf`` more IPF iterations (each a backward then a forward half-step of
        ``n_train`` Adam steps), continuing from the current networks.

        Parameters
        ----------
        sample_data, sample_prior : callable, array or ``"gaussian"``
            Samplers ``(n, rng) -> (n, dim)`` with ``rng`` a NumPy Generator (like the toys of
            :mod:`diffnotes.data`), arrays of points (drawn with replacement), or
            ``"gaussian"`` for :math:`\mathcal N(0, I)`. The data law sits at time 0, the prior
            at time ``T``: data -> Gaussian with the default prior, data -> data with another
            data set's sampler.
        n_ipf, n_train, batch_size, lr : iterations, Adam steps per half-step, minibatch size,
            learning rate (the DSB paper's 2-D settings: 5000, 512, 1e-4).
        ema_decay : float in [0, 1)
            Decay of the weight averages (with warm-up); paths are simulated with the averages.
        cache_size, cache_refresh : int, default 10,000 and 100
            Paths per cache (each gives ``n_steps`` regression pairs) and the number of steps
            between redraws of the cache (the DSB reference code's values; they were 1000 and
            1000 before, with which the d = 20 Gaussian error of ``benchmarks/bench_dsb.py``
            grows over the iterations, 0.20 -> 0.28, instead of settling near 0.12).
        grad_clip : float or None
            Clip the gradient norm (``None``: never).
        seed : int
            Seeds the samplers (NumPy) and every torch draw of this call.
        device, progress, cpu_threads : as in :func:`diffnotes.score.train` (a ``tqdm`` bar
            per half-step; intra-op threads during training, restored afterwards).
        lr_min : float or None
            With a value, the learning rate of each half-step decays from ``lr`` to ``lr_min``
            (cosine); ``None``: constant. A decay from 1e-3 to 1e-4 brings the d = 20 error
            below 0.10 after 6 iterations; on the s-curve at 1e-4 a decay to 1e-5 is worse
            (``diffnotes.dsb_problems.S_CURVE_MEASURED``).

        Returns
        -------
        list of HalfStep
            The half-steps of this call (also appended to :attr:`history`).
        """
        self._lr_min = None if lr_min is None else positive_float(lr_min, "lr_min")
        return _fit(self, ("backward", "forward"), sample_data, sample_prior, n_ipf, n_train,
                    batch_size, lr, ema_decay, cache_size, cache_refresh, grad_clip, seed,
                    device, progress, cpu_threads)

    def _half_step(self, direction, draw_data, draw_prior, rng, gen, n_train, batch_size, lr,
                   ema_decay, cache_size, cache_refresh, grad_clip, progress):
        draw_start = draw_data if direction == "backward" else draw_prior
        t0 = _time.perf_counter()
        if self.drift_scale is None:    # from 1000 points of each end, without touching rng
            ends = [draw(1000, np.random.default_rng(0)) for draw in (draw_data, draw_prior)]
            spread = max(float(x.var(0, unbiased=False).mean().sqrt()) for x in ends)
            self._set_drift_scale(spread / self.T)
        net = self.backward_net if direction == "backward" else self.forward_net
        net.train()
        ema = EMA(net, ema_decay)
        dev = next(net.parameters()).device
        opt = torch.optim.Adam(net.parameters(), lr=lr, fused=dev.type in ("cpu", "cuda"))
        state = {}

        def draw_batch(i):
            if i % cache_refresh == 0:
                state["cache"] = self._cache(direction, draw_start(cache_size, rng), gen)
            x, t, y = state["cache"]
            idx = torch.randint(0, x.shape[0], (batch_size,), generator=gen, device=x.device)
            return x[idx], t[idx], y[idx]

        lr_min = getattr(self, "_lr_min", None)
        sched = (None if lr_min is None else
                 torch.optim.lr_scheduler.CosineAnnealingLR(opt, n_train, eta_min=lr_min))
        losses = _regress(net, ema, opt, draw_batch, n_train, grad_clip,
                          f"DSB {self.n_iterations} {direction}", progress, "DSB.fit", sched)
        net.eval()
        if direction == "backward":
            self.backward_ema = ema.model
        else:
            self.forward_ema = ema.model
        return HalfStep(self.n_iterations, direction, losses, _time.perf_counter() - t0)

    def sample_forward(self, x_data, *, seed: int = 0):
        r"""Paths data -> prior from the points ``x_data`` (``(m, dim)``), with the current
        forward process (the reference before any forward half-step). Returns the
        trajectories, shape ``(n_steps + 1, m, dim)``: a tensor for a tensor input, else a
        float64 NumPy array."""
        dev = next(self.forward_net.parameters()).device
        x, tensor_in = _points_in(x_data, self.dim, "x_data", dev)
        return _out(self._forward_paths(x, _generator(seed, dev))[0], tensor_in)

    def sample_backward(self, x_prior, *, seed: int = 0, final_noise: bool = True):
        r"""Paths prior -> data from the points ``x_prior`` (``(m, dim)``, at time ``T``),
        with the current backward network; ``traj[0]`` are the generated data points. Returns
        shape ``(n_steps + 1, m, dim)``, indexed by time like :meth:`sample_forward`. With
        ``final_noise=False`` the last step (to time 0) is the backward mean alone, without its
        noise of variance :math:`2\gamma_1` (as the DSB reference code samples)."""
        dev = next(self.backward_net.parameters()).device
        x, tensor_in = _points_in(x_prior, self.dim, "x_prior", dev)
        return _out(self._backward_paths(x, _generator(seed, dev), bool(final_noise))[0],
                    tensor_in)


# --------------------------------------------------------------------------------------------
# Bridge matching / iterative Markovian fitting
# --------------------------------------------------------------------------------------------
class BridgeMatching:
    r"""Diffusion Schrödinger bridge matching (iterative Markovian fitting) for the Brownian
    reference :math:`dX_t = \sigma\, dW_t` on :math:`[0, 1]`.

    Parameters
    ----------
    dim : int
        Dimension of the points.
    sigma : float
        Reference noise level; ``sigma = DSB(...).sigma`` (:math:`\sqrt{2T}`) targets the same
        bridge as :class:`DSB` with ``alpha = 0``.
    n_steps : int, default 50
        Euler-Maruyama steps when simulating the learned SDEs (uniform on [0, 1]).
    hidden, depth, embed_dim, seed : as in :class:`DSB`.
    t_eps : float, default 1e-3
        Training times are drawn uniformly in ``[t_eps, 1 - t_eps]`` (the drift targets blow up
        at the ends).

    Notes
    -----
    Iteration :math:`n` trains the forward drift :math:`v_f(x, t) \approx
    \mathbb E[(X_1 - X_t)/(1 - t) \mid X_t = x]` on bridges of the current coupling, then
    redraws the coupling forward from the data, trains the backward drift
    :math:`v_b(x, t) \approx \mathbb E[(X_0 - X_t)/t \mid X_t = x]` on it and redraws the
    coupling backward from the prior. Iteration 0 starts from the independent coupling, so its
    forward half is plain bridge matching (a stochastic interpolant). Between Gaussians the
    exact sequence of couplings is :func:`diffnotes.bridge.gaussian_imf`.
    """

    def __init__(self, dim: int, sigma: float, n_steps: int = 50, *, hidden: int = 128,
                 depth: int = 3, embed_dim: int = 32, seed: int = 0, t_eps: float = 1e-3):
        self.dim = positive_int(dim, "dim")
        self.sigma = positive_float(sigma, "sigma")
        self.n_steps = positive_int(n_steps, "n_steps")
        self.t_eps = positive_float(t_eps, "t_eps", upper=0.25)
        seed = positive_int(seed, "seed", minimum=0)
        kw = dict(hidden=hidden, depth=depth, embed_dim=embed_dim, parameterization="score")
        self.forward_net = ScoreMLP(self.dim, seed=seed, **kw)
        self.backward_net = ScoreMLP(self.dim, seed=seed + 1, **kw)
        self.forward_ema: nn.Module | None = None
        self.backward_ema: nn.Module | None = None
        self.n_iterations = 0
        self.history: list[HalfStep] = []

    @torch.no_grad()
    def _simulate(self, x, direction, gen):
        net = self.forward_ema if direction == "forward" else self.backward_ema
        if net is None:
            raise RuntimeError(f"BridgeMatching: no {direction} network yet; call fit first")
        h = 1.0 / self.n_steps
        xs = [x]
        for i in range(self.n_steps):
            t = i * h if direction == "forward" else 1.0 - i * h
            v = net(x, torch.full((x.shape[0],), t, device=x.device))
            x = x + h * v + self.sigma * math.sqrt(h) * torch.randn(x.shape, generator=gen,
                                                                    device=x.device)
            xs.append(x)
        traj = torch.stack(xs)
        return traj if direction == "forward" else traj.flip(0)

    def fit(self, sample_data, sample_prior="gaussian", *, n_ipf: int = 5, n_train: int = 2000,
            batch_size: int = 512, lr: float = 1e-3, ema_decay: float = 0.999,
            cache_size: int = 4000, cache_refresh: int = 1000, grad_clip: float | None = None,
            seed: int = 0, device=None, progress: bool = True,
            cpu_threads: int | None = 1) -> list[HalfStep]:
        r"""Run ``n_ipf`` more iterations (forward then backward half-step), continuing from
        the current networks. Arguments as in :meth:`DSB.fit`; the cache here is
        ``cache_size`` coupled pairs :math:`(x_0, x_1)` (redrawn every ``cache_refresh``
        steps by simulating the other direction's SDE, or independently at the very first
        half-step), and each minibatch draws a time and a bridge point per pair."""
        return _fit(self, ("forward", "backward"), sample_data, sample_prior, n_ipf, n_train,
                    batch_size, lr, ema_decay, cache_size, cache_refresh, grad_clip, seed,
                    device, progress, cpu_threads)

    def _pairs_for(self, direction, draw_data, draw_prior, rng, gen, m):
        if direction == "forward":
            if self.backward_ema is None:           # the independent coupling
                return draw_data(m, rng), draw_prior(m, rng)
            traj = self._simulate(draw_prior(m, rng), "backward", gen)
        else:
            traj = self._simulate(draw_data(m, rng), "forward", gen)
        return traj[0], traj[-1]

    def _half_step(self, direction, draw_data, draw_prior, rng, gen, n_train, batch_size, lr,
                   ema_decay, cache_size, cache_refresh, grad_clip, progress):
        t0 = _time.perf_counter()
        net = self.forward_net if direction == "forward" else self.backward_net
        net.train()
        ema = EMA(net, ema_decay)
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        state = {}
        eps = self.t_eps

        def draw_batch(i):
            if i % cache_refresh == 0:
                state["pairs"] = self._pairs_for(direction, draw_data, draw_prior, rng, gen,
                                                 cache_size)
            x0, x1 = state["pairs"]
            idx = torch.randint(0, x0.shape[0], (batch_size,), generator=gen, device=x0.device)
            a, b = x0[idx], x1[idx]
            t = eps + (1 - 2 * eps) * torch.rand(batch_size, generator=gen, device=a.device)
            tc = t[:, None]
            z = torch.randn(a.shape, generator=gen, device=a.device)
            xt = (1 - tc) * a + tc * b + self.sigma * torch.sqrt(tc * (1 - tc)) * z
            y = (b - xt) / (1 - tc) if direction == "forward" else (a - xt) / tc
            return xt, t, y

        losses = _regress(net, ema, opt, draw_batch, n_train, grad_clip,
                          f"DSBM {self.n_iterations} {direction}", progress,
                          "BridgeMatching.fit")
        net.eval()
        if direction == "forward":
            self.forward_ema = ema.model
        else:
            self.backward_ema = ema.model
        return HalfStep(self.n_iterations, direction, losses, _time.perf_counter() - t0)

    def sample(self, x, direction: str = "backward", *, seed: int = 0):
        r"""Paths of the learned SDE, shape ``(n_steps + 1, m, dim)`` indexed by time on
        :math:`[0, 1]`: ``direction="backward"`` starts from prior points ``x`` at time 1
        (``traj[0]`` are generated data), ``"forward"`` from data points at time 0. A tensor
        for a tensor input, else a float64 NumPy array."""
        if direction not in ("forward", "backward"):
            raise ValueError(f"direction must be 'forward' or 'backward', got {direction!r}")
        dev = next(self.forward_net.parameters()).device
        xt, tensor_in = _points_in(x, self.dim, "x", dev)
        return _out(self._simulate(xt, direction, _generator(seed, dev)), tensor_in)

