import pytest
import torch

from diffnotes.utils import device


def test_default_device_is_cuda_exactly_when_available():
    assert device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert device("cpu") == torch.device("cpu")


def test_asking_for_missing_or_unknown_devices_is_an_error():
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            device("cuda")
    else:
        with pytest.raises(ValueError, match="index"):
            device(f"cuda:{torch.cuda.device_count()}")
    with pytest.raises(ValueError, match="name"):
        device("tpu-of-dreams")
    with pytest.raises(ValueError, match="name"):
        device(3)
