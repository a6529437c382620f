"""Visual Wake Words loader: MLPerf folder layout and the TFRecord layout, on fixture trees."""

from __future__ import annotations

import numpy as np
import pytest

from reds_tf.data import check_layout, load
from reds_tf.errors import DatasetLayoutError
from tests.data import fixtures
from tests.data.helpers import arrays, assert_augmentation_only_in_training


@pytest.fixture(scope="module")
def folder(vww_folder_root):
    return load("vww", vww_folder_root, augment=False, shuffle=False)


@pytest.fixture(scope="module")
def records(vww_tfrecord_root):
    return load("vww", vww_tfrecord_root, augment=False, shuffle=False)


def _person_is_one(x, y):
    """Fixture person images hold a bright figure: their mean pixel is far above the others'."""
    assert set(np.unique(y)) == {0, 1}
    assert x[y == 1].mean() > x[y == 0].mean() + 0.1  # figure: ~13 % of the area, +1.4 brighter


def test_folder_layout_shapes_labels_and_split_sizes(folder):
    s = folder
    assert s.class_names == ["non_person", "person"] and s.num_classes == 2
    assert s.input_shape == (96, 96, 3) and s.info["layout"] == "folder"
    xs, ys = [], []
    for split in ("train", "val", "test"):
        x, y = arrays(getattr(s, split))
        assert x.shape[1:] == (96, 96, 3) and x.dtype == np.float32 and y.dtype == np.int32
        assert len(y) == s.sizes[split] > 0
        assert -1.0 <= x.min() and x.max() <= 1.0  # MobileNet preprocessing x / 127.5 - 1
        xs.append(x)
        ys.append(y)
    assert sum(s.sizes.values()) == 40  # every fixture image used exactly once
    _person_is_one(np.concatenate(xs), np.concatenate(ys))


def test_folder_test_split_is_independent_of_seed_and_disjoint(vww_folder_root, folder):
    other = load("vww", vww_folder_root / "vw_coco2014_96", augment=False, shuffle=False, seed=7)
    t0, _ = arrays(folder.test)
    t1, _ = arrays(other.test)
    np.testing.assert_array_equal(t0, t1)  # test set fixed by file-name hash, not by the seed
    v0, _ = arrays(folder.val)
    v1, _ = arrays(other.val)
    assert v0.shape != v1.shape or not np.array_equal(v0, v1)  # the validation carve follows the seed
    train, _ = arrays(folder.train)
    flat = {a.tobytes() for a in train}
    assert not any(a.tobytes() in flat for a in t0) and not any(a.tobytes() in flat for a in v0)


def test_tfrecord_layout(records):
    s = records
    assert s.info["layout"] == "tfrecord"
    assert s.sizes["train"] + s.sizes["val"] == 16 and s.sizes["test"] == 8  # val.record-* is the test split
    x, y = arrays(s.test)
    assert x.shape == (8, 96, 96, 3)  # full-size 120x160 JPEGs resized
    _person_is_one(x, y)
    assert s.info["class_counts"]["test"] == [4, 4]


def test_augmentation_only_in_training(vww_tfrecord_root, records):
    aug = load("vww", vww_tfrecord_root, augment=True, shuffle=False)
    assert_augmentation_only_in_training(aug, records)


def test_limit_keeps_classes_balanced(vww_folder_root):
    s = load("vww", vww_folder_root, limit=6, augment=False)
    assert s.sizes["train"] == 6 and s.info["class_counts"]["train"] == [3, 3]


def test_wrong_layouts_name_the_expected_layout(tmp_path):
    with pytest.raises(DatasetLayoutError, match=r"(?s)Neither vw_coco2014_96.*person/\*\.jpg.*-> label 1"):
        check_layout("vww", tmp_path)
    (tmp_path / "train.record-00000-of-00001").write_bytes(b"")
    with pytest.raises(DatasetLayoutError, match=r"no val\.record-\* shards"):
        check_layout("vww", tmp_path)
    empty = tmp_path / "e" / "vw_coco2014_96"
    (empty / "person").mkdir(parents=True)
    (empty / "non_person").mkdir()
    with pytest.raises(DatasetLayoutError, match=r"hold no \.jpg/\.png images"):
        load("vww", tmp_path / "e")
    with pytest.raises(DatasetLayoutError, match=r"(?s)No data directory given.*mlcommons/tiny"):
        check_layout("vww", None)


def test_direct_class_folders_are_accepted(tmp_path):
    root = fixtures.make_vww_folder(tmp_path, per_class=2, nested=False)
    assert check_layout("vww", root) == root
