"""Helpers shared by several test files (imported as ``from _shared import ...``: pytest puts
this folder on the path)."""

import numpy as np

from diffnotes.images import PRESETS

# the tiny image configuration of most training tests: 6 steps, checkpoints after steps 3 and 6
TINY = PRESETS["digits"].replace(channels=(8, 16), steps=6, batch_size=16, ckpt_every=3,
                                 warmup=2)


def nan_score(x, t):
    """A score that is finite until t < 0.5, then NaN at the first point."""
    s = -np.array(x, dtype=float)
    if t < 0.5:
        s[0] = np.nan
    return s
