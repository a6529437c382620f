"""Fashion-MNIST IDX loader: the real Debian files when installed, fixture files otherwise."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from reds_tf.data import load
from reds_tf.data.fashion_mnist import read_idx
from reds_tf.errors import DatasetLayoutError
from tests.data import fixtures
from tests.data.helpers import arrays, assert_augmentation_only_in_training

DEBIAN = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(
    not (DEBIAN / "train-images-idx3-ubyte.gz").is_file(),
    reason="real Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)",
)
def test_real_files_have_the_published_counts():
    s = load("fashion_mnist")  # default search finds Debian's copy
    counts = s.info["class_counts"]
    # 60000 train images, 6000 per class, before the carve; 10000 test images, 1000 per class
    assert (np.array(counts["train"]) + np.array(counts["val"])).tolist() == [6000] * 10
    assert counts["test"] == [1000] * 10
    assert s.sizes == {"train": 54000, "val": 6000, "test": 10000}
    assert counts["val"] == [600] * 10
    assert s.input_shape == (28, 28, 1) and s.num_classes == 10
    x, y = next(iter(s.test))
    assert x.shape == (28, 28, 1) and x.dtype.name == "float32" and y.dtype.name == "int32"
    x_te = read_idx(DEBIAN / "t10k-images-idx3-ubyte.gz", 3)
    y_te = read_idx(DEBIAN / "t10k-labels-idx1-ubyte.gz", 1)
    assert x_te.shape == (10000, 28, 28)
    assert int(y) == int(y_te[0]) and np.allclose(x.numpy()[..., 0], x_te[0] / 255.0)


def test_fixture_split_carve_and_determinism(fashion_root):
    a = load("fashion_mnist", fashion_root, augment=False, shuffle=False, seed=1)
    assert a.sizes == {"train": 180, "val": 20, "test": 50}
    b = load("fashion_mnist", fashion_root, augment=False, shuffle=False, seed=1)
    c = load("fashion_mnist", fashion_root, augment=False, shuffle=False, seed=2)
    va, _ = arrays(a.val)
    np.testing.assert_array_equal(va, arrays(b.val)[0])
    assert not np.array_equal(va, arrays(c.val)[0])
    train = {t.tobytes() for t in arrays(a.train)[0]}
    assert not any(v.tobytes() in train for v in va)  # validation is carved out, not copied


def test_augmentation_only_in_training(fashion_root):
    aug = load("fashion_mnist", fashion_root, augment=True, shuffle=False)
    plain = load("fashion_mnist", fashion_root, augment=False, shuffle=False)
    assert_augmentation_only_in_training(aug, plain)


def test_corrupt_and_missing_files(tmp_path, fashion_root):
    bad = tmp_path / "bad.gz"
    fixtures.write_idx_gz(bad, np.zeros(5, np.uint8))
    with pytest.raises(DatasetLayoutError, match=r"magic number 0x00000801, expected 0x00000803"):
        read_idx(bad, 3)
    raw = gzip.decompress((fashion_root / "t10k-images-idx3-ubyte.gz").read_bytes())
    with gzip.open(bad, "wb") as f:
        f.write(raw[:-100])
    with pytest.raises(DatasetLayoutError, match=r"header \(50, 28, 28\) needs 39216.*truncated"):
        read_idx(bad, 3)
    bad.write_bytes((fashion_root / "t10k-images-idx3-ubyte.gz").read_bytes()[:500])
    with pytest.raises(DatasetLayoutError, match=r"Cannot decompress IDX file"):
        read_idx(bad, 3)
    with pytest.raises(DatasetLayoutError, match=r"(?s)Looked in: .*apt-get install dataset-fashion-mnist"):
        load("fashion_mnist", tmp_path / "nowhere")


def test_default_search_order_debian_then_keras_cache(monkeypatch, tmp_path, fashion_root):
    from reds_tf.data import layout

    missing = tmp_path / "no-debian"
    monkeypatch.setattr(layout, "FASHION_MNIST_DEFAULT_DIRS", (missing, fashion_root))
    assert layout.find_fashion_mnist(None) == fashion_root  # falls through to the keras cache
    monkeypatch.setattr(layout, "FASHION_MNIST_DEFAULT_DIRS", (missing, tmp_path / "no-cache"))
    with pytest.raises(DatasetLayoutError, match=r"Looked in: .*no-debian, .*no-cache"):
        layout.find_fashion_mnist(None)
