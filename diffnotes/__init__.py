"""diffnotes: the package behind the *diffnotes* textbook on diffusion generative models.

One module per idea; each chapter of the book imports its machinery from here.

- :mod:`diffnotes.ctmc` -- finite-state continuous-time Markov chains (Chapter 1).
- :mod:`diffnotes.ehrenfest` -- the Ehrenfest process and its OU limit (Chapter 2).
- :mod:`diffnotes.sde` -- forward SDEs, reverse-time samplers, the probability-flow ODE (Chapter 3).
- :mod:`diffnotes.score` -- denoising score matching in torch (Chapter 3; imported on its own).
- :mod:`diffnotes.flow` -- flow matching: probability paths, exact mixture velocities, ODE
  samplers (Chapter 3); :mod:`diffnotes.flow_train` learns the velocity in torch (imported on
  its own).
- :mod:`diffnotes.guidance` -- classifier-free guidance: a class-conditional score network with
  label dropout (Chapter 3; torch; imported on its own; the exact guided scores are in
  :mod:`diffnotes.mixtures`).
- :mod:`diffnotes.bridge` -- exact Schrodinger bridges: IPF on a grid, Gaussians (Chapter 4).
- :mod:`diffnotes.bridge_dynamic` -- the bridge as stochastic control: its drift, the
  Girsanov cost, the Schrodinger potentials (Chapter 4).
- :mod:`diffnotes.dsb` -- DSB and bridge matching in torch (Chapter 4; imported on its own).
- :mod:`diffnotes.ot_couplings` -- minibatch-OT, entropic and reflow couplings for flow
  matching (Chapter 4); :mod:`diffnotes.ot_flow_train` trains on them (torch).
- :mod:`diffnotes.discrete` -- uniform and masked discrete diffusion on the CTMC machinery
  (Chapter 6); :mod:`diffnotes.discrete_learn` learns the denoiser (torch) and
  :mod:`diffnotes.discrete_images` runs both chains on the 8x8 digits with a U-Net.
- :mod:`diffnotes.images` -- U-Net score models for images, their continuous and Ehrenfest
  samplers, checkpoints and an FID-style metric (Chapter 5; torch; imported on its own).
- :mod:`diffnotes.schedules` -- time changes (noise schedules) shared with the SDEs.
- :mod:`diffnotes.mixtures` -- Gaussian mixtures with exact diffused scores.
- :mod:`diffnotes.data` -- 2-D toy distributions; the 8x8 digits and MNIST loaders.
- :mod:`diffnotes.metrics` -- distances between distributions and their noise floors.
- :mod:`diffnotes.plotting` -- figure helpers shared by the chapters.
- :mod:`diffnotes.widgets` -- interactive figures (ipywidgets) with static fallbacks.
- :mod:`diffnotes.utils` -- the compute device (CUDA when present) for the learning chapters.

Dependencies run one way: ``ctmc``, ``sde``, ``flow``, ``bridge``, ``mixtures``, ``data``
and ``metrics`` need only NumPy/SciPy (and POT for exact optimal transport); ``plotting`` adds
Matplotlib. torch and tqdm (the ``learn`` extra, ``pip install 'diffnotes[learn]'``, with
scikit-learn for the 8x8 digits) are imported only where a network is trained (``import
diffnotes.score``, ``diffnotes.flow_train``, ``diffnotes.guidance``, ``diffnotes.dsb``,
``diffnotes.images``), which fail at import, naming the extra, when they are missing; the
explorers' sliders in ``widgets`` need ipywidgets (the ``widgets`` extra).
"""

from . import bridge, ctmc, data, ehrenfest, metrics, mixtures, schedules, sde

__all__ = ["bridge", "ctmc", "data", "ehrenfest", "metrics", "mixtures", "schedules", "sde"]
__version__ = "0.1.0"
