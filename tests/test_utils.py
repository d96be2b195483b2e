import pytest
import torch

from diffnotes.utils import device, torch_threads


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


def test_device_accepts_a_torch_device():
    assert device(torch.device("cpu")) == torch.device("cpu")


def test_torch_threads_sets_and_restores():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError, match="inside"), torch_threads(1):
        raise RuntimeError("inside")
    assert torch.get_num_threads() == before
