"""A user's own .npz arrays: splits, scaling, an optional val.npz, and clear errors for bad files."""

from __future__ import annotations

import numpy as np
import pytest

from reds_tf.data import check_layout, load
from reds_tf.errors import DatasetLayoutError
from tests.data.helpers import arrays


def _write(root, name, n, classes=3, dtype=np.uint8, shape=(6, 5, 1), **extra):
    rng = np.random.default_rng(n)
    y = np.arange(n) % classes
    x = (rng.integers(0, 256, (n, *shape)) if dtype == np.uint8 else rng.normal(size=(n, *shape))).astype(
        dtype
    )
    np.savez(root / name, x=x, y=y, **extra)
    return x, y


def test_uint8_splits_scaled_and_validation_carved(tmp_path):
    x_tr, y_tr = _write(tmp_path, "train.npz", 60, class_names=np.array(["a", "b", "c"]))
    x_te, y_te = _write(tmp_path, "test.npz", 12)
    s = load("npz", tmp_path, validation_fraction=0.1, shuffle=False)
    assert s.input_shape == (6, 5, 1) and s.num_classes == 3 and s.class_names == ["a", "b", "c"]
    assert s.sizes == {"train": 54, "val": 6, "test": 12}  # 2 of 20 per class carved
    x, y = arrays(s.test)
    np.testing.assert_allclose(x, x_te / 255.0, rtol=1e-6)
    assert y.tolist() == y_te.tolist() and y.dtype == np.int32
    assert "carve" in s.info["split_rule"] and s.info["augmentation"] == "none (npz data)"


def test_float_inputs_kept_and_val_npz_used(tmp_path):
    _write(tmp_path, "train.npz", 30, dtype=np.float32, shape=(8,))
    _write(tmp_path, "test.npz", 9, dtype=np.float32, shape=(8,))
    x_val, _ = _write(tmp_path, "val.npz", 6, dtype=np.float32, shape=(8,))
    s = load("npz", tmp_path, shuffle=False)
    assert s.sizes == {"train": 30, "val": 6, "test": 9} and s.input_shape == (8,)
    np.testing.assert_array_equal(arrays(s.val)[0], x_val)  # float x is used as it is
    assert s.info["split_rule"].startswith("validation = the given validation set")


def test_missing_files_and_bad_arrays_are_clear(tmp_path):
    with pytest.raises(
        DatasetLayoutError, match=r"(?s)NPZ files missing: \['train.npz', 'test.npz'\].*np.savez"
    ):
        check_layout("npz", tmp_path)
    _write(tmp_path, "train.npz", 10)
    np.savez(tmp_path / "test.npz", images=np.zeros((2, 6, 5, 1), np.uint8), y=np.zeros(2, np.int64))
    with pytest.raises(
        DatasetLayoutError, match=r"has no array\(s\) \['x'\]. Received arrays: \['images', 'y'\]"
    ):
        load("npz", tmp_path)
    np.savez(tmp_path / "test.npz", x=np.zeros((2, 6, 5, 1), np.uint8), y=np.eye(2, 3))
    with pytest.raises(DatasetLayoutError, match="(?s)do not pair up.*not one-hot"):
        load("npz", tmp_path)
    _write(tmp_path, "test.npz", 4, shape=(5, 6, 1))
    with pytest.raises(DatasetLayoutError, match="disagree on x's shape"):
        load("npz", tmp_path)
    (tmp_path / "test.npz").write_bytes(b"PK\x03\x04 cut off")
    with pytest.raises(DatasetLayoutError, match="Cannot read .*test.npz' as .npz"):
        load("npz", tmp_path)
