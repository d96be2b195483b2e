r"""What to weight and where to sample (part of :mod:`diffnotes.score`, Chapter 3): the weight
each DSM weighting puts on the noise-prediction error (:func:`loss_weight`), the VP SDE on the
log-SNR clock (:class:`LogSNRClockVP`, for the importance-sampled likelihood weighting), and
the measured records of the weighting experiment (:data:`WEIGHTING_RECORDS`).

Every weighting of :func:`dsm_loss` is a weight :math:`w(t) = \lambda(t)/\sigma(t)^2` on the
noise-prediction error :math:`\|\hat\varepsilon - \varepsilon\|^2`. For any linear SDE the log
noise-to-signal ratio :math:`\lambda_{\mathrm{nsr}} = \log(\sigma^2/\alpha^2)` has derivative
:math:`g^2/\sigma^2` (from :math:`\dot\alpha = -a\alpha` and :math:`\dot{(\sigma^2)} =
-2a\sigma^2 + g^2`), so the likelihood weighting is the one that is uniform in log-SNR, and a
weight per unit of log-SNR is :math:`w(t)\,\sigma^2/g^2`.
"""

from __future__ import annotations

from .._optional import score_needs  # noqa: F401  # isort: skip (missing torch: pip hint)
import numpy as np
import torch

from .._checks import real_array
from ..sde import VPSDE, LinearSDE
from ._losses import WEIGHTINGS, _check_sde, _check_t_min, _choice

__all__ = ["WEIGHTING_RECORDS", "LogSNRClockVP", "loss_weight"]


def loss_weight(sde, t, weighting: str, *, per: str = "t") -> np.ndarray:
    r"""The weight :math:`w = \lambda/\sigma^2` that the DSM weighting ``weighting`` (one of
    ``"sigma2"``, ``"likelihood"``, ``"none"``, ``"velocity"``, as in :func:`dsm_loss`) puts on
    the noise-prediction error :math:`\|\hat\varepsilon - \varepsilon\|^2` at the times ``t``
    (floats in ``(0, T]``, any shape; float64 array of that shape):
    :math:`1`, :math:`g^2/\sigma^2`, :math:`1/\sigma^2` and :math:`(\alpha^2 + \sigma^2)^2/
    \alpha^2`.

    With ``per="log_snr"`` the weight per unit of log-SNR instead of per unit of time,
    :math:`w\,\sigma^2/g^2` (the loss with ``t`` uniform is
    :math:`\int w\,\ell\,dt = \int w\,\sigma^2/g^2\,\ell\,d\log(\alpha^2/\sigma^2)`, up to sign
    and the factor :math:`T - t_{\min}`): for the likelihood weighting it is 1.
    """
    sde = _check_sde(sde)
    weighting = _choice(weighting, "weighting", WEIGHTINGS)
    per = _choice(per, "per", ("t", "log_snr"))
    t = real_array(t, "t")
    if not (np.all(t > 0) and np.all(t <= sde.T)):
        raise ValueError(f"t must be in (0, T] = (0, {sde.T:g}]")
    alpha, sigma = (np.asarray(c, dtype=float) for c in sde._alpha_sigma(t))
    g2 = np.asarray(sde._g2(t), dtype=float) + 0 * t
    w = {"sigma2": np.ones_like(t), "likelihood": g2 / sigma**2, "none": 1 / sigma**2,
         "velocity": (alpha**2 + sigma**2) ** 2 / alpha**2}[weighting]
    return w * sigma**2 / g2 if per == "log_snr" else w


class LogSNRClockVP(LinearSDE):
    r"""The VP SDE run on the clock :math:`u` along which its log noise-to-signal ratio
    :math:`\lambda = \log(\sigma^2/\alpha^2)` grows linearly, from its value at ``t_min``
    (:math:`u = t_{\min}`) to its value at :math:`T` (:math:`u = T`). With :math:`B = -2\log\alpha`,
    :math:`\lambda = \log(e^B - 1)`, so :math:`B(u) = \operatorname{softplus}(\lambda(u))`, and
    :math:`g^2(u) = dB/du`.

    :func:`train` on this SDE draws :math:`u` uniformly, that is the VP time :math:`t` with
    density :math:`p(t) \propto d\lambda/dt = g^2/\sigma^2`; with the ``"sigma2"`` weighting this
    is the likelihood weighting, importance-sampled: the weight :math:`g^2/\sigma^2` over the
    density is a constant, :attr:`c`, which is also :math:`g^2/\sigma^2` on this clock.
    :meth:`u_of_t` maps VP times to the clock, so a network trained here has the VP score
    ``s(x, u_of_t(t))``. Parameters as :class:`~diffnotes.sde.VPSDE`, plus ``t_min``.
    """

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, T: float = 1.0,
                 t_min: float = 1e-3):
        self.vp = VPSDE(beta_min, beta_max, T)
        super().__init__(self.vp.T, "")
        self.t_min = _check_t_min(t_min, self.vp)
        self.l0, self.l1 = (float(self._lam_vp(t)) for t in (self.t_min, self.T))
        self.c = (self.l1 - self.l0) / (self.T - self.t_min)
        self.name = f"LogSNRClockVP(beta_min={beta_min:g}, beta_max={beta_max:g})"

    def _lam_vp(self, t):
        a, s = self.vp._alpha_sigma(np.asarray(t, dtype=float))
        return 2 * (np.log(s) - np.log(a))

    def u_of_t(self, t):
        """The clock time ``u`` of the VP times ``t`` (floats in ``(0, T]``)."""
        t = real_array(t, "t")
        if not (np.all(t > 0) and np.all(t <= self.T)):
            raise ValueError(f"t must be in (0, T] = (0, {self.T:g}]")
        return self.t_min + (self._lam_vp(t) - self.l0) / self.c

    def _lam(self, u):
        return self.l0 + self.c * (u - self.t_min)

    def _a(self, u):
        return 0.5 * self._g2(u)

    def _g2(self, u):
        lam = self._lam(u)
        return self.c / (1 + (torch.exp(-lam) if torch.is_tensor(lam) else np.exp(-lam)))

    def _alpha_sigma(self, u):
        xp = torch if torch.is_tensor(u) else np
        lam = self._lam(u)
        b = torch.nn.functional.softplus(lam) if xp is torch else np.logaddexp(0.0, lam)
        return xp.exp(-0.5 * b), xp.sqrt(-xp.expm1(-b))


# Measured by ``OMP_NUM_THREADS=1 python -m benchmarks score_weighting`` (the case
# ``score_weighting_moons`` of benchmarks/bench_score.py), on the 2-core CPU machine of the
# book's build (shared with other jobs; load average about 5), 2026-12-01: ScoreMLP defaults,
# score.train defaults (3000 steps, batch 256, fresh draws of moons_mixture(), VPSDE()), seeds
# 0 and 1; SW2 of 2000 Euler-Maruyama-1000 and Heun-18 samples to 2000 fresh draws of the data
# noised to t_min = 1e-3 (floor: 5 pairs of exact draws); NLL in nats of 500 held-out draws of
# that law by the ODE (sde.log_likelihood, rtol = atol = 1e-4) and their exact NLL; em_far: EM
# samples beyond |x| = 4; rel_err: relative L2 error of the score against the exact one on
# draws of q_t at err_times. Seeded: a rerun reproduced the three uniform-t variants to all
# the digits shown (only seconds vary).
WEIGHTING_RECORDS: dict = {
    "err_times": (0.01, 0.1, 0.5),
    "n_steps": 3000,
    "n": 2000,
    "n_nll": 500,
    "floor_mean": 0.04031,
    "floor_sd": 0.008172,
    "exact_nll": 1.164,
    "runs": {
        "noise, sigma2": [
            {"seed": 0, "seconds": 14.7, "sw2_em": 0.05749, "sw2_heun": 0.07918,
             "nll": 1.415, "nll_gap_se": 0.02047, "em_far": 0,
             "rel_err": [0.6497, 0.1668, 0.0162]},
            {"seed": 1, "seconds": 14.0, "sw2_em": 0.04403, "sw2_heun": 0.0606,
             "nll": 1.388, "nll_gap_se": 0.02114, "em_far": 0,
             "rel_err": [0.6406, 0.1798, 0.0131]},
        ],
        "noise, likelihood": [
            {"seed": 0, "seconds": 15.8, "sw2_em": 0.05819, "sw2_heun": 0.08136,
             "nll": 1.61, "nll_gap_se": 0.03436, "em_far": 0,
             "rel_err": [0.7878, 0.2291, 0.0296]},
            {"seed": 1, "seconds": 15.7, "sw2_em": 0.06685, "sw2_heun": 0.08356,
             "nll": 1.529, "nll_gap_se": 0.03242, "em_far": 0,
             "rel_err": [0.7693, 0.261, 0.0285]},
        ],
        "velocity, velocity": [
            {"seed": 0, "seconds": 15.4, "sw2_em": 1682.0, "sw2_heun": 0.1361,
             "nll": 1.753, "nll_gap_se": 0.02949, "em_far": 6,
             "rel_err": [0.8615, 0.4488, 0.0074]},
            {"seed": 1, "seconds": 19.8, "sw2_em": 0.1171, "sw2_heun": 0.1234,
             "nll": 1.763, "nll_gap_se": 0.03051, "em_far": 0,
             "rel_err": [0.8669, 0.4429, 0.0076]},
        ],
        "noise, likelihood, IS": [
            {"seed": 0, "seconds": 10.8, "sw2_em": 0.06247, "sw2_heun": 0.07898,
             "nll": 1.431, "nll_gap_se": 0.02395, "em_far": 0,
             "rel_err": [0.6206, 0.1435, 0.0196]},
            {"seed": 1, "seconds": 10.3, "sw2_em": 0.03909, "sw2_heun": 0.0619,
             "nll": 1.374, "nll_gap_se": 0.02413, "em_far": 0,
             "rel_err": [0.5732, 0.1586, 0.0218]},
        ],
    },
}
