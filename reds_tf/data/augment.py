"""Shared tf.data plumbing: deterministic per-element seeds, image augmentation, split finishing.

Augmentation uses stateless random ops fed from ``tf.data.Dataset.random(seed)``, so a run is
reproducible from its seed, yet every pass over the training set draws new augmentations.
"""

from __future__ import annotations

from collections.abc import Callable

from reds_tf._keras import tf

AUTOTUNE = tf.data.AUTOTUNE


def with_seeds(ds: tf.data.Dataset, seed: int) -> tf.data.Dataset:
    """Zip ``ds`` elements with a fresh int64[2] stateless seed each (new draws on every pass)."""
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    return tf.data.Dataset.zip((ds, seeds))


def finish_train(
    ds: tf.data.Dataset,
    n: int,
    *,
    seed: int,
    shuffle: bool,
    augment_fn: Callable | None,
    preprocess_fn: Callable,
) -> tf.data.Dataset:
    """Cached training elements -> shuffled (each pass), augmented, preprocessed ``(x, y)``."""
    if shuffle:
        ds = ds.shuffle(max(1, min(n, 20_000)), seed=seed, reshuffle_each_iteration=True)
    if augment_fn is not None:
        ds = with_seeds(ds, seed).map(lambda xy, s: augment_fn(xy[0], xy[1], s), num_parallel_calls=AUTOTUNE)
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
