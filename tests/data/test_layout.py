"""Dataset registry, check_layout and the shared split helpers."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from reds_tf.data import check_layout, names
from reds_tf.data.splits import balanced_limit, stratified_carve
from tests.data import fixtures


def test_names_and_unknown_name():
    assert names() == ["cifar10", "fashion_mnist", "npz", "speech_commands", "vww"]
    with pytest.raises(ValueError, match=r"name='mnist'.*fashion_mnist"):
        check_layout("mnist", None)


def test_check_layout_returns_roots(tmp_path, sc_root):
    assert check_layout("speech_commands", sc_root) == sc_root
    c = fixtures.make_cifar10(tmp_path / "c", rows_per_batch=10)
    assert check_layout("cifar10", c) == c / "cifar-10-batches-py"
    assert check_layout("cifar10", c / "cifar-10-batches-py") == c / "cifar-10-batches-py"
    fm = fixtures.make_fashion_mnist(tmp_path / "fm", n_train=10, n_test=10)
    assert check_layout("fashion_mnist", fm) == fm


def test_check_layout_cli_imports_no_tensorflow(sc_root, tmp_path):
    code = (
        "import sys; from reds_tf.data.__main__ import main; rc = main(sys.argv[1:]); "
        "print('TF' if 'tensorflow' in sys.modules else 'noTF'); sys.exit(rc)"
    )
    ok = subprocess.run(
        [sys.executable, "-c", code, "check", "speech_commands", str(sc_root)], capture_output=True, text=True
    )
    assert ok.returncode == 0 and ok.stdout.split() == [str(sc_root), "noTF"]
    bad = subprocess.run(
        [sys.executable, "-c", code, "check", "vww", str(tmp_path)], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "noTF" in bad.stdout
    assert "Expected layout for 'vww'" in bad.stderr and "vw_coco2014_96" in bad.stderr


def test_stratified_carve_is_disjoint_seeded_and_per_class():
    y = np.repeat(np.arange(4), [10, 20, 30, 40])
    keep, val = stratified_carve(y, 0.1, seed=0)
    assert not set(keep) & set(val) and len(keep) + len(val) == 100
    assert np.bincount(y[val]).tolist() == [1, 2, 3, 4]
    np.testing.assert_array_equal(val, stratified_carve(y, 0.1, seed=0)[1])
    assert not np.array_equal(val, stratified_carve(y, 0.1, seed=1)[1])
    with pytest.raises(ValueError, match="validation_fraction=1.0"):
        stratified_carve(y, 1.0, seed=0)


def test_balanced_limit_round_robin():
    y = np.repeat(np.arange(3), [50, 5, 20])
    idx = balanced_limit(np.arange(75), y, 12, seed=0)
    assert len(idx) == 12 and np.bincount(y[idx]).tolist() == [4, 4, 4]
    idx = balanced_limit(np.arange(75), y, 30, seed=0)
    assert np.bincount(y[idx]).tolist() == [13, 5, 12]  # the small class is exhausted, the rest share
    assert len(balanced_limit(np.arange(75), y, None, seed=0)) == 75
