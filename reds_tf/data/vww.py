"""Visual Wake Words (person / no person) -> ``Splits`` of 96x96x3 images, labels non_person=0, person=1.

Two on-disk layouts (layout.find_vww; ``data_dir`` may be the folder that CONTAINS ``vw_coco2014_96``
or that folder itself):

* MLPerf Tiny folders ``vw_coco2014_96/{person,non_person}/*.jpg`` (train and val COCO images mixed).
  test = files whose name hashes (sha1) into the first ``test_percentage`` % (default 10) -- a rule
  independent of the seed, so the test set never changes between runs; validation = a stratified,
  seeded carve of ``validation_fraction`` of the rest.
* TFRecords of tensorflow/models ``build_visualwakewords_data.py``: ``train.record-*`` -> train and
  validation (stratified carve), ``val.record-*`` -> test. Only ``image/encoded`` and
  ``image/class/label`` are read; the full-size JPEGs are resized to 96x96 (aspect not kept, as MLPerf).

Preprocessing: MobileNet's ``x / 127.5 - 1``. Training augmentation (``augment=True``, after MLPerf's
``ImageDataGenerator``): horizontal flip, zoom in up to 10 %, shift up to 5 % (5 px), brightness +-0.1.
Decoded 96x96 uint8 images are cached (``cache="memory"`` default, 27.6 kB per image; pass a directory
for the full 100k-image set).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from reds_tf._keras import tf
from reds_tf.data.augment import AUTOTUNE, finish_train, shift_flip_image
from reds_tf.data.layout import VWW_CLASSES, find_vww, image_files, layout_error
from reds_tf.data.splits import Splits, balanced_limit, class_counts, stratified_carve

SIZE = 96
INPUT_SHAPE = (SIZE, SIZE, 3)


def _decode_resize(encoded: tf.Tensor) -> tf.Tensor:
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)  # grey -> RGB as well
    image = tf.image.resize(image, [SIZE, SIZE], antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)


def _preprocess(image: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    return tf.cast(image, tf.float32) / 127.5 - 1.0, tf.cast(label, tf.int32)


def _augment(image: tf.Tensor, label: tf.Tensor, seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    s = tf.random.experimental.stateless_split(seed, 2)
    x = shift_flip_image(tf.cast(image, tf.float32) / 255.0, s[0], pad=5, max_zoom=0.1)
    x = tf.clip_by_value(tf.image.stateless_random_brightness(x, 0.1, s[1]), 0.0, 1.0)
    return tf.cast(tf.round(x * 255.0), tf.uint8), label


def _name_in_test(name: str, percentage: float) -> bool:
    h = int(hashlib.sha1(os.path.basename(name).encode()).hexdigest(), 16)
    return (h % 10_000) < percentage * 100


def _folder_index(root: Path, test_percentage: float) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(image paths, labels, is-test mask) of the folder layout."""
    files, labels = [], []
    for label, cls in enumerate(VWW_CLASSES):
        imgs = image_files(root / cls)
        files += imgs
        labels += [label] * len(imgs)
    labels_arr = np.array(labels, np.int64)
    is_test = np.array([_name_in_test(f, test_percentage) for f in files], bool)
    return files, labels_arr, is_test


def _cache(ds: tf.data.Dataset, cache: str | os.PathLike | None, key: str) -> tf.data.Dataset:
    if cache is None:
        return ds
    if cache == "memory":
        return ds.cache()
    Path(cache).mkdir(parents=True, exist_ok=True)
    return ds.cache(str(Path(cache) / key))


def _tfrecord_labels(files: list[str]) -> np.ndarray:
    """One pass over the shards reading only the labels (needed for sizes, the carve and ``limit``)."""
    spec = {"image/class/label": tf.io.FixedLenFeature([], tf.int64)}
    ds = tf.data.TFRecordDataset(files).batch(1024)
    ds = ds.map(lambda r: tf.io.parse_example(r, spec)["image/class/label"])
    labels = np.concatenate([b.numpy() for b in ds] or [np.zeros(0, np.int64)])
    if len(labels) and (labels.min() < 0 or labels.max() > 1):
        raise layout_error(
            "vww", f"image/class/label values {sorted(set(labels.tolist()))} found; VWW uses 0/1."
        )
    return labels


def _tfrecord_dataset(files: list[str], keep: np.ndarray) -> tf.data.Dataset:
    """Records whose position (over the sorted shards) is in the sorted index array ``keep``."""
    mask = np.zeros(max(int(keep.max()) + 1 if len(keep) else 0, 1), bool)
    mask[keep] = True
    mask_t = tf.constant(mask)
    spec = {
        "image/encoded": tf.io.FixedLenFeature([], tf.string),
        "image/class/label": tf.io.FixedLenFeature([], tf.int64),
    }
    ds = tf.data.TFRecordDataset(files).enumerate()
    ds = ds.take(len(mask)).filter(lambda i, r: tf.gather(mask_t, i))

    def parse(i: tf.Tensor, record: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        ex = tf.io.parse_single_example(record, spec)
        return _decode_resize(ex["image/encoded"]), tf.cast(ex["image/class/label"], tf.int32)

    return ds.map(parse, num_parallel_calls=AUTOTUNE)


def load(
    data_dir: str | os.PathLike | None,
    *,
    validation_fraction: float = 0.1,
    seed: int = 0,
    limit: int | None = None,
    augment: bool = True,
    shuffle: bool = True,
    pass_key: Any = None,
    test_percentage: float = 10.0,
    cache: str | os.PathLike | None = "memory",
) -> Splits:
    """Visual Wake Words as :class:`Splits` (see the module docstring)."""
    kind, root = find_vww(data_dir)
    raw: dict[str, tf.data.Dataset] = {}
    labels: dict[str, np.ndarray] = {}
    if kind == "folder":
        files, y, is_test = _folder_index(root, test_percentage)
        test_idx, trainval_idx = np.flatnonzero(is_test), np.flatnonzero(~is_test)
        keep, val = stratified_carve(y[trainval_idx], validation_fraction, seed)
        chosen = {
            "train": balanced_limit(trainval_idx[keep], y[trainval_idx[keep]], limit, seed),
            "val": balanced_limit(trainval_idx[val], y[trainval_idx[val]], limit, seed + 1),
            "test": balanced_limit(test_idx, y[test_idx], limit, seed + 2),
        }
        for split, ids in chosen.items():
            paths = tf.constant([files[i] for i in ids] or [""], tf.string)[: len(ids)]
            ds = tf.data.Dataset.from_tensor_slices((paths, y[ids].astype(np.int32)))
            raw[split] = ds.map(
                lambda p, t: (_decode_resize(tf.io.read_file(p)), t), num_parallel_calls=AUTOTUNE
            )
            labels[split] = y[ids]
        rule = (
            f"test = sha1(file name) in the first {test_percentage:g} %; validation = stratified seeded "
            f"carve of {validation_fraction:.0%} of the rest"
        )
    else:
        train_files = sorted(str(p) for p in root.glob("train.record-*"))
        test_files = sorted(str(p) for p in root.glob("val.record-*"))
        y_tr, y_te = _tfrecord_labels(train_files), _tfrecord_labels(test_files)
        keep, val = stratified_carve(y_tr, validation_fraction, seed)
        chosen = {
            "train": balanced_limit(keep, y_tr[keep], limit, seed),
            "val": balanced_limit(val, y_tr[val], limit, seed + 1),
            "test": balanced_limit(np.arange(len(y_te)), y_te, limit, seed + 2),
        }
        for split, ids in chosen.items():
            raw[split] = _tfrecord_dataset(test_files if split == "test" else train_files, ids)
            labels[split] = (y_te if split == "test" else y_tr)[ids]
        rule = (
            f"train.record-* -> train + stratified seeded carve of {validation_fraction:.0%} for "
            "validation; val.record-* -> test"
        )
    key = hashlib.sha1(f"{root}|{kind}|{seed}|{limit}|{validation_fraction}|{test_percentage}".encode())
    datasets = {}
    for split, ds in raw.items():
        ds = _cache(ds, cache, f"vww_{key.hexdigest()[:12]}_{split}")
        if split == "train":
            ds = finish_train(
                ds,
                len(labels[split]),
                seed=seed,
                shuffle=shuffle,
                pass_key=pass_key,
                augment_fn=_augment if augment else None,
                preprocess_fn=_preprocess,
            ).prefetch(AUTOTUNE)
        else:
            ds = ds.map(_preprocess, num_parallel_calls=AUTOTUNE)
        datasets[split] = ds
    info: dict[str, Any] = {
        "dataset": "vww",
        "layout": kind,
        "source": str(root),
        "split_rule": rule,
        "seed": seed,
        "limit": limit,
        "preprocessing": "resize to 96x96 (antialiased bilinear), x / 127.5 - 1",
        "augment": augment,
        "augmentation": "flip, zoom <= 10 %, shift <= 5 px, brightness +-0.1 (training only)"
        if augment
        else "none",
        "cache": str(cache),
        "class_counts": {s: class_counts(v, 2) for s, v in labels.items()},
    }
    return Splits(
        pass_key=pass_key,
        train=datasets["train"],
        val=datasets["val"],
        test=datasets["test"],
        num_classes=2,
        input_shape=INPUT_SHAPE,
        class_names=list(VWW_CLASSES),
        sizes={s: int(len(v)) for s, v in labels.items()},
        info=info,
    )
