"""Small helpers shared by the learning chapters."""

from __future__ import annotations

from contextlib import contextmanager

__all__ = ["device", "torch_threads"]


def device(name: str | None = None):
    """The torch device to compute on: CUDA when present, else the CPU.

    Every chapter that trains a network takes a ``device`` argument whose default is
    ``device()``, so that the same notebook runs on a laptop and on a GPU machine.

    Parameters
    ----------
    name : str or torch.device, optional
        ``"cpu"``, ``"cuda"`` or ``"cuda:<index>"`` (or the same as a ``torch.device``) to
        insist on one device. Asking for CUDA where there is none raises ``ValueError`` instead
        of silently running on the CPU.

    Returns
    -------
    torch.device
    """
    import torch  # imported here: the Markov-chain chapters need no torch

    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(name, torch.device):
        name = str(name)
    if not isinstance(name, str):
        raise ValueError(f"name must be a string such as 'cpu' or 'cuda', got {name!r}")
    try:
        dev = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"name must be 'cpu', 'cuda' or 'cuda:<index>', got {name!r}") from err
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"name = {name!r} asks for CUDA, but torch sees no CUDA device here")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"name = {name!r}: CUDA device index must be < {torch.cuda.device_count()}"
            )
    elif dev.type != "cpu":
        raise ValueError(f"name must be 'cpu', 'cuda' or 'cuda:<index>', got {name!r}")
    return dev


@contextmanager
def torch_threads(n: int | None, dev=None):
    """Run a block with ``n`` torch intra-op threads on the CPU (restored afterwards).

    ``n = None``, or a CUDA ``dev``, leaves the setting alone. Small networks gain nothing from
    more than one thread, and on shared cores spin-waiting threads slow every step many times
    over, which is why the trainers of :mod:`diffnotes.score` and :mod:`diffnotes.dsb` default
    to one.
    """
    import torch

    old = torch.get_num_threads()
    if n is not None and (dev is None or getattr(dev, "type", "cpu") == "cpu"):
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)
