"""Chapter 6 explorers: the forward laws of the uniform, masked and Ehrenfest chains, and the
samplers of the reverse chain against the exact law on the small enumerable problem."""

from __future__ import annotations

import functools

import numpy as np
from matplotlib import pyplot as plt

from .. import discrete as D
from .. import ehrenfest, schedules
from ..plotting import STATE_COLORS
from ._static import Explorer, _choice, _slider

#: The chains of the forward explorer (the two of Chapter 6 and Chapter 2's urn beside them).
CHAINS = ("uniform", "masked", "Ehrenfest")
#: Its schedules: rate 1, or the linear VP schedule of the chapter (beta from 0.1 to 10).
DISCRETE_SCHEDULES = ("constant", "vp")
#: The samplers of the sampler explorer (tau-leaping on either chain, unmasking).
DISCRETE_SAMPLERS = ("unmask", "tau masked", "tau uniform")

_N_LEVELS = 17  # n = 17 values; the Ehrenfest urn with S = 16 balls has as many levels
_TS = np.linspace(0.0, 5.0, 121)


def _schedule(name):
    if name == "constant":
        return None
    if name == "vp":
        return schedules.vp(0.1, 10.0)
    raise ValueError(f"schedule must be one of {DISCRETE_SCHEDULES}, got {name!r}")


def _law(chain, t, x0, schedule):
    """The law at time ``t`` of one coordinate started at ``x0`` (a row of the chain's transition
    matrix: 17 values, 18 with the mask) and the chain's equilibrium."""
    sch = _schedule(schedule)
    if chain == "Ehrenfest":
        S = _N_LEVELS - 1
        row = ehrenfest.transition_matrix(S, t, schedule=sch, n0=x0)[0]
        return row, ehrenfest.transition_matrix(S, 60.0, n0=x0)[0]
    if chain not in D.KINDS:
        raise ValueError(f"chain must be one of {CHAINS}, got {chain!r}")
    row = D.transition_matrix(chain, _N_LEVELS, t, schedule=sch)[x0]
    stat = D.transition_matrix(chain, _N_LEVELS, 60.0)[x0]
    return row, stat


@functools.lru_cache(maxsize=32)
def _tv_curves(x0: int, schedule: str) -> dict:
    """TV to equilibrium along ``_TS`` for every chain (kept: the frames share them)."""
    out = {}
    for chain in CHAINS:
        rows = [_law(chain, float(t), x0, schedule) for t in _TS]
        out[chain] = np.array([0.5 * np.abs(r - s).sum() for r, s in rows])
    return out


def forward_chains_figure(chain="masked", t=0.5, schedule="constant", x0=0):
    """The law at time ``t`` of one coordinate with n = 17 values started at ``x0``, under the
    uniform, the masked or the Ehrenfest chain (S = 16), and the three chains' total-variation
    distance to equilibrium against ``t``."""
    row, stat = _law(chain, t, x0, schedule)
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(9.5, 3.4))
    k = np.arange(row.size)
    colors = [STATE_COLORS[0]] * _N_LEVELS + [STATE_COLORS[2]] * (row.size - _N_LEVELS)
    ax0.bar(k, row, color=colors, alpha=0.7, label=f"law at t = {t:g}")
    ax0.step(k, stat, "k--", where="mid", lw=1, label="equilibrium")
    ax0.set_xticks([0, 4, 8, 12, 16] + ([17] if row.size > _N_LEVELS else []),
                   labels=["0", "4", "8", "12", "16"] + (["mask"] if row.size > _N_LEVELS
                                                         else []))
    ax0.set_ylim(0, 1.02)
    ax0.set_xlabel("value")
    ax0.set_title(f"{chain} chain from {x0}, schedule {schedule}", fontsize=10)
    ax0.legend(fontsize=7, loc="upper center")
    curves = _tv_curves(int(x0), schedule)
    for c, name in enumerate(CHAINS):
        ax1.plot(_TS, curves[name], color=STATE_COLORS[c], lw=2.5 if name == chain else 1.2,
                 label=name)
    ax1.axvline(t, color="0.5", lw=0.8)
    ax1.set_xlabel("t")
    ax1.set_ylabel("TV to equilibrium")
    ax1.set_ylim(0, 1.02)
    ax1.set_title("distance to equilibrium, all three chains", fontsize=9)
    ax1.legend(fontsize=7)
    fig.tight_layout()
    return fig


def forward_chains_explorer():
    """Controls on the chain, the time, the schedule and the start value."""
    return Explorer(forward_chains_figure, {
        "chain": _choice(CHAINS, "masked", "chain"),
        "t": _slider(0.5, 0.0, 5.0, 0.05, "t"),
        "schedule": _choice(DISCRETE_SCHEDULES, "constant", "schedule"),
        "x0": _slider(0, 0, _N_LEVELS - 1, 1, "start x0", integer=True),
    }, title="Forward laws of the uniform, masked and Ehrenfest chains (n = 17)",
       grid={"chain": CHAINS, "t": [0.1, 0.5, 1.0, 2.0, 4.0]})


# The enumerable problem of the chapter: d = 2 coordinates with n = 3 values.
_P0 = np.array([[0.30, 0.02, 0.08],
                [0.02, 0.25, 0.03],
                [0.10, 0.05, 0.15]])
_N, _D, _T = 3, 2, 6.0


@functools.lru_cache(maxsize=4)
def _problem(kind: str):
    """The exact denoiser of the data law and the exact law of its reverse chain (kept)."""
    den = D.exact_denoiser(kind, _P0, _N)
    return den, D.model_likelihood(kind, den, _N, _D, _T).ravel()


def discrete_sampler_figure(sampler="unmask", n_steps=5, m=5000, seed=0):
    """The law of ``m`` samples of a sampler run with the exact denoiser for ``n_steps``
    steps on the 3 x 3 problem of the chapter, against the exact law of the reverse chain, and
    the TV between them beside the noise floor of ``m`` exact draws."""
    if sampler == "unmask":
        kind = "masked"
        den, target = _problem(kind)
        run = D.sample_unmask(den, m, _D, _N, _T, rng=seed, n_steps=n_steps)
    elif sampler in ("tau masked", "tau uniform"):
        kind = sampler.split()[1]
        den, target = _problem(kind)
        run = D.sample_tau(kind, den, m, _D, _N, _T, rng=seed, n_steps=n_steps)
    else:
        raise ValueError(f"sampler must be one of {DISCRETE_SAMPLERS}, got {sampler!r}")
    idx = _N * run.states[:, 0] + run.states[:, 1]
    emp = np.bincount(idx, minlength=_N**_D) / m
    ref = np.random.default_rng(seed + 1).choice(_N**_D, m, p=target)
    floor = 0.5 * np.abs(np.bincount(ref, minlength=_N**_D) / m - target).sum()
    tv = 0.5 * np.abs(emp - target).sum()
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    k = np.arange(_N**_D)
    ax.bar(k - 0.2, target, width=0.4, color="0.6", label="exact law of the reverse chain")
    ax.bar(k + 0.2, emp, width=0.4, color=STATE_COLORS[0], label=f"{sampler}, {m} samples")
    ax.set_xticks(k, labels=[f"({a},{b})" for a in range(_N) for b in range(_N)])
    ax.set_xlabel("clean state (x1, x2)")
    ax.set_ylim(0, 0.4)
    ax.legend(fontsize=7, loc="upper right")
    extra = f", {run.n_rejected} multi-moves rejected" if sampler.startswith("tau") else ""
    ax.set_title(f"{n_steps} steps: TV {tv:.3f} (floor of {m} exact draws {floor:.3f})"
                 f"{extra}", fontsize=9)
    fig.tight_layout()
    return fig


def discrete_sampler_explorer():
    """Controls on the sampler, its number of steps, the sample size and the seed."""
    return Explorer(discrete_sampler_figure, {
        "sampler": _choice(DISCRETE_SAMPLERS, "unmask", "sampler"),
        "n_steps": _slider(5, 1, 200, 1, "steps", integer=True),
        "m": _slider(5000, 500, 20000, 500, "samples", integer=True),
        "seed": _slider(0, 0, 20, 1, "seed", integer=True),
    }, title="Samplers of the reverse chain with the exact denoiser against the exact law",
       grid={"sampler": DISCRETE_SAMPLERS, "n_steps": [1, 2, 5, 20, 50]})
