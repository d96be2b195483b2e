"""Small helpers shared by the learning chapters."""

from __future__ import annotations

__all__ = ["device"]


def device(name: str | None = None):
    """The torch device to compute on: CUDA when present, else the CPU.

    Every chapter that trains a network takes a ``device`` argument whose default is
    ``device()``, so that the same notebook runs on a laptop and on a GPU machine.

    Parameters
    ----------
    name : str, optional
        ``"cpu"``, ``"cuda"`` or ``"cuda:<index>"`` to insist on one device. Asking for CUDA
        where there is none raises ``ValueError`` instead of silently running on the CPU.

    Returns
    -------
    torch.device
    """
    import torch  # imported here: the Markov-chain chapters need no torch

    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
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
