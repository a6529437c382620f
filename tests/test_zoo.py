"""Model zoo: every reference architecture builds with the published shapes and sizes."""

from __future__ import annotations

import pytest

from reds_tf import zoo
from reds_tf._keras import keras


def _trainable(model) -> int:
    return sum(int(w.shape.num_elements()) for w in model.trainable_weights)


def test_names():
    assert set(zoo.names()) == {
        "dnn_s", "dnn_m", "dnn_l", "cnn_s", "cnn_l", "ds_cnn_s", "ds_cnn_m", "ds_cnn_l",
        "ds_cnn_fmnist", "ds_cnn_cifar10", "mobilenet_v1", "fc2", "resnet8",
    }  # fmt: skip


@pytest.mark.parametrize(
    "name, in_shape, classes",
    [
        ("dnn_s", (25, 10, 1), 12),
        ("cnn_s", (49, 10, 1), 12),
        ("ds_cnn_s", (49, 10, 1), 12),
        ("ds_cnn_l", (49, 10, 1), 12),
        ("ds_cnn_fmnist", (28, 28, 1), 10),
        ("ds_cnn_cifar10", (32, 32, 3), 10),
        ("mobilenet_v1", (96, 96, 3), 2),
        ("fc2", (28, 28, 1), 10),
        ("resnet8", (32, 32, 3), 10),
    ],
)
def test_shapes(name, in_shape, classes):
    m = zoo.build(name)
    assert m.input_shape[1:] == in_shape and m.output_shape == (None, classes)
    assert m.layers[-1].name == "fc" and m.layers[-1].activation is keras.activations.linear


def test_published_sizes():
    assert _trainable(zoo.build("ds_cnn_s")) == 23180  # about 23.2 k (MLPerf Tiny DS-CNN)
    dnn = zoo.build("dnn_s")
    assert [layer.units for layer in dnn.layers if isinstance(layer, keras.layers.Dense)] == [
        144,
        144,
        144,
        12,
    ]
    assert [layer.units for layer in zoo.build("dnn_l").layers[2:5]] == [436, 436, 436]
    assert abs(_trainable(zoo.build("mobilenet_v1")) - 0.21e6) < 0.01e6  # alpha 0.25
    assert zoo.build("mobilenet_v1", alpha=0.5).get_layer("pw13").filters == 512
    assert zoo.build("fc2", hidden=32).get_layer("fc1").units == 32
    names = [layer.name for layer in zoo.build("ds_cnn_s").layers]
    assert {"conv1", "bn_conv1", "dw1", "bn_dw1", "pw1", "bn_pw1", "pool", "fc"} <= set(names)
    assert not zoo.build("ds_cnn_s").get_layer("pw1").use_bias  # followed by BN


def test_options():
    m = zoo.build("ds_cnn_s", num_classes=5, input_shape=(20, 10, 1), softmax=True, dropout=False)
    assert m.output_shape == (None, 5) and m.layers[-1].name == "softmax"
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in m.layers)


def test_unknown_name():
    with pytest.raises(ValueError, match="Unknown architecture. Received: name='resnet'"):
        zoo.build("resnet")
