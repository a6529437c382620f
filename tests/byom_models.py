"""Small Keras models of the kinds users bring (built the usual Keras way, not by reds_tf.zoo), and a
helper that saves one in each format reds_tf reads."""

from __future__ import annotations

from pathlib import Path

from reds_tf._keras import keras

L = keras.layers


def kws_ds_cnn(filters: int = 12) -> keras.Model:
    """A KWS DS-CNN as users write it: Activation('relu'), Dropout, AveragePooling2D, Flatten, softmax."""
    x = inputs = keras.Input((49, 10, 1))
    x = L.Conv2D(filters, (10, 4), strides=2, padding="same", use_bias=False)(x)
    x = L.BatchNormalization()(x)
    x = L.Activation("relu")(x)
    x = L.Dropout(0.2)(x)
    for _ in range(2):
        x = L.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
        x = L.BatchNormalization()(x)
        x = L.Activation("relu")(x)
        x = L.Conv2D(filters, 1, use_bias=False)(x)
        x = L.BatchNormalization()(x)
        x = L.Activation("relu")(x)
    x = L.AveragePooling2D(pool_size=(25, 5))(x)
    x = L.Flatten()(x)
    x = L.Dense(12, activation="softmax")(x)
    return keras.Model(inputs, x, name="kws_ds_cnn")


def dense_autoencoder(width: int = 128, code: int = 8, features: int = 640) -> keras.Model:
    """The MLPerf Tiny anomaly-detection autoencoder: 640-128x4-8-128x4-640, Dense + BN + ReLU."""
    x = inputs = keras.Input((features,))
    for units in [width] * 4 + [code] + [width] * 4:
        x = L.Dense(units)(x)
        x = L.BatchNormalization()(x)
        x = L.Activation("relu")(x)
    return keras.Model(inputs, L.Dense(features)(x), name="autoencoder")


def keras_app_mobilenet(alpha_filters: int = 8, classes: int = 5) -> keras.Model:
    """The layer vocabulary of keras.applications.MobileNet: ZeroPadding2D + valid strided convs,
    ReLU(6.), global pooling then Reshape((1, 1, C)), a 1x1 Conv2D classifier, Reshape((classes,))."""
    x = inputs = keras.Input((16, 16, 3))
    x = L.ZeroPadding2D(((0, 1), (0, 1)))(x)
    x = L.Conv2D(alpha_filters, 3, strides=2, use_bias=False)(x)
    x = L.BatchNormalization()(x)
    x = L.ReLU(6.0)(x)
    x = L.ZeroPadding2D(((0, 1), (0, 1)))(x)
    x = L.DepthwiseConv2D(3, strides=2, use_bias=False)(x)
    x = L.BatchNormalization()(x)
    x = L.ReLU(6.0)(x)
    x = L.Conv2D(2 * alpha_filters, 1, use_bias=False)(x)
    x = L.BatchNormalization()(x)
    x = L.ReLU(6.0)(x)
    x = L.GlobalAveragePooling2D()(x)
    x = L.Reshape((1, 1, 2 * alpha_filters))(x)
    x = L.Dropout(1e-3)(x)
    x = L.Conv2D(classes, 1)(x)
    x = L.Reshape((classes,))(x)
    return keras.Model(inputs, L.Activation("softmax")(x), name="keras_app_mobilenet")


def save_as(model: keras.Model, tmp_path: Path, fmt: str) -> Path:
    """Save ``model`` as ``fmt`` ("keras", "h5" or "savedmodel") under ``tmp_path``; the path."""
    path = tmp_path / (f"{model.name}.{fmt}" if fmt != "savedmodel" else model.name)
    model.save(str(path), save_format={"keras": "keras", "h5": "h5", "savedmodel": "tf"}[fmt])
    return path
