"""CIFAR-10 python-pickle loader on fixture batches."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from reds_tf.data import check_layout, load
from reds_tf.data.cifar10 import read_batch
from reds_tf.errors import DatasetLayoutError
from tests.data import fixtures
from tests.data.helpers import arrays, assert_augmentation_only_in_training


def test_shapes_labels_sizes(cifar_root):
    s = load("cifar10", cifar_root, augment=False, shuffle=False)
    assert s.input_shape == (32, 32, 3) and s.num_classes == 10
    assert s.class_names[:3] == ["airplane", "automobile", "bird"]
    assert s.sizes == {"train": 90, "val": 10, "test": 20}  # 5 x 20 rows, 10 % carved per class
    assert s.info["class_counts"]["val"] == [1] * 10
    x, y = arrays(s.test)
    assert x.dtype == np.float32 and y.dtype == np.int32 and 0.0 <= x.min() and x.max() <= 1.0
    # fixture class c has pixel values 20 c + U[0, 40): labels line up with the pixels
    assert np.all(np.diff([x[y == c].mean() for c in range(10)]) > 0)


def test_rgb_planes_become_channels(tmp_path):
    root = fixtures.make_cifar10(tmp_path, rows_per_batch=10)
    row = np.zeros(3072, np.uint8)
    row[:1024], row[1024:2048], row[2048:] = 255, 128, 0  # R plane, G plane, B plane
    batch = {b"labels": [3], b"data": row[None, :], b"batch_label": b"x", b"filenames": [b"a.png"]}
    with open(root / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump(batch, f, protocol=2)
    x, y = read_batch(root / "cifar-10-batches-py" / "test_batch")
    assert x.shape == (1, 32, 32, 3) and y.tolist() == [3]
    np.testing.assert_array_equal(x[0, 5, 7], [255, 128, 0])


def test_augmentation_only_in_training(cifar_root):
    aug = load("cifar10", cifar_root, augment=True, shuffle=False)
    plain = load("cifar10", cifar_root, augment=False, shuffle=False)
    assert_augmentation_only_in_training(aug, plain)


def test_missing_and_corrupt_files(tmp_path, cifar_root):
    with pytest.raises(DatasetLayoutError, match=r"(?s)missing: \['data_batch_1'.*cifar-10-python\.tar\.gz"):
        check_layout("cifar10", tmp_path)
    root = fixtures.make_cifar10(tmp_path / "c", rows_per_batch=10, nested=False)
    (root / "data_batch_3").write_bytes(b"\x80\x02}q\x00(")  # a pickle cut off after a few bytes
    with pytest.raises(DatasetLayoutError, match=r"Cannot unpickle CIFAR-10 file .*data_batch_3"):
        load("cifar10", root)
