r"""Learning the score: parameterisations, denoising score matching and a small trainer
(Chapter 3).

**Three parameterisations.** A linear forward SDE (:mod:`diffnotes.sde`) noises a data point
as :math:`x_t = \alpha(t)\,x_0 + \sigma(t)\,\varepsilon` with :math:`\varepsilon \sim
\mathcal N(0, I)`, and the score of this Gaussian kernel is
:math:`\nabla_{x_t}\log q(x_t \mid x_0) = -\varepsilon/\sigma`. A network can be asked for the
score :math:`s`, for the noise :math:`\hat\varepsilon` or for the clean point
:math:`\hat x_0`; at a given :math:`(x_t, t)` the three are affine functions of one another,

.. math::
    s = -\frac{\hat\varepsilon}{\sigma}, \qquad
    \hat x_0 = \frac{x_t - \sigma\hat\varepsilon}{\alpha}, \qquad
    s = \frac{\alpha\hat x_0 - x_t}{\sigma^2}
    \quad\Longleftrightarrow\quad
    \hat x_0 = \frac{x_t + \sigma^2 s}{\alpha},

the last being Tweedie's formula, :math:`\mathbb E[x_0 \mid x_t] = (x_t + \sigma^2
\nabla\log q_t(x_t))/\alpha`. (:func:`noise_to_score`, :func:`score_to_noise`,
:func:`data_to_score`, :func:`score_to_data`, :func:`noise_to_data`, :func:`data_to_noise`;
they take NumPy arrays and torch tensors alike.) The choice does not change what is learned
-- the minimiser is the same -- but it changes the scale of the network's output and of its
regression target: the noise is of order one at every :math:`t`, while the score's target
:math:`-\varepsilon/\sigma` has root mean square :math:`\sqrt d/\sigma`, which blows up as
:math:`t \to 0`. The score itself blows up only for data without a smooth density (points, a
curve, a lattice); for smooth data such as a Gaussian mixture it stays bounded in mean square
(by the data's Fisher information divided by :math:`\alpha^2`).

**Denoising score matching.** With a time weighting :math:`\lambda(t) > 0`, the DSM loss is

.. math::
    \mathcal L(\theta) = \mathbb E_{t, x_0, \varepsilon}\Bigl[\lambda(t)\,
    \bigl\|s_\theta(x_t, t) + \varepsilon/\sigma(t)\bigr\|^2\Bigr]
    = \mathbb E\Bigl[\frac{\lambda(t)}{\sigma(t)^2}\,
    \bigl\|\hat\varepsilon_\theta(x_t, t) - \varepsilon\bigr\|^2\Bigr]

(:func:`dsm_loss`, :func:`denoising_loss`). Three weightings: ``"sigma2"``,
:math:`\lambda = \sigma^2`, which for the noise parameterisation is exactly the "simple" loss
:math:`\|\hat\varepsilon - \varepsilon\|^2` of Ho et al. (2020); ``"likelihood"``,
:math:`\lambda = g(t)^2`, for which the loss bounds the negative log-likelihood (Song,
Durkan, Murray and Ermon, 2021, *Maximum likelihood training of score-based diffusion
models*); ``"none"``, :math:`\lambda = 1`, dominated by the smallest times.

**Why denoising works.** At a fixed time, three objectives for a candidate score :math:`s`
share their minimiser (:func:`explicit_sm`, :func:`implicit_sm`, :func:`denoising_sm`):

.. math::
    \mathrm{ESM}(s) &= \mathbb E_{q_t}\|s - \nabla\log q_t\|^2, \\
    \mathrm{ISM}(s) &= \mathbb E_{q_t}\bigl[\|s\|^2 + 2\,\nabla\!\cdot s\bigr]
        = \mathrm{ESM}(s) - \mathbb E_{q_t}\|\nabla\log q_t\|^2
        \quad\text{(Hyv\"arinen, 2005)}, \\
    \mathrm{DSM}(s) &= \mathbb E_{x_0, \varepsilon}\|s(x_t) + \varepsilon/\sigma\|^2
        = \mathrm{ESM}(s) + C(t), \qquad
        C(t) = \frac{d}{\sigma^2} - \mathbb E_{q_t}\|\nabla\log q_t\|^2
        \quad\text{(Vincent, 2011)},

where :math:`d/\sigma^2 = \mathbb E\|\nabla\log q_{t|0}(x_t \mid x_0)\|^2`. The constants do
not depend on :math:`s`, so minimising the computable ISM or DSM minimises the uncomputable ESM.
Since :math:`\mathrm{ESM} \ge 0` with equality at the true score, :math:`C(t) \ge 0` is the DSM
loss of the exact score, the floor no network goes below: a DSM training curve plateaus well
above zero even for a perfect network (for the :math:`\sigma^2`-weighted loss, at
:math:`\mathbb E_t[\sigma^2 C]`).

**Training.** :class:`ScoreMLP` is a small MLP with a sinusoidal time embedding, :class:`EMA`
keeps an exponential moving average of its weights, :func:`train` fits it with Adam on samples
of the data alone, and :func:`score_function` turns the result into the ``score(x, t)`` that
the samplers of :mod:`diffnotes.sde` take.
"""

from __future__ import annotations

from ._optional import score_needs  # noqa: F401  # isort: skip (missing torch: pip hint)
import copy
import math
import numbers
import time as _time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ._checks import as_rng, positive_float, positive_int, real_array
from .sde import LinearSDE, _fd_divergence
from .utils import device as default_device
from .utils import torch_threads

__all__ = [
    "EMA",
    "PARAMETERIZATIONS",
    "WEIGHTINGS",
    "ScoreMLP",
    "TrainResult",
    "data_to_noise",
    "data_to_score",
    "denoising_loss",
    "denoising_sm",
    "dsm_loss",
    "explicit_sm",
    "implicit_sm",
    "noise_to_data",
    "noise_to_score",
    "score_function",
    "score_to_data",
    "score_to_noise",
    "train",
]

PARAMETERIZATIONS = ("noise", "score", "data")
"""What a network's raw output stands for: the noise, the score or the clean point."""

WEIGHTINGS = ("sigma2", "likelihood", "none")
r"""Time weightings :math:`\lambda(t)` of the DSM loss: :math:`\sigma^2`, :math:`g^2`, 1."""


# --------------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------------
def _is_torch(x) -> bool:
    return isinstance(x, torch.Tensor)


def _choice(value, name, allowed):
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


def _array(x, name, like=None):
    """``x`` as a finite float array or tensor of at least one dimension, of the kind of
    ``like`` when given (a tensor on its device, or a NumPy array), else of its own kind."""
    if _is_torch(x):
        if like is not None and not _is_torch(like):
            x = x.detach().cpu().numpy()
        else:
            if not torch.is_floating_point(x):
                x = x.to(torch.get_default_dtype())
            if x.ndim == 0:
                raise ValueError(f"{name} must be an array of points, got a scalar")
            if not bool(torch.isfinite(x).all()):
                raise ValueError(f"{name} must contain only finite numbers (no NaN or inf)")
            return x
    arr = real_array(x, name)
    if arr.ndim == 0:
        raise ValueError(f"{name} must be an array of points, got a scalar")
    if like is not None and _is_torch(like):
        return torch.as_tensor(arr, dtype=like.dtype, device=like.device)
    return arr


def _shape(x):
    return tuple(x.shape)


def _coefficient(c, name, x, *, positive=True):
    """A kernel coefficient (``alpha``, ``sigma`` or ``g2``) made to broadcast against ``x``.

    A float or 0-d value is used as is; one value per point, of shape ``(m,)`` or ``(m, 1)``
    with ``m = x.shape[0]``, becomes a column ``(m, 1)`` (for 1-D ``x``, shape ``(m,)``).
    """
    if not _is_torch(c):
        c = real_array(c, name)
    if c.ndim == 0:
        v = float(c)
        if not math.isfinite(v) or (positive and v <= 0):
            raise ValueError(f"{name} must be finite and > 0, got {v}")
        return v
    c = _array(c, name, like=x)
    if positive and not bool((c > 0).all()):
        raise ValueError(f"{name} must be > 0")
    m = x.shape[0]
    if c.shape == (m,) or c.shape == (m, 1):
        return c.reshape(m, 1) if x.ndim >= 2 else c.reshape(m)
    raise ValueError(f"{name} must be a float or one value per point, of shape ({m},) or "
                     f"({m}, 1), got shape {_shape(c)}")


def _pair(a, b, name_a, name_b):
    like = a if _is_torch(a) else b if _is_torch(b) else None
    a, b = _array(a, name_a, like=like), _array(b, name_b, like=like)
    if _shape(a) != _shape(b):
        raise ValueError(f"{name_b} must have the shape of {name_a} {_shape(a)}, got "
                         f"{_shape(b)}")
    return a, b


# --------------------------------------------------------------------------------------------
# Conversions between the parameterisations
# --------------------------------------------------------------------------------------------
def noise_to_score(eps_hat, sigma):
    r"""The score :math:`s = -\hat\varepsilon/\sigma` of a noise prediction.

    ``eps_hat`` is an array or tensor of shape ``(m, d)`` (or ``(m,)``); ``sigma`` a float or
    one value per point, of shape ``(m,)`` or ``(m, 1)``. The result has the shape of
    ``eps_hat``; it is a tensor if the points (here ``eps_hat``; for the other conversions also
    ``x``) include one, else a NumPy array, and the coefficients are converted to match. The
    same holds for every conversion.
    """
    eps_hat = _array(eps_hat, "eps_hat")
    return -eps_hat / _coefficient(sigma, "sigma", eps_hat)


def score_to_noise(s, sigma):
    r"""The noise prediction :math:`\hat\varepsilon = -\sigma s` of a score."""
    s = _array(s, "s")
    return -_coefficient(sigma, "sigma", s) * s


def data_to_score(x0_hat, x, alpha, sigma):
    r"""The score :math:`s = (\alpha\hat x_0 - x)/\sigma^2` of a clean-point prediction
    ``x0_hat`` at the noisy points ``x``."""
    x0_hat, x = _pair(x0_hat, x, "x0_hat", "x")
    alpha, sigma = _coefficient(alpha, "alpha", x), _coefficient(sigma, "sigma", x)
    return (alpha * x0_hat - x) / sigma**2


def score_to_data(s, x, alpha, sigma):
    r"""Tweedie's formula: the denoised point :math:`\hat x_0 = (x + \sigma^2 s)/\alpha`
    (the posterior mean :math:`\mathbb E[x_0 \mid x_t = x]` when ``s`` is the true score)."""
    s, x = _pair(s, x, "s", "x")
    alpha, sigma = _coefficient(alpha, "alpha", x), _coefficient(sigma, "sigma", x)
    return (x + sigma**2 * s) / alpha


def noise_to_data(eps_hat, x, alpha, sigma):
    r"""The clean point :math:`\hat x_0 = (x - \sigma\hat\varepsilon)/\alpha` implied by a noise
    prediction."""
    eps_hat, x = _pair(eps_hat, x, "eps_hat", "x")
    alpha, sigma = _coefficient(alpha, "alpha", x), _coefficient(sigma, "sigma", x)
    return (x - sigma * eps_hat) / alpha


def data_to_noise(x0_hat, x, alpha, sigma):
    r"""The noise :math:`\hat\varepsilon = (x - \alpha\hat x_0)/\sigma` implied by a clean-point
    prediction."""
    x0_hat, x = _pair(x0_hat, x, "x0_hat", "x")
    alpha, sigma = _coefficient(alpha, "alpha", x), _coefficient(sigma, "sigma", x)
    return (x - alpha * x0_hat) / sigma


def _to_score(output, parameterization, x, alpha, sigma):
    """Unchecked: the score from a raw output (``alpha``, ``sigma`` already broadcastable)."""
    if parameterization == "noise":
        return -output / sigma
    if parameterization == "data":
        return (alpha * output - x) / sigma**2
    return output


# --------------------------------------------------------------------------------------------
# The denoising score-matching loss
# --------------------------------------------------------------------------------------------
def _dsm_loss(output, x0, xt, eps, alpha, sigma, parameterization, weighting, g2):
    """Unchecked :func:`dsm_loss` (coefficients already of shape (m, 1) or floats)."""
    # residual in noise units, r = sigma s_theta + eps = eps - eps_hat(s_theta), written so that
    # each parameterisation gets it without dividing by sigma and multiplying back
    if parameterization == "noise":
        r = eps - output
    elif parameterization == "score":
        r = sigma * output + eps
    else:   # data: eps_hat - eps = alpha (x0 - x0_hat) / sigma, since xt = alpha x0 + sigma eps
        r = alpha * (output - x0) / sigma
    per_sample = (r * r).sum(dim=1) if _is_torch(r) else np.sum(r * r, axis=1)
    if weighting == "sigma2":
        w = None
    elif weighting == "likelihood":
        w = g2 / sigma**2
    else:
        w = 1.0 / sigma**2
    if w is not None:
        w = w.reshape(-1) if not isinstance(w, float) and w.ndim > 0 else w
        per_sample = w * per_sample
    return per_sample.mean()


def dsm_loss(output, x0, xt, eps, alpha, sigma, *, parameterization: str = "noise",
             weighting: str = "sigma2", g2=None):
    r"""The denoising score-matching loss of a batch,
    :math:`\frac1m\sum_i \lambda(t_i)\,\|s_\theta(x_{t,i}, t_i) + \varepsilon_i/\sigma_i\|^2`.

    Parameters
    ----------
    output : tensor or array of shape (m, d)
        The network's raw output at the noisy points ``xt``, read according to
        ``parameterization``: ``"noise"`` (a prediction of ``eps``), ``"score"`` (the score
        itself) or ``"data"`` (a prediction of ``x0``).
    x0, xt, eps : tensors or arrays of shape (m, d)
        Clean points, noisy points and the standard normal noise, with
        ``xt = alpha * x0 + sigma * eps``.
    alpha, sigma : floats or shape (m,) or (m, 1)
        The kernel coefficients at each point's time.
    weighting : str
        ``"sigma2"`` (:math:`\lambda = \sigma^2`; with the noise parameterisation the loss is
        exactly ``mean ||output - eps||^2``), ``"likelihood"`` (:math:`\lambda = g(t)^2`; needs
        ``g2``, of the same shapes as ``sigma``) or ``"none"`` (:math:`\lambda = 1`).

    Returns
    -------
    A 0-d tensor (differentiable) for tensor inputs, else a float.

    Notes
    -----
    The loss is computed from the residual in noise units,
    :math:`\sigma s_\theta + \varepsilon` (for the noise parameterisation
    :math:`\varepsilon - \hat\varepsilon`, for the data parameterisation
    :math:`\alpha(\hat x_0 - x_0)/\sigma`), times :math:`\lambda/\sigma^2`. For one set of
    outputs converted between parameterisations (:func:`noise_to_score`...) the three losses
    agree up to rounding.
    """
    parameterization = _choice(parameterization, "parameterization", PARAMETERIZATIONS)
    weighting = _choice(weighting, "weighting", WEIGHTINGS)
    output = _array(output, "output")
    if output.ndim != 2:
        raise ValueError(f"output must have shape (m, d), got {_shape(output)}")
    x0 = _array(x0, "x0", like=output)
    xt = _array(xt, "xt", like=output)
    eps = _array(eps, "eps", like=output)
    for name, a in (("x0", x0), ("xt", xt), ("eps", eps)):
        if _shape(a) != _shape(output):
            raise ValueError(f"{name} must have the shape of output {_shape(output)}, got "
                             f"{_shape(a)}")
    alpha = _coefficient(alpha, "alpha", output)
    sigma = _coefficient(sigma, "sigma", output)
    if weighting == "likelihood":
        if g2 is None:
            raise ValueError("g2 (the squared diffusion coefficient g(t)^2 at each point's time) "
                             "is needed for weighting='likelihood'")
        g2 = _coefficient(g2, "g2", output)
    loss = _dsm_loss(output, x0, xt, eps, alpha, sigma, parameterization, weighting, g2)
    return loss if _is_torch(loss) else float(loss)


def _check_sde(sde):
    if not isinstance(sde, LinearSDE):
        raise ValueError(f"sde must be a linear SDE of diffnotes.sde (OU, VPSDE, SubVPSDE, "
                         f"VESDE), got {type(sde).__name__}")
    return sde


def _check_t_min(t_min, sde):
    t_min = positive_float(t_min, "t_min")
    if not t_min < sde.T:
        raise ValueError(f"t_min must be < sde.T = {sde.T:g}, got {t_min:g}")
    return t_min


def _parameterization_of(model):
    p = getattr(model, "parameterization", None)
    if p not in PARAMETERIZATIONS:
        raise ValueError(f"model must have a parameterization attribute, one of "
                         f"{', '.join(map(repr, PARAMETERIZATIONS))} (like ScoreMLP), got {p!r}")
    return p


def _noisy_batch(x0, sde, generator, t_min):
    """``t ~ U(t_min, T)``, ``eps``, ``x_t`` and the kernel coefficients (as columns)."""
    m = x0.shape[0]
    t = t_min + (sde.T - t_min) * torch.rand(m, generator=generator, device=x0.device,
                                             dtype=x0.dtype)
    eps = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    alpha, sigma = sde._alpha_sigma(t)
    alpha, sigma = alpha[:, None], sigma[:, None]
    return t, eps, alpha * x0 + sigma * eps, alpha, sigma


def _denoising_loss(model, x0, sde, generator, t_min, weighting, parameterization):
    t, eps, xt, alpha, sigma = _noisy_batch(x0, sde, generator, t_min)
    g2 = sde._g2(t)[:, None] if weighting == "likelihood" else None
    return _dsm_loss(model(xt, t), x0, xt, eps, alpha, sigma, parameterization, weighting, g2)


def denoising_loss(model, x0, sde, generator, *, t_min: float = 1e-3,
                   weighting: str = "sigma2"):
    r"""One Monte Carlo estimate of the DSM loss on the clean batch ``x0`` (a tensor of shape
    ``(m, d)``): draws :math:`t \sim \mathcal U(t_{\min}, T)` and :math:`\varepsilon` per point
    from the ``torch.Generator`` ``generator``, forms :math:`x_t`, calls ``model(x_t, t)`` and
    returns :func:`dsm_loss` (a differentiable 0-d tensor) for the model's ``parameterization``.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    parameterization = _parameterization_of(model)
    sde = _check_sde(sde)
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if not _is_torch(x0) or x0.ndim != 2:
        raise ValueError("x0 must be a tensor of shape (m, d)")
    x0 = _array(x0, "x0")
    dx, dg = x0.device, generator.device
    if dx.type != dg.type or (dx.index is not None and dg.index is not None
                              and dx.index != dg.index):
        raise ValueError(f"generator must be on the device of x0 ({x0.device}), got "
                         f"{generator.device}")
    t_min = _check_t_min(t_min, sde)
    weighting = _choice(weighting, "weighting", WEIGHTINGS)
    return _denoising_loss(model, x0, sde, generator, t_min, weighting, parameterization)


# --------------------------------------------------------------------------------------------
# Three score-matching objectives at a fixed time (NumPy, for the "why DSM works" section)
# --------------------------------------------------------------------------------------------
def _call(score, x, t, name="score"):
    if not callable(score):
        raise ValueError(f"{name} must be a callable {name}(x, t) -> array shaped like x")
    out = np.asarray(score(x, t), dtype=float)
    if out.shape != x.shape:
        raise ValueError(f"{name}(x, t) must return an array of shape {x.shape}, got "
                         f"{out.shape}")
    return out


def _points(x, name):
    x = real_array(x, name, ndim=2)
    if x.shape[0] < 1:
        raise ValueError(f"{name} must hold at least one point")
    return x


def explicit_sm(score, exact_score, x, t: float) -> float:
    r"""Explicit score matching :math:`\frac1m\sum_i\|s(x_i, t) - \nabla\log q_t(x_i)\|^2`,
    the Fisher divergence between the model and the data at time ``t``, on points ``x`` of
    shape ``(m, d)`` drawn from :math:`q_t`. ``score`` and ``exact_score`` are score functions
    ``(x, t) -> (m, d)`` (e.g. ``GaussianMixture.score_function(sde)``). Needs the exact score:
    the quantity we would like to minimise but cannot compute for real data."""
    x = _points(x, "x")
    t = positive_float(t, "t", allow_zero=True)
    d = _call(score, x, t) - _call(exact_score, x, t, "exact_score")
    return float(np.mean(np.sum(d * d, axis=1)))


def implicit_sm(score, x, t: float, *, divergence: Callable | None = None,
                fd_step: float = 1e-4) -> float:
    r"""Implicit score matching (Hyvärinen, 2005),
    :math:`\frac1m\sum_i\bigl[\|s(x_i, t)\|^2 + 2\,\nabla\!\cdot s(x_i, t)\bigr]`, on points
    ``x`` of shape ``(m, d)`` drawn from :math:`q_t`; equal in expectation to
    :func:`explicit_sm` minus :math:`\mathbb E_{q_t}\|\nabla\log q_t\|^2` (integration by
    parts), without the exact score. The divergence is ``divergence(x, t) -> (m,)`` when given,
    else central differences with step ``fd_step`` (``2 d`` extra calls of ``score``)."""
    x = _points(x, "x")
    t = positive_float(t, "t", allow_zero=True)
    fd_step = positive_float(fd_step, "fd_step", upper=0.1)
    s = _call(score, x, t)
    if divergence is None:
        div = _fd_divergence(lambda z, s_t: _call(score, z, s_t), fd_step)(x, t)
    else:
        if not callable(divergence):
            raise ValueError("divergence must be None or a callable divergence(x, t) -> (m,)")
        div = np.asarray(divergence(x, t), dtype=float)
        if div.shape != (x.shape[0],):
            raise ValueError(f"divergence(x, t) must return shape ({x.shape[0]},), got "
                             f"{div.shape}")
    return float(np.mean(np.sum(s * s, axis=1) + 2 * div))


def denoising_sm(score, x0, t: float, sde, rng) -> float:
    r"""Denoising score matching (Vincent, 2011) at the fixed time ``t``,
    :math:`\frac1m\sum_i\|s(x_{t,i}, t) + \varepsilon_i/\sigma(t)\|^2` with
    :math:`x_{t,i} = \alpha(t) x_{0,i} + \sigma(t)\varepsilon_i`, drawn by
    ``sde.sample_marginal(x0, t, rng, return_noise=True)`` (so the same seed gives the same
    noisy points). Equal in expectation to :func:`explicit_sm` plus
    :math:`C(t) = d/\sigma(t)^2 - \mathbb E_{q_t}\|\nabla\log q_t\|^2 \ge 0` (the value at the
    exact score), and needs only clean data ``x0`` of shape ``(m, d)``."""
    sde = _check_sde(sde)
    x0 = _points(x0, "x0")
    t = positive_float(t, "t")
    as_rng(rng)  # validate before drawing
    xt, eps = sde.sample_marginal(x0, t, rng, return_noise=True)
    _, sigma = sde.alpha_sigma(t)
    r = _call(score, xt, t) + eps / sigma
    return float(np.mean(np.sum(r * r, axis=1)))


# --------------------------------------------------------------------------------------------
# The network and its moving average
# --------------------------------------------------------------------------------------------
class ScoreMLP(nn.Module):
    r"""A small MLP for the score of a low-dimensional distribution.

    The input is the point :math:`x` concatenated with a sinusoidal embedding of the time,
    :math:`(\sin \omega_k t, \cos \omega_k t)_{k < E/2}` with frequencies :math:`\omega_k`
    spaced geometrically from 1 to 1000 (so that both :math:`t \approx 10^{-3}` and
    :math:`t \approx 1` are resolved), followed by ``depth`` hidden layers of width ``hidden``
    with SiLU activations and a linear output of dimension ``dim``.

    Parameters
    ----------
    dim : int
        Dimension of the data.
    hidden, depth : int
        Width and number of hidden layers.
    embed_dim : int
        Size of the time embedding (even).
    parameterization : str
        What :meth:`forward` predicts: ``"noise"`` (default), ``"score"`` or ``"data"``;
        :meth:`score` converts it to a score.
    seed : int
        Seed of the initial weights (drawn without touching torch's global random state).

    Notes
    -----
    The network sees :math:`x_t` unscaled: it suits SDEs whose marginals stay of order one
    (:class:`~diffnotes.sde.VPSDE`, :class:`~diffnotes.sde.SubVPSDE`,
    :class:`~diffnotes.sde.OU`), not :class:`~diffnotes.sde.VESDE` with a large
    :math:`\sigma_{\max}`, whose inputs would need rescaling by :math:`1/\sqrt{1 + \sigma^2}`.
    """

    def __init__(self, dim: int = 2, hidden: int = 128, depth: int = 3, embed_dim: int = 32,
                 parameterization: str = "noise", *, seed: int = 0):
        super().__init__()
        self.dim = positive_int(dim, "dim")
        self.hidden = positive_int(hidden, "hidden")
        self.depth = positive_int(depth, "depth")
        self.embed_dim = positive_int(embed_dim, "embed_dim", minimum=2)
        if self.embed_dim % 2:
            raise ValueError(f"embed_dim must be even, got {embed_dim}")
        self.parameterization = _choice(parameterization, "parameterization", PARAMETERIZATIONS)
        seed = positive_int(seed, "seed", minimum=0)
        half = self.embed_dim // 2
        self.register_buffer("freqs", torch.exp(torch.linspace(0.0, math.log(1000.0), half)))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            layers: list[nn.Module] = [nn.Linear(self.dim + self.embed_dim, self.hidden),
                                       nn.SiLU()]
            for _ in range(self.depth - 1):
                layers += [nn.Linear(self.hidden, self.hidden), nn.SiLU()]
            layers.append(nn.Linear(self.hidden, self.dim))
            self.net = nn.Sequential(*layers)

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, hidden={self.hidden}, depth={self.depth}, "
                f"embed_dim={self.embed_dim}, parameterization={self.parameterization!r}")

    def _times(self, x, t):
        return _batch_times(x, t)

    def embed(self, t):
        """The sinusoidal embedding of the times ``t`` (shape ``(m,)``), shape ``(m, E)``."""
        return _sinusoidal(t, self.freqs)

    def forward(self, x, t):
        """The raw output at points ``x`` (tensor ``(m, dim)``) and times ``t`` (a float, or a
        tensor of shape ``(m,)``): a noise, score or clean-point prediction, see
        ``parameterization``."""
        t = self._times(x, t)
        return self.net(torch.cat([x, self.embed(t)], dim=1))

    def score(self, x, t, sde):
        """The score at points ``x`` and times ``t`` under the linear ``sde``, converted from
        the raw output by the parameterisation (differentiable)."""
        return _model_score(self, x, self._times(x, t), _check_sde(sde))


def _batch_times(x, t):
    """One time per point of the batch ``x``: ``t`` a float, a 0-d or an ``(m,)`` array or tensor,
    returned as a tensor of shape ``(m,)`` on the device and of the dtype of ``x``."""
    if isinstance(t, numbers.Real) and not isinstance(t, bool):
        return torch.full((x.shape[0],), float(t), dtype=x.dtype, device=x.device)
    if not _is_torch(t):
        t = torch.as_tensor(np.array(t, dtype=float), dtype=x.dtype, device=x.device)
    t = t.to(device=x.device, dtype=x.dtype)
    if t.ndim == 0:
        return t.expand(x.shape[0])
    if t.shape != (x.shape[0],):
        raise ValueError(f"t must be a float or have shape ({x.shape[0]},), got "
                         f"{tuple(t.shape)}")
    return t


def _sinusoidal(t, freqs):
    r"""The embedding :math:`(\sin \omega_k t, \cos \omega_k t)_k` of times ``t`` (shape
    ``(m,)``) at frequencies ``freqs``: shape ``(m, 2 len(freqs))``."""
    ft = t[:, None] * freqs
    return torch.cat([torch.sin(ft), torch.cos(ft)], dim=1)


def _model_score(model, x, t, sde):
    alpha, sigma = sde._alpha_sigma(t)
    return _to_score(model(x, t), model.parameterization, x, alpha[:, None], sigma[:, None])


class EMA:
    r"""An exponential moving average of a model's weights,
    :math:`\bar\theta \leftarrow \beta_n\bar\theta + (1 - \beta_n)\theta` at the
    :math:`n`-th :meth:`update`.

    Averaging the iterates of a noisy optimiser gives a smoother, usually better, model than the
    last iterate; it is what diffusion models are sampled from. With decay :math:`\beta` the
    average spans about :math:`1/(1 - \beta)` steps. With ``warmup`` (the default) the decay
    starts small, :math:`\beta_n = \min\bigl(\beta, (1 + n)/(10 + n)\bigr)`, so that the
    average forgets the random initial weights quickly and is useful even after a short run.

    Parameters
    ----------
    model : torch.nn.Module
        The model being trained; :attr:`model` is a frozen copy (same device) in eval mode.
    decay : float in [0, 1)
        :math:`\beta`; 0 copies the weights at every update.
    warmup : bool
        Use :math:`\beta_n` above instead of :math:`\beta` from the first update on.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, *, warmup: bool = True):
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        decay = positive_float(decay, "decay", allow_zero=True)
        if not decay < 1:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.warmup = bool(warmup)
        self.source = model
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.n_updates = 0

    def current_decay(self) -> float:
        r"""The decay :math:`\beta_n` the next :meth:`update` will use."""
        if not self.warmup:
            return self.decay
        return min(self.decay, (1 + self.n_updates) / (10 + self.n_updates))

    @torch.no_grad()
    def update(self) -> None:
        """Move the average toward the current weights of the source model (buffers are
        copied)."""
        w = 1.0 - self.current_decay()
        for avg, p in zip(self.model.parameters(), self.source.parameters(), strict=True):
            avg.lerp_(p.detach(), w)
        for avg, b in zip(self.model.buffers(), self.source.buffers(), strict=True):
            avg.copy_(b)
        self.n_updates += 1


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    """The outcome of :func:`train`.

    Attributes
    ----------
    model : torch.nn.Module
        The trained network (last iterate), in eval mode.
    ema : torch.nn.Module
        The moving average of its weights (:class:`EMA`): sample from this one.
    losses : ndarray of shape (n_steps,)
        The minibatch loss at every step (noisy: see :meth:`smoothed_losses`).
    seconds : float
        Wall time of the training loop.
    """

    model: nn.Module
    ema: nn.Module
    losses: np.ndarray
    seconds: float

    def smoothed_losses(self, window: int = 100) -> np.ndarray:
        """The running mean of the losses over the last ``window`` steps (fewer at the start),
        shape ``(n_steps,)``."""
        window = positive_int(window, "window")
        c = np.concatenate([[0.0], np.cumsum(self.losses)])
        i = np.arange(1, self.losses.size + 1)
        lo = np.maximum(i - window, 0)
        return (c[i] - c[lo]) / (i - lo)


def _batches(data, dim, batch_size, dev, gen, seed):
    """A function ``() -> (batch_size, d)`` float32 tensor on ``dev`` drawing minibatches."""
    if callable(data):
        rng = np.random.default_rng(seed)

        def draw():
            x = np.asarray(data(batch_size, rng), dtype=np.float32)
            if x.shape != (batch_size, dim) or not np.all(np.isfinite(x)):
                raise ValueError(f"data(n, rng) must return n finite points of shape "
                                 f"({batch_size}, {dim}), got shape {x.shape}"
                                 + ("" if x.shape != (batch_size, dim) else " with non-finite "
                                    "values"))
            return torch.from_numpy(x).to(dev)

        return draw
    if _is_torch(data):
        x = data.detach()
        if not torch.is_floating_point(x) or not bool(torch.isfinite(x).all()):
            raise ValueError("data must contain only finite real numbers (no NaN or inf)")
        x = x.to(device=dev, dtype=torch.float32)
    else:
        x = torch.as_tensor(real_array(data, "data"), dtype=torch.float32, device=dev)
    if x.ndim != 2 or x.shape[1] != dim or x.shape[0] < 1:
        raise ValueError(f"data must have shape (n, {dim}) with n >= 1 (the model's dim), got "
                         f"{tuple(x.shape)}")
    n = x.shape[0]

    def draw_rows():
        return x[torch.randint(0, n, (batch_size,), generator=gen, device=dev)]

    return draw_rows


def _optimise(net, ema, opt, loss_at, n_steps, *, grad_clip, sched, desc, progress, leave,
              where):
    """``n_steps`` optimiser steps on ``loss_at(i)`` (a scalar tensor), with optional gradient
    clipping and learning-rate schedule, an EMA update after each step, a ``tqdm`` bar and a
    ``FloatingPointError`` on a non-finite loss. The loop shared by every trainer of the book
    (:func:`train`, :class:`diffnotes.dsb.DSB`, :class:`diffnotes.dsb.BridgeMatching`)."""
    from tqdm.auto import trange

    losses = np.empty(n_steps)
    bar = trange(n_steps, disable=not progress, leave=leave, desc=desc)
    for i in bar:
        loss = loss_at(i)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
        opt.step()
        if sched is not None:
            sched.step()
        ema.update()
        losses[i] = loss.item()
        if not math.isfinite(losses[i]):
            raise FloatingPointError(f"{where}: the loss is {losses[i]} at step {i} of {desc}: "
                                     f"lower lr (or check the data)")
        if progress and i % 100 == 0:
            bar.set_postfix(loss=f"{losses[max(0, i - 99):i + 1].mean():.3g}", refresh=False)
    return losses


def train(model: nn.Module, sde, data, *, n_steps: int = 3000, batch_size: int = 256,
          lr: float = 2e-2, ema_decay: float = 0.995, weighting: str = "sigma2",
          t_min: float = 1e-3, seed: int = 0, device=None, progress: bool = True,
          grad_clip: float | None = 1.0, leave: bool = True,
          cpu_threads: int | None = 1) -> TrainResult:
    r"""Fit ``model`` to the score of ``data`` diffused by ``sde``, by denoising score matching.

    Each step draws a minibatch of ``batch_size`` clean points, a time
    :math:`t \sim \mathcal U(t_{\min}, T)` and a noise per point, and takes one Adam step on
    :func:`dsm_loss` for the model's ``parameterization``. The learning rate follows a cosine
    decay from ``lr`` to ``lr / 100`` over the ``n_steps`` steps (large steps early, small ones
    to settle at the end), gradients are clipped to norm ``grad_clip``, and an :class:`EMA` with
    ``ema_decay`` (and warm-up) averages the iterates.

    The defaults are calibrated for :class:`ScoreMLP`'s defaults on 2-D toys with
    :class:`~diffnotes.sde.VPSDE`: on one CPU core, 3000 steps take about 7 s, and 2000
    Euler-Maruyama samples (1000 steps) from the averaged model of the two-moons mixture
    (:func:`diffnotes.mixtures.moons_mixture`) are then at the sliced-:math:`W_2` noise floor
    of 2000 exact draws, as close as the same sampler with the exact score (1.1x the floor in
    ``benchmarks/bench_score.py``, 0.9-1.3x over seeds). The peak rate is high for
    Adam; the small network tolerates it, and it is what resolves the fine structure of the
    score at small :math:`t` within a few thousand steps.

    Parameters
    ----------
    model : torch.nn.Module
        ``model(x, t) -> (m, d)`` with a ``parameterization`` attribute, e.g. :class:`ScoreMLP`.
        It is trained in place (and moved to ``device``).
    sde : LinearSDE
        The forward process (:class:`~diffnotes.sde.VPSDE`...).
    data : array or tensor of shape (n, d), or callable
        A training set (minibatches are drawn from it with replacement), or a sampler
        ``data(n, rng)`` with ``rng`` a NumPy Generator (e.g. :func:`diffnotes.data.two_moons`
        or ``GaussianMixture.sample``) for fresh points at every step.
    n_steps, batch_size, lr : training length, minibatch size, peak learning rate.
    ema_decay : float in [0, 1)
        Decay of the weight average.
    weighting : str
        ``"sigma2"``, ``"likelihood"`` or ``"none"`` (see :func:`dsm_loss`).
    t_min : float
        Smallest training time (the samplers stop at the same ``t_min``).
    grad_clip : float or None, default 1.0
        Rescale the gradient to this Euclidean norm when it is larger (``None``: never), which
        tames the rare huge minibatch gradients of the small-time, high-weight terms.
    seed : int
        Seeds every random draw (times, noises, minibatches; a ``data`` sampler gets
        ``numpy.random.default_rng(seed)``): the same seed and model give the same losses.
    device : torch.device or str, optional
        Default :func:`diffnotes.utils.device` (CUDA when present).
    progress, leave : bool
        Show a ``tqdm`` progress bar; keep it once done.
    cpu_threads : int or None, default 1
        Torch's intra-op threads during the loop on the CPU (restored afterwards); ``None``
        keeps torch's setting. A small MLP on minibatches of a few hundred points gains
        nothing from more threads, and several threads spin-waiting on shared cores can make
        a step ten times slower.

    Returns
    -------
    TrainResult

    Raises
    ------
    FloatingPointError
        If the loss becomes non-finite (the step is named): lower ``lr``.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    parameterization = _parameterization_of(model)
    sde = _check_sde(sde)
    n_steps = positive_int(n_steps, "n_steps")
    batch_size = positive_int(batch_size, "batch_size")
    lr = positive_float(lr, "lr")
    ema_decay = positive_float(ema_decay, "ema_decay", allow_zero=True)
    if not ema_decay < 1:
        raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay}")
    weighting = _choice(weighting, "weighting", WEIGHTINGS)
    t_min = _check_t_min(t_min, sde)
    seed = positive_int(seed, "seed", minimum=0)
    if grad_clip is not None:
        grad_clip = positive_float(grad_clip, "grad_clip")
    if cpu_threads is not None:
        cpu_threads = positive_int(cpu_threads, "cpu_threads")
    dev = default_device(device)
    dim = getattr(model, "dim", None)
    if dim is None:
        raise ValueError("model must have a dim attribute (the data dimension), like ScoreMLP")
    if not (isinstance(data, np.ndarray | torch.Tensor | list | tuple) or callable(data)):
        raise ValueError(f"data must be an array of shape (n, {dim}) or a callable "
                         f"data(n, rng), got {type(data).__name__}")

    model.to(dev).train()
    gen = torch.Generator(device=dev).manual_seed(seed)
    draw = _batches(data, dim, batch_size, dev, gen, seed)
    ema = EMA(model, ema_decay)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, n_steps, eta_min=lr / 100)
    t0 = _time.perf_counter()
    with torch_threads(cpu_threads, dev):
        losses = _optimise(
            model, ema, opt,
            lambda i: _denoising_loss(model, draw(), sde, gen, t_min, weighting,
                                      parameterization),
            n_steps, grad_clip=grad_clip, sched=sched, desc="score matching",
            progress=progress, leave=leave, where="train")
    seconds = _time.perf_counter() - t0
    model.eval()
    return TrainResult(model, ema.model, losses, seconds)


# --------------------------------------------------------------------------------------------
# A trained model as a score function for the samplers
# --------------------------------------------------------------------------------------------
def score_function(model: nn.Module, sde, *, device=None) -> Callable:
    """Wrap a trained model as a score function ``(x, t) -> score`` for the samplers of
    :mod:`diffnotes.sde` (:func:`~diffnotes.sde.euler_maruyama`...).

    NumPy points in, a float64 array out; a tensor in, a tensor out (on its device and of its
    dtype). ``t`` is a float (or one time per point). Evaluation is without gradients, in eval
    mode, on ``device`` (default: the device of the model's parameters).
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    _parameterization_of(model)
    sde = _check_sde(sde)
    if device is None:
        p = next(model.parameters(), None)
        dev = p.device if p is not None else torch.device("cpu")
    else:
        dev = default_device(device)
    model.to(dev).eval()
    p = next(model.parameters(), None)
    dtype = p.dtype if p is not None else torch.float32
    dim = getattr(model, "dim", None)

    def score(x, t):
        tensor_in = _is_torch(x)
        xt = x if tensor_in else torch.as_tensor(np.array(x, dtype=float))
        if xt.ndim != 2 or (dim is not None and xt.shape[1] != dim):
            raise ValueError(f"x must have shape (m, {dim if dim is not None else 'd'}), got "
                             f"{tuple(xt.shape)}")
        xm = xt.to(device=dev, dtype=dtype)
        if _is_torch(t):
            tm = t.to(device=dev, dtype=dtype)
        else:
            tm = torch.as_tensor(np.array(t, dtype=float), device=dev, dtype=dtype)
        tm = torch.broadcast_to(tm, (xm.shape[0],))
        with torch.no_grad():
            s = _model_score(model, xm, tm, sde)
        if tensor_in:
            return s.to(device=xt.device, dtype=xt.dtype)
        return s.detach().cpu().double().numpy()

    return score
