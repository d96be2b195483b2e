r"""What determines an image training run: :class:`TrainConfig`, the named :data:`PRESETS`,
the SDE and the network they build, and where along the noise levels training draws its
times (:func:`sample_times`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from .. import data as _data
from .._checks import positive_float, positive_int
from ..sde import VPSDE
from .unet import UNet

__all__ = ["PRESETS", "T_SAMPLINGS", "WEIGHTINGS", "TrainConfig", "build_model", "make_sde",
           "sample_times"]

T_SAMPLINGS = ("uniform", "logsnr", "lognormal")
WEIGHTINGS = ("sigma2", "none", "velocity")   # of diffnotes.score.WEIGHTINGS, all but g^2
EDM_P_MEAN, EDM_P_STD = -1.2, 1.2   # Karras et al. (2022), Table 1: ln(sigma) ~ N(-1.2, 1.2^2)

FORMAT = "diffnotes.images/1"
DATASETS = ("digits", "mnist8k", "mnist")


def _to_dict(config) -> dict:
    """A configuration dataclass as plain Python values (its ``channels`` tuple as a list)."""
    d = dataclasses.asdict(config)
    d["channels"] = list(config.channels)
    return d


def _from_dict(cls, d: dict):
    """The configuration dataclass ``cls`` from :func:`_to_dict`'s form; unknown keys raise."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"unknown config keys {sorted(unknown)}; known: {sorted(known)}")
    return cls(**d)


@dataclass
class TrainConfig:
    r"""Everything that determines a training run (and nothing that does not, like the device).

    ``dataset`` is ``"digits"`` (scikit-learn's 8x8 digits, 17 grey levels: training on 1497
    of the 1797, a random 300 held out with a fixed seed), ``"mnist8k"`` (the first 8000
    images of the MNIST *test* split, for machines that hold only that split; the last 2000 are
    kept for evaluation) or ``"mnist"`` (the 60000 training images). See :data:`PRESETS`.

    ``parameterization`` is what the network predicts (``"noise"``, ``"score"``, ``"data"`` or
    ``"velocity"``, see :mod:`diffnotes.score`) and ``weighting`` the time weighting of the
    loss (``"sigma2"``: the noise loss :math:`\|\hat\varepsilon - \varepsilon\|^2`;
    ``"velocity"``: :math:`\|\hat v - v\|^2`; ``"none"``).
    ``t_sampling`` says where training puts its effort along the noise levels (see
    :func:`sample_times`): ``"uniform"`` (:math:`t \sim \mathcal U(t_{\min}, 1)`, DDPM and
    Song et al.), ``"logsnr"`` (the log noise-to-signal ratio :math:`\log\rho`,
    :math:`\rho = \sigma/\alpha`, uniform on its range) or ``"lognormal"`` (EDM's
    :math:`\log\rho \sim \mathcal N(-1.2, 1.2^2)`, truncated to the range). ``num_classes > 0``
    trains a class-conditional network; each label is replaced by "no label" with probability
    ``label_dropout``, so that the same network is also the unconditional one
    (classifier-free guidance).
    """

    dataset: str = "digits"
    channels: tuple = (16, 32)
    n_res: int = 1
    attention: bool = True
    dropout: float = 0.0
    parameterization: str = "noise"
    weighting: str = "sigma2"
    beta_min: float = 0.1
    beta_max: float = 20.0
    t_min: float = 1e-3
    t_sampling: str = "uniform"
    num_classes: int = 0
    label_dropout: float = 0.0
    steps: int = 800
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.0
    warmup: int = 100
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    seed: int = 0
    ckpt_every: int = 400

    def __post_init__(self):
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {', '.join(DATASETS)}; got "
                             f"{self.dataset!r}")
        self.channels = tuple(self.channels)
        for name in ("n_res", "steps", "batch_size", "ckpt_every"):
            setattr(self, name, positive_int(getattr(self, name), name))
        self.warmup = positive_int(self.warmup, "warmup", minimum=0)
        self.seed = positive_int(self.seed, "seed", minimum=0)
        for name in ("beta_min", "beta_max", "t_min", "lr", "grad_clip"):
            setattr(self, name, positive_float(getattr(self, name), name))
        self.weight_decay = positive_float(self.weight_decay, "weight_decay", allow_zero=True)
        self.ema_decay = positive_float(self.ema_decay, "ema_decay", allow_zero=True,
                                        upper=0.99999)
        if self.t_min >= 1:
            raise ValueError(f"t_min must be < 1 (the VP SDE's horizon), got {self.t_min}")
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {', '.join(WEIGHTINGS)}; got "
                             f"{self.weighting!r}")
        if self.t_sampling not in T_SAMPLINGS:
            raise ValueError(f"t_sampling must be one of {', '.join(T_SAMPLINGS)}; got "
                             f"{self.t_sampling!r}")
        self.num_classes = positive_int(self.num_classes, "num_classes", minimum=0,
                                        maximum=100_000)
        self.label_dropout = positive_float(self.label_dropout, "label_dropout",
                                            allow_zero=True, upper=1.0)
        if self.label_dropout > 0 and not self.num_classes:
            raise ValueError("label_dropout > 0 needs num_classes > 0 (a conditional network)")

    @property
    def size(self) -> int:
        return 8 if self.dataset == "digits" else 28

    @property
    def levels(self) -> int:
        """The largest pixel level ``S``: 16 for the digits, 255 for MNIST."""
        return _data.DIGITS_LEVELS if self.dataset == "digits" else _data.MNIST_LEVELS

    def to_dict(self) -> dict:
        return _to_dict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        return _from_dict(cls, d)

    def replace(self, **changes) -> TrainConfig:
        """A copy with some fields changed (checked like the constructor)."""
        return TrainConfig.from_dict({**self.to_dict(), **changes})


PRESETS = {
    "digits": TrainConfig(dataset="digits", channels=(16, 32), parameterization="velocity",
                          weighting="velocity", steps=800, batch_size=64, lr=3e-3,
                          warmup=100, ema_decay=0.995, ckpt_every=400),
    "digits-cond": TrainConfig(dataset="digits", channels=(16, 32), num_classes=10,
                               label_dropout=0.2, steps=1600, batch_size=64, lr=3e-3,
                               warmup=100, ema_decay=0.995, ckpt_every=400),
    "mnist8k": TrainConfig(dataset="mnist8k", channels=(32, 64, 128), steps=3000,
                           batch_size=64, lr=1e-3, warmup=200, ema_decay=0.999,
                           ckpt_every=250),
    "mnist8k-cond": TrainConfig(dataset="mnist8k", channels=(32, 64, 128),
                                parameterization="velocity", weighting="velocity",
                                num_classes=10, label_dropout=0.2, steps=3000,
                                batch_size=64, lr=1e-3, warmup=200, ema_decay=0.999,
                                ckpt_every=250),
    "mnist": TrainConfig(dataset="mnist", channels=(64, 128, 128), n_res=2, dropout=0.1,
                         steps=30000, batch_size=128, lr=2e-4, warmup=1000,
                         ema_decay=0.9999, ckpt_every=2000),
}
"""Named configurations: ``"digits"`` (trains on one CPU core in about a minute; the velocity
loss, which :mod:`diffnotes.images.recipes` found best for the ODE sampler),
``"digits-cond"`` (the class-conditional digits network, labels dropped one time in five, for
classifier-free guidance; the checkpoint shipped with the book),
``"mnist8k"`` (the configuration of the checkpoint shipped with the book),
``"mnist8k-cond"`` (the same network and budget with Chapter 5's better recipe, the velocity
loss, and class-conditional with labels dropped one time in five; shipped too) and ``"mnist"``
(the full training split, for a GPU)."""



def make_sde(config: TrainConfig) -> VPSDE:
    """The forward SDE of a configuration (the VP SDE of Chapter 3, ``T = 1``)."""
    return VPSDE(config.beta_min, config.beta_max)



def build_model(config: TrainConfig) -> UNet:
    """The (untrained) U-Net of a configuration."""
    return UNet(size=config.size, channels=config.channels, n_res=config.n_res,
                attention=config.attention, dropout=config.dropout,
                parameterization=config.parameterization, num_classes=config.num_classes,
                seed=config.seed)


def _log_rho(config: TrainConfig, t):
    """log(sigma/alpha) of the VP SDE at t: rho^2 = exp(B(t)) - 1, B the integrated beta."""
    b = config.beta_min * t + 0.5 * (config.beta_max - config.beta_min) * t * t
    return 0.5 * torch.log(torch.expm1(b))


def _t_of_log_rho(config: TrainConfig, log_rho):
    """The inverse of :func:`_log_rho` (closed form: B(t) = log(1 + rho^2) is quadratic in t)."""
    b = torch.log1p(torch.exp(2 * log_rho))
    d = config.beta_max - config.beta_min
    if d == 0:
        return b / config.beta_min
    return 2 * b / (config.beta_min + torch.sqrt(config.beta_min ** 2 + 2 * d * b))


def sample_times(config: TrainConfig, u):
    r"""Training times in :math:`[t_{\min}, 1]` from uniform draws ``u`` in :math:`[0, 1)`
    (a tensor), by ``config.t_sampling``.

    With :math:`\rho = \sigma/\alpha` the noise-to-signal ratio (the time of Chapter 3's
    Heun sampler, :math:`dy/d\rho = \hat\varepsilon`):

    * ``"uniform"``: :math:`t = t_{\min} + (1 - t_{\min})\,u`. Under the VP SDE this spends
      few draws at small :math:`\rho`: fewer than one in a hundred has :math:`\rho < 0.03`
      (with the default betas), where the ODE sampler still takes several of its steps.
    * ``"logsnr"``: :math:`\log\rho` uniform between its values at :math:`t_{\min}` and 1,
      each factor of the noise-to-signal ratio getting the same effort (Kingma and Gao, 2023,
      show that the sampling density of :math:`\log\rho` and the loss weighting are one
      choice).
    * ``"lognormal"``: :math:`\log\rho \sim \mathcal N(-1.2, 1.2^2)` (Karras et al., 2022),
      truncated to the same range by inverting the truncated normal's distribution function.

    Each maps one uniform draw to one time, so the random stream of training is the same for
    all three.
    """
    u = torch.as_tensor(u)
    if config.t_sampling == "uniform":
        return config.t_min + (1 - config.t_min) * u
    ends = torch.tensor([config.t_min, 1.0], dtype=torch.float64)
    lo, hi = (float(v) for v in _log_rho(config, ends))
    u64 = u.to(torch.float64)
    if config.t_sampling == "logsnr":
        log_rho = lo + (hi - lo) * u64
    else:
        a = torch.special.ndtr(torch.tensor((lo - EDM_P_MEAN) / EDM_P_STD, dtype=torch.float64))
        b = torch.special.ndtr(torch.tensor((hi - EDM_P_MEAN) / EDM_P_STD, dtype=torch.float64))
        log_rho = EDM_P_MEAN + EDM_P_STD * torch.special.ndtri(a + (b - a) * u64)
    t = _t_of_log_rho(config, log_rho.clamp(lo, hi))
    return t.clamp(config.t_min, 1.0).to(u.dtype)
