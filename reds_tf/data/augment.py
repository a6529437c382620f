"""Shared tf.data plumbing: deterministic per-element seeds, image augmentation, split finishing.

Augmentation uses stateless random ops fed with per-element seeds, so a run is reproducible from its
seed, yet every pass over the training set draws a new order and new augmentations. By default a pass's
draws follow from how many passes this process made before it. With a *pass key* (``new_pass_key``,
set by ``set_pass`` before each pass) they are a function of the seed and the key alone: a resumed run
then replays exactly the passes an uninterrupted one makes, whatever it iterated before.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from reds_tf._keras import tf

AUTOTUNE = tf.data.AUTOTUNE


def new_pass_key() -> tf.Variable:
    """A pass key for the loaders' ``pass_key`` option (an int64 scalar; ``set_pass`` sets it)."""
    return tf.Variable(0, dtype=tf.int64, trainable=False, name="pass_key")


def set_pass(key: tf.Variable | None, *labels: Any) -> None:
    """Name the next pass over training data keyed by ``key`` (no-op for ``None``): its order and
    augmentation become a function of the loader's seed and ``labels`` (e.g. stage and epoch)."""
    if key is not None:
        digest = hashlib.sha256(repr(labels).encode()).digest()
        key.assign(int.from_bytes(digest[:8], "little") >> 2)  # 62 bits: stays positive after + seed


def shuffled_with_seeds(
    ds: tf.data.Dataset, n: int, *, seed: int, shuffle: bool, pass_key: tf.Variable | None = None
) -> tf.data.Dataset:
    """``(element, int64[2] stateless seed)`` pairs of one pass, in a new order each pass (``shuffle``).

    Without ``pass_key``: reshuffled and re-seeded on every iteration of the dataset. With it: the pass
    reads the key when it starts, and order and seeds follow from ``seed`` and the key only.
    """
    buffer = max(1, min(n, 20_000))
    if pass_key is None:
        if shuffle:
            ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        return tf.data.Dataset.zip((ds, seeds))

    def one_pass(key: tf.Tensor) -> tf.data.Dataset:
        # The order's seed is the key (a tensor). tf.data pairs an op seed with the graph's seed and
        # cannot take a tensor op seed when that is 0 (a run with seed 0); fixing this function graph's
        # own seed also keeps the order independent of the caller's global seed.
        tf.compat.v1.get_default_graph().seed = 1
        d = ds.shuffle(buffer, seed=key + seed, reshuffle_each_iteration=False) if shuffle else ds
        base = tf.stack([key, tf.constant(seed, tf.int64)])
        return d.enumerate().map(lambda i, x: (x, tf.random.experimental.stateless_fold_in(base, i)))

    start = tf.data.Dataset.from_tensors(tf.constant(0, tf.int64)).map(lambda _: pass_key.read_value())
    return start.flat_map(one_pass)


def finish_train(
    ds: tf.data.Dataset,
    n: int,
    *,
    seed: int,
    shuffle: bool,
    augment_fn: Callable | None,
    preprocess_fn: Callable,
    pass_key: tf.Variable | None = None,
) -> tf.data.Dataset:
    """Cached training elements -> shuffled (each pass), augmented, preprocessed ``(x, y)``."""
    ds = shuffled_with_seeds(ds, n, seed=seed, shuffle=shuffle, pass_key=pass_key)
    if augment_fn is not None:
        ds = ds.map(lambda xy, s: augment_fn(xy[0], xy[1], s), num_parallel_calls=AUTOTUNE)
    else:
        ds = ds.map(lambda xy, _s: xy)
    return ds.map(preprocess_fn, num_parallel_calls=AUTOTUNE)


def shift_flip_image(
    image: tf.Tensor, seed: tf.Tensor, *, pad: int, flip: bool = True, max_zoom: float = 0.0
) -> tf.Tensor:
    """Random horizontal flip, zoom in by up to ``max_zoom`` and shift by up to ``pad`` pixels.

    ``image`` is float in [0, 1], [H, W, C]; the output has the same shape. Shifts pad with zeros
    (black), as ``ImageDataGenerator``'s constant fill would.
    """
    h, w = image.shape[0], image.shape[1]
    s = tf.random.experimental.stateless_split(seed, 3)
    if flip:
        image = tf.image.stateless_random_flip_left_right(image, s[0])
    if max_zoom > 0:
        z = tf.random.stateless_uniform([], s[1], 1.0, 1.0 + max_zoom)
        size = tf.cast(tf.round(tf.constant([h, w], tf.float32) * z), tf.int32)
        image = tf.image.resize(image, size, antialias=True)
        image = tf.image.resize_with_crop_or_pad(image, h, w)
    if pad > 0:
        image = tf.image.resize_with_crop_or_pad(image, h + 2 * pad, w + 2 * pad)
        image = tf.image.stateless_random_crop(image, [h, w, image.shape[-1]], s[2])
    return image
