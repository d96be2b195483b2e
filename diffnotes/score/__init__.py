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
models*); ``"none"``, :math:`\lambda = 1`, dominated by the smallest times; ``"velocity"``,
for which the loss of a velocity prediction is :math:`\|\hat v - v\|^2`.

**The velocity.** A fourth parameterisation predicts :math:`v = \alpha\varepsilon -
\sigma x_0` (Salimans and Ho, 2022). Its errors reach the noise and the clean point only
through bounded factors (:math:`\hat\varepsilon - \varepsilon = \alpha(\hat v -
v)/(\alpha^2 + \sigma^2)` and :math:`\hat x_0 - x_0 = -\sigma(\hat v - v)/(\alpha^2 +
\sigma^2)`), where a noise prediction's error is multiplied by :math:`\sigma/\alpha` in the
clean point, without bound at high noise; for the VP SDE it is the preconditioning of Karras
et al. (2022) with unit data scale (:func:`score_to_velocity`, :func:`velocity_to_score`).

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

The code is in three parts, re-exported here: ``diffnotes/score/_losses.py`` (the
parameterisations and the losses), ``_networks.py`` (:class:`ScoreMLP`, :class:`EMA`,
:func:`score_function`) and ``_training.py`` (:func:`train`).
"""


from __future__ import annotations

from .._public import set_module
from . import _losses
from ._losses import (
                      data_to_noise,
                      data_to_score,
                      denoising_loss,
                      denoising_sm,
                      dsm_loss,
                      explicit_sm,
                      implicit_sm,
                      noise_to_data,
                      noise_to_score,
                      score_to_data,
                      score_to_noise,
                      score_to_velocity,
                      velocity_to_score,
)
from ._networks import EMA, ScoreMLP, score_function
from ._training import TrainResult, train
from ._weighting import WEIGHTING_RECORDS, LogSNRClockVP, loss_weight

# private names that diffnotes.dsb, diffnotes.flow_train and diffnotes.images import from here
from ._losses import _choice as _choice  # isort: skip
from ._losses import _dsm_loss as _dsm_loss  # isort: skip
from ._losses import _to_score as _to_score  # isort: skip
from ._networks import _batch_times as _batch_times  # isort: skip
from ._networks import _sinusoidal as _sinusoidal  # isort: skip
from ._training import _batches as _batches  # isort: skip
from ._training import _optimise as _optimise  # isort: skip
from ._training import _check_data as _check_data  # isort: skip
from ._training import _check_fit_args as _check_fit_args  # isort: skip
from ._training import _fit as _fit  # isort: skip
from ._training import _model_dim as _model_dim  # isort: skip

__all__ = [
    "EMA",
    "LogSNRClockVP",
    "PARAMETERIZATIONS",
    "WEIGHTINGS",
    "WEIGHTING_RECORDS",
    "ScoreMLP",
    "TrainResult",
    "data_to_noise",
    "data_to_score",
    "denoising_loss",
    "denoising_sm",
    "dsm_loss",
    "explicit_sm",
    "implicit_sm",
    "loss_weight",
    "noise_to_data",
    "noise_to_score",
    "score_function",
    "score_to_data",
    "score_to_noise",
    "score_to_velocity",
    "train",
    "velocity_to_score",
]

PARAMETERIZATIONS = _losses.PARAMETERIZATIONS
"""What a network's raw output stands for: the noise, the score, the clean point or the
velocity."""

WEIGHTINGS = _losses.WEIGHTINGS
r"""Time weightings :math:`\lambda(t)` of the DSM loss: :math:`\sigma^2`, :math:`g^2`, 1, and
:math:`\sigma^2(\alpha^2 + \sigma^2)^2/\alpha^2` (the velocity loss)."""

set_module(__name__, globals(), __all__)
