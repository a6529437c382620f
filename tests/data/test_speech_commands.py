"""Speech Commands v0.02 loader on fixture trees in the real layout."""

from __future__ import annotations

import math
import shutil
from collections import Counter

import numpy as np
import pytest

from reds_tf.data import check_layout, load
from reds_tf.data.mfcc import mfcc
from reds_tf.data.speech_commands import read_wav
from reds_tf.data.speech_commands_index import (
    CLASS_NAMES,
    KEYWORDS,
    SILENCE_LABEL,
    UNKNOWN_LABEL,
    build_index,
    which_set,
)
from reds_tf.errors import DatasetLayoutError
from tests.data import fixtures
from tests.data.helpers import arrays, assert_augmentation_only_in_training


@pytest.fixture(scope="module")
def plain(sc_root):
    return load("speech_commands", sc_root, augment=False, shuffle=False)


@pytest.fixture(scope="module")
def limited(sc_root):
    return load("speech_commands", sc_root, limit=24, augment=False, seed=3, shuffle=False)


def test_class_order_is_the_tfds_mlperf_order():
    assert CLASS_NAMES == "down go left no off on right stop up yes _silence_ _unknown_".split()


def test_shapes_dtypes_sizes_and_info(plain):
    s = plain
    assert s.num_classes == 12 and s.class_names == CLASS_NAMES
    assert s.input_shape == (49, 10, 1)
    x, y = next(iter(s.train))
    assert x.shape == (49, 10, 1) and x.dtype.name == "float32" and y.dtype.name == "int32"
    for split in ("train", "val", "test"):
        _, ys = arrays(getattr(s, split))
        assert len(ys) == s.sizes[split] == sum(s.info["class_counts"][split])
    assert "validation_list.txt" in s.info["split_rule"]
    assert s.info["feature_settings"]["window"] == 640 and s.info["feature_settings"]["stride"] == 320


def test_dnn_feature_is_25x10(sc_root):
    s = load("speech_commands", sc_root, feature="mfcc_25x10", augment=False, limit=12)
    assert s.input_shape == (25, 10, 1)
    assert next(iter(s.val))[0].shape == (25, 10, 1)


def test_label_mapping_and_standard_shares(sc_root):
    index = build_index(sc_root)
    for split in ("train", "val", "test"):
        files, labels = index.files[split], index.labels[split]
        n_known = sum(1 for f in files if f and f.split("/")[0] in KEYWORDS)
        for f, y in zip(files, labels, strict=True):
            if not f:
                assert y == SILENCE_LABEL
            elif f.split("/")[0] in KEYWORDS:
                assert y == KEYWORDS.index(f.split("/")[0])
            else:
                assert y == UNKNOWN_LABEL
        counts = Counter(labels.tolist())
        assert counts[SILENCE_LABEL] == math.ceil(0.1 * n_known)
        assert counts[UNKNOWN_LABEL] == math.ceil(0.1 * n_known)
    # other shares are options
    index = build_index(sc_root, silence_percentage=20, unknown_percentage=0)
    n_known = sum(1 for y in index.labels["train"] if y < 10)
    assert Counter(index.labels["train"].tolist())[SILENCE_LABEL] == math.ceil(0.2 * n_known)
    assert UNKNOWN_LABEL not in index.labels["train"]


def test_list_files_are_honoured(tmp_path):
    root = fixtures.make_speech_commands(tmp_path / "sc", words=("yes", "no", "marvin"), speakers=10)
    train_files = build_index(root).files["train"]
    moved = next(f for f in train_files if f.startswith("yes/"))
    # the lists, not the hash rule, decide: move a training clip into the validation list
    with open(root / "validation_list.txt", "a") as fh:
        fh.write(moved + "\n")
    index = build_index(root)
    assert moved in index.files["val"] and moved not in index.files["train"]
    listed_val = set((root / "validation_list.txt").read_text().split())
    listed_test = set((root / "testing_list.txt").read_text().split())
    assert {f for f in index.files["val"] if f.split("/")[0] in KEYWORDS} == {
        f for f in listed_val if f.split("/")[0] in KEYWORDS
    }
    assert {f for f in index.files["test"] if f.split("/")[0] in KEYWORDS} == {
        f for f in listed_test if f.split("/")[0] in KEYWORDS
    }
    assert not set(index.files["train"]) & (listed_val | listed_test)


def test_hash_rule_fallback_when_lists_absent(tmp_path):
    root = fixtures.make_speech_commands(
        tmp_path / "sc", words=("yes", "no", "left"), speakers=10, lists=False
    )
    index = build_index(root)
    for split in ("train", "val", "test"):
        for f in index.files[split]:
            if f:
                assert which_set(f) == split
    s = load("speech_commands", root, augment=False, limit=20)
    assert "hash rule" in s.info["split_rule"]


def test_hash_rule_keeps_speakers_together_and_has_standard_proportions():
    rng = np.random.default_rng(0)
    ids = [f"{v:08x}" for v in rng.integers(0, 2**32, 6000)]
    splits = [which_set(f"yes/{sid}_nohash_0.wav") for sid in ids]
    assert all(which_set(f"no/{sid}_nohash_3.wav") == s for sid, s in zip(ids[:300], splits, strict=False))
    share = Counter(splits)
    assert abs(share["val"] / 6000 - 0.1) < 0.015 and abs(share["test"] / 6000 - 0.1) < 0.015


def test_val_features_equal_mfcc_of_the_padded_file(sc_root, plain):
    s = plain
    index = build_index(sc_root)
    first = index.files["val"][0]
    audio = np.zeros(16000, np.float32)
    raw = read_wav(sc_root / first)
    audio[: len(raw)] = raw
    x, y = next(iter(s.val))
    np.testing.assert_allclose(x.numpy()[..., 0], mfcc(audio).numpy(), rtol=1e-5, atol=1e-4)
    assert int(y) == index.labels["val"][0]


def test_silence_is_background_noise_or_zeros(plain, tmp_path):
    s = plain
    xs, ys = arrays(s.val)
    sil = xs[ys == SILENCE_LABEL]
    assert len(sil) > 0 and sil[:, :, 0].std() > 0  # noise windows, not digital silence
    quiet = fixtures.make_speech_commands(tmp_path / "q", words=("yes", "no"), speakers=10, noise=False)
    s2 = load("speech_commands", quiet, augment=True, shuffle=False)
    assert "noise disabled" in s2.info["augmentation"]
    xs2, ys2 = arrays(s2.val)
    zeros = mfcc(np.zeros(16000, np.float32)).numpy()[..., None]
    assert (ys2 == SILENCE_LABEL).any()
    for x in xs2[ys2 == SILENCE_LABEL]:
        np.testing.assert_allclose(x, zeros, atol=1e-3)


def test_augmentation_only_in_training(sc_root, limited):
    aug = load("speech_commands", sc_root, augment=True, shuffle=False, limit=24, seed=3)
    assert_augmentation_only_in_training(aug, limited)


def test_limit_is_balanced(limited):
    assert all(n <= 24 for n in limited.sizes.values())
    for split in ("train", "val", "test"):
        counts = limited.info["class_counts"][split]
        assert max(counts) - min(counts) <= 1, (split, counts)


def test_same_seed_same_shuffled_augmented_stream(sc_root):
    a = load("speech_commands", sc_root, limit=24, seed=5)  # shuffle and augmentation on
    b = load("speech_commands", sc_root, limit=24, seed=5)
    xa, ya = arrays(a.train)
    xb, yb = arrays(b.train)
    np.testing.assert_array_equal(ya, yb)
    np.testing.assert_allclose(xa, xb, rtol=1e-6, atol=1e-5)
    xa2, ya2 = arrays(a.train)  # a second pass reshuffles
    assert not np.array_equal(ya, ya2) or not np.allclose(xa, xa2)


def test_missing_or_wrong_layout_names_the_expected_layout(tmp_path):
    with pytest.raises(DatasetLayoutError, match=r"(?s)Expected layout for 'speech_commands'.*_nohash_"):
        check_layout("speech_commands", None)
    with pytest.raises(DatasetLayoutError, match=r"(?s)does not exist.*speech_commands_v0.02.tar.gz"):
        load("speech_commands", tmp_path / "nope")
    (tmp_path / "empty" / "cats").mkdir(parents=True)
    with pytest.raises(DatasetLayoutError, match=r"No keyword folders .*\[cats\]"):
        check_layout("speech_commands", tmp_path / "empty")


def test_wrong_sample_format_is_a_layout_error(tmp_path):
    root = fixtures.make_speech_commands(tmp_path / "sc", words=("yes", "no"), speakers=5)
    bad = sorted((root / "yes").iterdir())[0]
    fixtures.write_wav(bad, np.zeros(8000), rate=8000)
    with pytest.raises(DatasetLayoutError, match=r"(?s)8000 Hz, 1 channel\(s\), 16-bit.*16000 Hz mono"):
        load("speech_commands", root)


def test_one_extra_folder_level_is_accepted(sc_root, tmp_path):
    outer = tmp_path / "outer"
    outer.mkdir()
    shutil.copytree(sc_root, outer / "speech_commands_v0.02")
    assert check_layout("speech_commands", outer) == outer / "speech_commands_v0.02"


def test_augmentation_path_computes_the_same_features_when_it_is_a_no_op(sc_root, limited):
    # time shift 0 and noise volume 0: the augmented training path must give the clean features
    noop = load(
        "speech_commands",
        sc_root,
        limit=24,
        seed=3,
        shuffle=False,
        time_shift_ms=0,
        background_volume=0.0,
    )
    xa, ya = arrays(noop.train)
    xb, yb = arrays(limited.train)
    np.testing.assert_array_equal(ya, yb)
    words = ya != SILENCE_LABEL  # training silence is zeros + augmentation noise, not fixed windows
    np.testing.assert_allclose(xa[words], xb[words], rtol=1e-5, atol=1e-4)


def test_info_is_json_serialisable(plain):
    import json

    info = json.loads(json.dumps(plain.info))
    assert info["seed"] == 0 and info["feature"] == "mfcc_49x10" and info["source"]
