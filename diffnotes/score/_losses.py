r"""Denoising score matching (part of :mod:`diffnotes.score`, Chapter 3): the conversions
between the noise, score and data parameterisations, the DSM loss :func:`dsm_loss` and the
per-batch :func:`denoising_loss`, and the three objectives at a fixed time (:func:`explicit_sm`,
:func:`implicit_sm`, :func:`denoising_sm`). NumPy arrays or torch tensors.
"""

from __future__ import annotations

from .._optional import score_needs  # noqa: F401  # isort: skip (missing torch: pip hint)
import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from .._checks import as_rng, positive_float, real_array
from ..sde import LinearSDE, _fd_divergence

__all__ = ["PARAMETERIZATIONS", "WEIGHTINGS", "data_to_noise", "data_to_score", "denoising_loss",
           "denoising_sm", "dsm_loss", "explicit_sm", "implicit_sm", "noise_to_data",
           "noise_to_score", "score_to_data", "score_to_noise", "score_to_velocity",
           "velocity_to_score"]

# documented where they are public, in diffnotes.score
PARAMETERIZATIONS = ("noise", "score", "data", "velocity")
WEIGHTINGS = ("sigma2", "likelihood", "none", "velocity")


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


def score_to_velocity(s, x, alpha, sigma):
    r"""The velocity :math:`v = \alpha\hat\varepsilon - \sigma\hat x_0
    = -\sigma\bigl((\alpha^2 + \sigma^2)\,s + x\bigr)/\alpha` of a score at the noisy points
    ``x`` (Salimans and Ho, 2022: the target of "v-prediction")."""
    s, x = _pair(s, x, "s", "x")
    alpha, sigma = _coefficient(alpha, "alpha", x), _coefficient(sigma, "sigma", x)
    return -sigma * ((alpha**2 + sigma**2) * s + x) / alpha


def velocity_to_score(v_hat, x, alpha, sigma):
    r"""The score :math:`s = -(\sigma x + \alpha\hat v)/\bigl(\sigma(\alpha^2 + \sigma^2)\bigr)`
    of a velocity prediction ``v_hat`` at the noisy points ``x``."""
    v_hat, x = _pair(v_hat, x, "v_hat", "x")
    alpha, sigma = _coefficient(alpha, "alpha", x), _coefficient(sigma, "sigma", x)
    return -(sigma * x + alpha * v_hat) / (sigma * (alpha**2 + sigma**2))


def _to_score(output, parameterization, x, alpha, sigma):
    """Unchecked: the score from a raw output (``alpha``, ``sigma`` already broadcastable)."""
    if parameterization == "noise":
        return -output / sigma
    if parameterization == "data":
        return (alpha * output - x) / sigma**2
    if parameterization == "velocity":
        return -(sigma * x + alpha * output) / (sigma * (alpha**2 + sigma**2))
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
    elif parameterization == "data":
        # eps_hat - eps = alpha (x0 - x0_hat) / sigma, since xt = alpha x0 + sigma eps
        r = alpha * (output - x0) / sigma
    else:   # velocity: eps - eps_hat = alpha (v - v_hat) / (alpha^2 + sigma^2)
        r = alpha * (alpha * eps - sigma * x0 - output) / (alpha**2 + sigma**2)
    per_sample = (r * r).sum(dim=1) if _is_torch(r) else np.sum(r * r, axis=1)
    if weighting == "sigma2":
        w = None
    elif weighting == "likelihood":
        w = g2 / sigma**2
    elif weighting == "velocity":     # lambda / sigma^2 = (alpha^2 + sigma^2)^2 / alpha^2
        w = (alpha**2 + sigma**2) ** 2 / alpha**2
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
        itself), ``"data"`` (a prediction of ``x0``) or ``"velocity"`` (a prediction of
        ``alpha * eps - sigma * x0``).
    x0, xt, eps : tensors or arrays of shape (m, d)
        Clean points, noisy points and the standard normal noise, with
        ``xt = alpha * x0 + sigma * eps``.
    alpha, sigma : floats or shape (m,) or (m, 1)
        The kernel coefficients at each point's time.
    weighting : str
        ``"sigma2"`` (:math:`\lambda = \sigma^2`; with the noise parameterisation the loss is
        exactly ``mean ||output - eps||^2``), ``"likelihood"`` (:math:`\lambda = g(t)^2`; needs
        ``g2``, of the same shapes as ``sigma``), ``"none"`` (:math:`\lambda = 1`) or
        ``"velocity"`` (:math:`\lambda = \sigma^2(\alpha^2 + \sigma^2)^2/\alpha^2`; with the
        velocity parameterisation the loss is exactly ``mean ||output - v||^2``,
        :math:`v = \alpha\varepsilon - \sigma x_0`).

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


