"""Importance scores: Taylor against a hand-computed gradient, magnitude, random, errors."""

from __future__ import annotations

import numpy as np
import pytest

from reds_tf import zoo
from reds_tf._keras import keras, tf
from reds_tf.importance import magnitude_scores, random_scores, taylor_scores
from reds_tf.nested import make_nested

from .conftest import random_input, randomize


def _batches(model, n=3, seed=0):
    rng = np.random.default_rng(seed)
    classes = model.output_shape[-1]
    return [
        (random_input(model, batch=4, seed=seed + i), rng.integers(0, classes, 4).astype("int32"))
        for i in range(n)
    ]


def test_taylor_matches_hand_computation_dense():
    model = zoo.build("fc2", hidden=6)
    data = _batches(model, n=3)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    g = np.zeros(model.get_layer("fc1").kernel.shape)
    for x, y in data[:2]:  # num_batches=2: the third batch must be ignored
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x))
        g += tape.gradient(loss, model.get_layer("fc1").kernel).numpy()
    expected = np.abs(model.get_layer("fc1").kernel.numpy() * g).sum(axis=0)
    scores = taylor_scores(model, data, num_batches=2)
    assert set(scores) == {"fc1"} and scores["fc1"].shape == (6,)
    np.testing.assert_allclose(scores["fc1"], expected, rtol=1e-5)


def test_taylor_includes_tied_depthwise_channel():
    model = randomize(zoo.build("ds_cnn_s", dropout=False), seed=1)
    data = _batches(model, n=2)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    conv, dw = model.get_layer("pw1").kernel, model.get_layer("dw2").depthwise_kernel
    gc, gd = np.zeros(conv.shape), np.zeros(dw.shape)
    for x, y in data:
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=False))
        a, b = tape.gradient(loss, [conv, dw])
        gc, gd = gc + a.numpy(), gd + b.numpy()
    expected = np.abs(conv.numpy() * gc).sum(axis=(0, 1, 2)) + np.abs(dw.numpy() * gd).sum(axis=(0, 1, 3))
    scores = taylor_scores(model, iter(data))
    np.testing.assert_allclose(scores["pw1"], expected, rtol=1e-4)
    assert set(scores) == {"conv1", "pw1", "pw2", "pw3", "pw4"}


def test_taylor_on_nested_model_scores_full_width():
    plain = zoo.build("fc2", hidden=6)
    nested = make_nested(plain)
    data = _batches(plain, n=2)
    np.testing.assert_allclose(
        taylor_scores(nested, data)["fc1"], taylor_scores(plain, data)["fc1"], rtol=1e-6
    )


def test_taylor_with_tf_data_and_one_hot_labels():
    model = zoo.build("fc2", hidden=5, softmax=True)
    x = random_input(model, batch=8)
    y = np.eye(10, dtype="float32")[np.arange(8) % 10]
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    scores = taylor_scores(model, ds)
    assert scores["fc1"].shape == (5,) and np.all(scores["fc1"] >= 0) and scores["fc1"].sum() > 0


def test_magnitude_and_random():
    model = zoo.build("ds_cnn_s")
    mag = magnitude_scores(model)
    fc2 = zoo.build("fc2", hidden=7)
    np.testing.assert_allclose(
        magnitude_scores(fc2)["fc1"], np.abs(fc2.get_layer("fc1").kernel.numpy()).sum(axis=0)
    )
    expected = np.abs(model.get_layer("pw1").kernel.numpy()).sum(axis=(0, 1, 2)) + np.abs(
        model.get_layer("dw2").depthwise_kernel.numpy()
    ).sum(axis=(0, 1, 3))
    np.testing.assert_allclose(mag["pw1"], expected, rtol=1e-6)
    r1, r2, r3 = random_scores(model, 0), random_scores(model, 0), random_scores(model, 1)
    assert all(np.array_equal(r1[g], r2[g]) for g in r1) and not np.array_equal(r1["pw1"], r3["pw1"])
    assert {g: v.shape for g, v in r1.items()} == {g: (64,) for g in mag}


def test_errors():
    model = zoo.build("fc2", hidden=4)
    with pytest.raises(ValueError, match="got no batches"):
        taylor_scores(model, [])
    with pytest.raises(ValueError, match="num_batches >= 1"):
        taylor_scores(model, _batches(model), num_batches=0)
