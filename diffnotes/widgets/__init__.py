"""Interactive figures for the notebooks, live in JupyterLab and moving in the static book.

An :class:`Explorer` is a row of controls (ipywidgets) above a figure that a *figure function*
redraws whenever a control moves. In a live notebook (``make lab``) the reader drags sliders.
Where no kernel runs (the HTML book, nbconvert, an editor's view) the same display bundle
carries a self-contained HTML control: sliders over a precomputed grid of one or two key
parameters, frames drawn at build time by the same figure function (the shared machinery
is in ``diffnotes/widgets/_static.py``), and a PNG of the default figure.

Each chapter's explorers live in their own module (``ch1`` ... ``ch6``) and are re-exported
here (``two_state_explorer`` ...); :data:`EXPLORERS` lists them all so that the tests can drive
every slider to its extremes and check every frame. Figure functions are plain functions of
keyword arguments returning a Matplotlib ``Figure``; they can be called without ipywidgets.
"""

from __future__ import annotations

from collections.abc import Callable

from ._static import FRAME_BUDGET_BYTES, Explorer, frame_png, sweep
from .ch1 import (
    FIXED_STEP_DTS,
    denoising_explorer,
    denoising_figure,
    fixed_step_explorer,
    fixed_step_figure,
    n_state_explorer,
    n_state_figure,
    two_state_explorer,
    two_state_figure,
)
from .ch2 import (
    OU_LIMIT_S,
    REVERSE_RATES_S,
    ou_limit_explorer,
    ou_limit_figure,
    reverse_rates_explorer,
    reverse_rates_figure,
)
from .ch3 import (
    GUIDANCE_SAMPLERS,
    SAMPLERS,
    SDE_KINDS,
    forward_sde_explorer,
    forward_sde_figure,
    guidance_explorer,
    guidance_figure,
    make_sde,
    sampler_explorer,
    sampler_figure,
    score_field_explorer,
    score_field_figure,
)
from .ch4 import gaussian_bridge_explorer, gaussian_bridge_figure, ipf_explorer, ipf_figure
from .ch5 import (
    IMAGE_SAMPLERS,
    guided_digits_explorer,
    guided_digits_figure,
    image_sampler_explorer,
    image_sampler_figure,
    pixel_noising_explorer,
    pixel_noising_figure,
)
from .ch6 import (
    CHAINS,
    DISCRETE_SAMPLERS,
    DISCRETE_SCHEDULES,
    discrete_sampler_explorer,
    discrete_sampler_figure,
    forward_chains_explorer,
    forward_chains_figure,
)

__all__ = [
    "CHAINS",
    "DISCRETE_SAMPLERS",
    "DISCRETE_SCHEDULES",
    "EXPLORERS",
    "FIXED_STEP_DTS",
    "FRAME_BUDGET_BYTES",
    "GUIDANCE_SAMPLERS",
    "IMAGE_SAMPLERS",
    "OU_LIMIT_S",
    "REVERSE_RATES_S",
    "SAMPLERS",
    "SDE_KINDS",
    "Explorer",
    "denoising_explorer",
    "discrete_sampler_explorer",
    "discrete_sampler_figure",
    "denoising_figure",
    "fixed_step_explorer",
    "fixed_step_figure",
    "forward_sde_explorer",
    "forward_sde_figure",
    "forward_chains_explorer",
    "forward_chains_figure",
    "frame_png",
    "guidance_explorer",
    "guidance_figure",
    "gaussian_bridge_explorer",
    "gaussian_bridge_figure",
    "guided_digits_explorer",
    "guided_digits_figure",
    "image_sampler_explorer",
    "image_sampler_figure",
    "ipf_explorer",
    "ipf_figure",
    "make_sde",
    "n_state_explorer",
    "n_state_figure",
    "ou_limit_explorer",
    "ou_limit_figure",
    "pixel_noising_explorer",
    "pixel_noising_figure",
    "reverse_rates_explorer",
    "reverse_rates_figure",
    "sampler_explorer",
    "sampler_figure",
    "score_field_explorer",
    "score_field_figure",
    "sweep",
    "two_state_explorer",
    "two_state_figure",
]

#: Every explorer of the book, by name (the tests move each slider to its extremes).
EXPLORERS: dict[str, Callable[[], Explorer]] = {
    "two_state": two_state_explorer,
    "fixed_step": fixed_step_explorer,
    "denoising": denoising_explorer,
    "n_state": n_state_explorer,
    "ou_limit": ou_limit_explorer,
    "reverse_rates": reverse_rates_explorer,
    "forward_sde": forward_sde_explorer,
    "score_field": score_field_explorer,
    "sampler": sampler_explorer,
    "ipf": ipf_explorer,
    "gaussian_bridge": gaussian_bridge_explorer,
    "pixel_noising": pixel_noising_explorer,
    "guidance": guidance_explorer,
    "image_sampler": image_sampler_explorer,
    "guided_digits": guided_digits_explorer,
    "forward_chains": forward_chains_explorer,
    "discrete_sampler": discrete_sampler_explorer,
}
