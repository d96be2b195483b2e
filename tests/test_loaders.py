"""Checks of the image loaders of :mod:`diffnotes.data`.

MNIST is checked on small synthetic IDX files (5 images of 28x28, gzipped) whose MD5s are patched
into :data:`diffnotes.data.MNIST_FILES`, so these tests need neither the real data nor the
network; downloads come from ``file://`` mirrors into a temporary cache. One test reads the real
test split from ``$DIFFNOTES_DATA``.
"""

import gzip
import hashlib
import os
import struct

import numpy as np
import pytest

from diffnotes import data

REAL_DATA = os.environ.get("DIFFNOTES_DATA")          # read before the fixture clears it
OFFICIAL_TEST = data.MNIST_FILES["test"]
IMAGES, LABELS = "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"
PIXELS = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
DIGITS = np.array([7, 2, 1, 0, 4], dtype=np.uint8)


def idx(array, magic):
    """Uncompressed IDX bytes: big-endian magic number, dimensions, then the uint8 data."""
    return struct.pack(f">i{array.ndim}I", magic, *array.shape) + array.tobytes()


RAW = {IMAGES: idx(PIXELS, 2051), LABELS: idx(DIGITS, 2049)}
GZ = {name: gzip.compress(raw, mtime=0) for name, raw in RAW.items()}


def write(folder, files):
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return folder


@pytest.fixture(autouse=True)
def fake_mnist(monkeypatch, tmp_path):
    """The "test" split is the synthetic files; no data folder, an empty temporary cache, and
    no mirrors unless a test sets them."""
    monkeypatch.setitem(data.MNIST_FILES, "test", tuple(
        (name, hashlib.md5(GZ[name]).hexdigest()) for name in (IMAGES, LABELS)))
    monkeypatch.setattr(data, "MNIST_MIRRORS", ())
    monkeypatch.delenv("DIFFNOTES_DATA", raising=False)
    monkeypatch.setenv("DIFFNOTES_CACHE", str(tmp_path / "cache"))


def check_fake(images, labels):
    assert images.dtype == np.uint8 and images.shape == (5, 28, 28)
    assert labels.dtype == np.int64 and labels.shape == (5,)
    np.testing.assert_array_equal(images, PIXELS)
    np.testing.assert_array_equal(labels, DIGITS)


def mirror(folder):
    return folder.as_uri() + "/"


# ------------------------------------------------------------------------ reading files
def test_gz_files_load(tmp_path):
    src = write(tmp_path / "src", GZ)
    check_fake(*data.load_mnist("test", src, download=False))
    check_fake(*data.load_mnist("test", str(src), download=False))


def test_uncompressed_files_load(tmp_path):
    src = write(tmp_path / "src", {name.removesuffix(".gz"): raw for name, raw in RAW.items()})
    check_fake(*data.load_mnist("test", src, download=False))


def test_diffnotes_data_is_honoured(tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFNOTES_DATA", str(write(tmp_path / "src", GZ)))
    check_fake(*data.load_mnist("test", download=False))
    # an explicit data_dir takes precedence over $DIFFNOTES_DATA
    empty = write(tmp_path / "empty", {})
    with pytest.raises(data.DataUnavailableError, match="data_dir"):
        data.load_mnist("test", empty, download=False)


@pytest.mark.parametrize("damage", ["truncated", "flipped"])
def test_corrupted_gz_is_reported_and_kept(tmp_path, damage):
    bad = GZ[IMAGES][: len(GZ[IMAGES]) // 2] if damage == "truncated" else bytearray(GZ[IMAGES])
    if damage == "flipped":
        bad[len(bad) // 2] ^= 0xFF
    src = write(tmp_path / "src", {**GZ, IMAGES: bytes(bad)})
    expected = data.MNIST_FILES["test"][0][1]
    with pytest.raises(ValueError, match="truncated or corrupted") as err:
        data.load_mnist("test", src, download=False)
    message = str(err.value)
    assert IMAGES in message and str(src) in message and expected in message
    assert hashlib.md5(bad).hexdigest() in message
    assert (src / IMAGES).read_bytes() == bad                      # the user's file is kept


@pytest.mark.parametrize("content,reason", [
    (RAW[IMAGES][:-10], "truncated or corrupted"),                 # short data
    (RAW[IMAGES] + b"\0", "truncated or corrupted"),               # trailing garbage
    (RAW[LABELS], "magic number 2051"),                            # labels named as images
    (GZ[IMAGES], "gzip-compressed"),                               # .gz without the suffix
    (idx(PIXELS[:, :14], 2051), "14x28 pixels"),
])
def test_broken_uncompressed_file_is_reported(tmp_path, content, reason):
    src = write(tmp_path / "src", {IMAGES.removesuffix(".gz"): content, LABELS: GZ[LABELS]})
    with pytest.raises(ValueError, match=reason) as err:
        data.load_mnist("test", src, download=False)
    assert IMAGES.removesuffix(".gz") in str(err.value) and str(src) in str(err.value)


@pytest.mark.parametrize("labels,match", [(DIGITS[:4], "4 labels for 5 images"),
                                          (np.array([1, 2, 3, 10, 0], np.uint8), "outside")])
def test_mismatched_or_bad_labels(tmp_path, monkeypatch, labels, match):
    raw = gzip.compress(idx(labels, 2049))
    monkeypatch.setitem(data.MNIST_FILES, "test",
                        (data.MNIST_FILES["test"][0], (LABELS, hashlib.md5(raw).hexdigest())))
    src = write(tmp_path / "src", {**GZ, LABELS: raw})
    with pytest.raises(ValueError, match=match):
        data.load_mnist("test", src, download=False)


# ------------------------------------------------------------------------ missing files, downloads
def test_missing_files_with_failing_downloads(tmp_path, monkeypatch):
    src = write(tmp_path / "src", {LABELS: GZ[LABELS]})
    mirrors = (mirror(write(tmp_path / "m1", {})), mirror(write(tmp_path / "m2", {})))
    monkeypatch.setattr(data, "MNIST_MIRRORS", mirrors)
    with pytest.raises(FileNotFoundError) as err:
        data.load_mnist("test", src, progress=False)
    assert isinstance(err.value, data.DataUnavailableError)
    message = str(err.value)
    assert IMAGES in message and LABELS not in message.splitlines()[0]
    assert str(src) in message and str(tmp_path / "cache") in message
    for url in mirrors:
        assert f"{url}{IMAGES}: " in message                       # one failure line per mirror
    assert "data_dir=" in message and "DIFFNOTES_DATA" in message
    assert not list((tmp_path / "cache").iterdir())                # no temporary files left


def test_missing_files_without_download(tmp_path):
    with pytest.raises(data.DataUnavailableError, match="download=False") as err:
        data.load_mnist("test", download=False)
    assert IMAGES in str(err.value) and LABELS in str(err.value)
    assert not (tmp_path / "cache").exists()                       # nothing attempted


def test_download_from_mirror_into_cache(tmp_path, monkeypatch):
    good = write(tmp_path / "good", GZ)
    monkeypatch.setattr(data, "MNIST_MIRRORS", (mirror(tmp_path / "nothing"), mirror(good)))
    check_fake(*data.load_mnist("test", progress=True))
    cache = tmp_path / "cache"
    assert data.mnist_cache_dir() == cache
    assert sorted(os.listdir(cache)) == sorted(GZ)                 # atomic: no temporary files
    assert all((cache / name).read_bytes() == GZ[name] for name in GZ)
    monkeypatch.setattr(data, "MNIST_MIRRORS", ())                 # now served from the cache
    check_fake(*data.load_mnist("test", download=False))


def test_corrupted_mirror_is_rejected(tmp_path, monkeypatch):
    flipped = bytearray(GZ[IMAGES])
    flipped[-20] ^= 0x01
    bad = write(tmp_path / "bad", {**GZ, IMAGES: bytes(flipped)})
    good = write(tmp_path / "good", GZ)
    monkeypatch.setattr(data, "MNIST_MIRRORS", (mirror(bad), mirror(good)))
    check_fake(*data.load_mnist("test", progress=False))
    assert sorted(os.listdir(tmp_path / "cache")) == sorted(GZ)
    assert (tmp_path / "cache" / IMAGES).read_bytes() == GZ[IMAGES]

    monkeypatch.setattr(data, "MNIST_MIRRORS", (mirror(bad),))    # only the bad mirror
    os.remove(tmp_path / "cache" / IMAGES)
    with pytest.raises(data.DataUnavailableError, match="wrong MD5"):
        data.load_mnist("test", progress=False)
    assert sorted(os.listdir(tmp_path / "cache")) == [LABELS]


def test_corrupted_cache_file_is_reported(tmp_path):
    write(tmp_path / "cache", {**GZ, LABELS: GZ[LABELS][:-1]})
    with pytest.raises(ValueError, match="downloaded again") as err:
        data.load_mnist("test", download=False)
    assert LABELS in str(err.value) and str(tmp_path / "cache") in str(err.value)


def test_cache_dir(monkeypatch, tmp_path):
    assert data.mnist_cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("DIFFNOTES_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.mnist_cache_dir() == tmp_path / "xdg" / "diffnotes" / "mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data.mnist_cache_dir() == tmp_path / "home" / ".cache" / "diffnotes" / "mnist"


def test_bad_arguments(tmp_path):
    for split in ["val", "TEST", None, 0]:
        with pytest.raises(ValueError, match="split must be one of 'train', 'test'"):
            data.load_mnist(split)
    with pytest.raises(ValueError, match="data_dir must be a folder path"):
        data.load_mnist("test", 3)
    for path in [tmp_path / "absent", write(tmp_path / "src", GZ) / IMAGES]:
        with pytest.raises(ValueError, match="data_dir must be an existing folder"):
            data.load_mnist("test", path)


# ------------------------------------------------------------------------ real data
def test_real_mnist_test_split(monkeypatch):
    if not REAL_DATA:
        pytest.skip("DIFFNOTES_DATA is not set: no folder with the real MNIST test split")
    monkeypatch.setitem(data.MNIST_FILES, "test", OFFICIAL_TEST)   # the official MD5s again
    images, labels = data.load_mnist("test", REAL_DATA, download=False)
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and labels.dtype == np.int64
    assert images.max() == data.MNIST_LEVELS and images.min() == 0
    assert sorted(set(labels.tolist())) == list(range(10))
    assert labels[0] == 7


def test_load_digits():
    images, labels = data.load_digits()
    assert images.shape == (1797, 8, 8) and images.dtype == np.uint8
    assert labels.shape == (1797,) and labels.dtype == np.int64
    assert images.min() == 0 and images.max() == data.DIGITS_LEVELS == 16
    assert sorted(set(labels.tolist())) == list(range(10))
