"""Reference architectures of the REDS paper as PLAIN tf_keras models.

``build(name)`` returns an ordinary functional model (standard layers only) that
``reds_tf.nested.make_nested`` turns into the nested form. Layer specs follow
reds-method.md; where it gives none (CNN-L, DS-CNN-M) they follow Hello Edge
(Zhang et al. 2017, ARM ML-KWS-for-MCU). Convolutions followed by BatchNorm carry no
bias (it would be folded into BN's beta anyway), as in the MLPerf Tiny reference.

ResNet-8 follows the MLPerf Tiny image-classification reference.

Every model ends in a Dense classifier named ``fc`` that outputs LOGITS; pass
``softmax=True`` to append a softmax activation (named ``softmax``). Train with
``from_logits=True`` losses for the default.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any

from .errors import ModelFileError


class _Deferred:
    """tf_keras (or one of its submodules), imported on first attribute access: ``names()`` and
    ``check_options()`` must answer before TensorFlow is imported (a recipe is checked in < 2 s)."""

    def __init__(self, *path: str) -> None:
        self._path = path

    def __getattr__(self, name: str) -> Any:
        from ._keras import keras

        return getattr(functools.reduce(getattr, self._path, keras), name)


keras = _Deferred()
L = _Deferred("layers")

KWS_SHAPE = (49, 10, 1)
KWS_CLASSES = 12


def _act(name: str, leaky_relu: float | None = None) -> Any:
    """ReLU, or LeakyReLU(alpha) when ``leaky_relu`` is given (the paper's vision DS-CNN uses 0.3)."""
    if leaky_relu is None:
        return L.ReLU(name=f"relu_{name}")
    return L.LeakyReLU(alpha=float(leaky_relu), name=f"lrelu_{name}")


def _conv_bn_relu(
    x: Any,
    name: str,
    filters: int,
    kernel: Any,
    strides: Any = 1,
    padding: str = "same",
    leaky_relu: float | None = None,
) -> Any:
    x = L.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=False, name=name)(x)
    x = L.BatchNormalization(name=f"bn_{name}")(x)
    return _act(name, leaky_relu)(x)


def _ds_block(x: Any, i: int, filters: int, strides: Any = 1, leaky_relu: float | None = None) -> Any:
    """Depthwise 3x3 + BN + ReLU, pointwise 1x1 + BN + ReLU (LeakyReLU with ``leaky_relu``)."""
    x = L.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False, name=f"dw{i}")(x)
    x = L.BatchNormalization(name=f"bn_dw{i}")(x)
    x = _act(f"dw{i}", leaky_relu)(x)
    return _conv_bn_relu(x, f"pw{i}", filters, 1, leaky_relu=leaky_relu)


def _head(x: Any, inputs: Any, num_classes: int, softmax: bool, name: str) -> keras.Model:
    x = L.Dense(num_classes, name="fc")(x)
    if softmax:
        x = L.Activation("softmax", name="softmax")(x)
    return keras.Model(inputs, x, name=name)


def dnn(
    hidden: int,
    num_classes: int = KWS_CLASSES,
    input_shape: tuple = (25, 10, 1),
    softmax: bool = False,
    name: str = "dnn",
) -> keras.Model:
    """Hello Edge DNN: Flatten(25x10 MFCC = 250) -> 3 x FC(hidden, ReLU) -> FC(classes)."""
    inputs = keras.Input(input_shape, name="input")
    x = L.Flatten(name="flatten")(inputs)
    for i in range(1, 4):
        x = L.Dense(hidden, activation="relu", name=f"fc{i}")(x)
    return _head(x, inputs, num_classes, softmax, name)


def cnn(
    convs: Sequence[tuple[int, tuple[int, int]]],
    linear: int,
    dense: int,
    num_classes: int = KWS_CLASSES,
    input_shape: tuple = KWS_SHAPE,
    softmax: bool = False,
    name: str = "cnn",
) -> keras.Model:
    """Hello Edge CNN: 2 x [Conv 10x4 valid + BN + ReLU], FC linear, FC + BN + ReLU, FC(classes)."""
    inputs = keras.Input(input_shape, name="input")
    x = inputs
    for i, (filters, strides) in enumerate(convs, start=1):
        x = _conv_bn_relu(x, f"conv{i}", filters, (10, 4), strides, padding="valid")
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(linear, name="fc_linear")(x)
    x = L.Dense(dense, use_bias=False, name="fc_dense")(x)
    x = L.BatchNormalization(name="bn_fc_dense")(x)
    x = L.ReLU(name="relu_fc_dense")(x)
    return _head(x, inputs, num_classes, softmax, name)


def ds_cnn(
    filters: int,
    blocks: int,
    first_kernel: tuple[int, int] = (10, 4),
    first_strides: tuple[int, int] = (2, 2),
    block_strides: Sequence[Any] | None = None,
    num_classes: int = KWS_CLASSES,
    input_shape: tuple = KWS_SHAPE,
    dropout: bool = True,
    softmax: bool = False,
    name: str = "ds_cnn",
    pool: Sequence[int] | None = None,
    leaky_relu: float | None = None,
) -> keras.Model:
    """DS-CNN: Conv + BN + ReLU, ``blocks`` x [DW 3x3 + BN + ReLU, PW + BN + ReLU], GAP, FC.

    ``pool=(h, w)``: AveragePooling2D((h, w)) with stride 1 and Flatten instead of global average
    pooling (the paper's vision DS-CNN: on Fashion-MNIST the stride-2 first conv leaves 14x14, and
    AvgPool((13, 5)) gives 2x10x64 = 1,280 features for the FC). ``leaky_relu=alpha``: LeakyReLU(alpha)
    for every ReLU (the paper's: 0.3).
    """
    _check_ds_cnn_options(pool, leaky_relu)
    inputs = keras.Input(input_shape, name="input")
    x = _conv_bn_relu(inputs, "conv1", filters, first_kernel, first_strides, leaky_relu=leaky_relu)
    if dropout:
        x = L.Dropout(0.2, name="dropout1")(x)
    strides = list(block_strides) if block_strides is not None else [1] * blocks
    for i in range(1, blocks + 1):
        x = _ds_block(x, i, filters, strides[i - 1], leaky_relu)
    if dropout:
        x = L.Dropout(0.4, name="dropout2")(x)
    if pool is None:
        x = L.GlobalAveragePooling2D(name="pool")(x)
    else:
        h, w = (int(d) for d in x.shape[1:3])
        if pool[0] > h or pool[1] > w:
            raise ModelFileError(
                f"DS-CNN pool {list(pool)} is larger than the {h}x{w} feature map. "
                f"Fix: use a pool of at most [{h}, {w}] or leave pool out (global average pooling)."
            )
        x = L.AveragePooling2D(pool_size=tuple(pool), strides=1, name="pool")(x)
        x = L.Flatten(name="flatten")(x)
    return _head(x, inputs, num_classes, softmax, name)


def _check_ds_cnn_options(pool: Any, leaky_relu: Any) -> None:
    """Refuse a malformed ``pool`` / ``leaky_relu`` option with the value and the fix."""
    if pool is not None and (
        not isinstance(pool, (list, tuple))
        or len(pool) != 2
        or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in pool)
    ):
        raise ModelFileError(
            f"DS-CNN option pool must be two positive integers [height, width]. Received: pool={pool!r}. "
            "Fix: e.g. pool: [13, 5] (the paper's), or leave it out for global average pooling."
        )
    if leaky_relu is not None and (
        isinstance(leaky_relu, bool) or not isinstance(leaky_relu, (int, float)) or not 0 < leaky_relu < 1
    ):
        raise ModelFileError(
            f"DS-CNN option leaky_relu must be a slope in (0, 1). Received: leaky_relu={leaky_relu!r}. "
            "Fix: e.g. leaky_relu: 0.3 (the paper's), or leave it out for ReLU."
        )


MOBILENET_FILTERS = (64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024)
MOBILENET_STRIDES = (1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1)


def mobilenet_v1(
    alpha: float = 0.25, num_classes: int = 2, input_shape: tuple = (96, 96, 3), softmax: bool = False
) -> keras.Model:
    """MobileNetV1 (MLPerf Tiny VWW): conv 32a s2, 13 DW/PW blocks 64a..1024a, GAP, FC."""
    if alpha <= 0:
        raise ValueError(f"mobilenet_v1 needs alpha > 0. Received: alpha={alpha}")
    inputs = keras.Input(input_shape, name="input")
    x = _conv_bn_relu(inputs, "conv1", max(1, int(32 * alpha)), 3, 2)
    for i, (f, s) in enumerate(zip(MOBILENET_FILTERS, MOBILENET_STRIDES, strict=True), start=1):
        x = _ds_block(x, i, max(1, int(f * alpha)), s)
    x = L.GlobalAveragePooling2D(name="pool")(x)
    return _head(x, inputs, num_classes, softmax, f"mobilenet_v1_{alpha:g}")


def fc2(
    hidden: int = 128, num_classes: int = 10, input_shape: tuple = (28, 28, 1), softmax: bool = False
) -> keras.Model:
    """Two-layer fully-connected net (MCU switching demo): Flatten -> FC(hidden, ReLU) -> FC."""
    inputs = keras.Input(input_shape, name="input")
    x = L.Flatten(name="flatten")(inputs)
    x = L.Dense(hidden, activation="relu", name="fc1")(x)
    return _head(x, inputs, num_classes, softmax, "fc2")


def resnet8(
    num_classes: int = 10,
    input_shape: tuple = (32, 32, 3),
    filters: Sequence[int] = (16, 32, 64),
    softmax: bool = False,
    name: str = "resnet8",
) -> keras.Model:
    """MLPerf Tiny image-classification ResNet-8 (12.5 M MACs on CIFAR-10).

    Conv 3x3 + BN + ReLU, then one residual stack per entry of ``filters``: two 3x3 convs (+ BN; the
    first strided 2 from the second stack on) added to the stack's input, through a 1x1 conv
    shortcut where the shape changes, then ReLU; average pool over the map, FC.
    """
    inputs = keras.Input(input_shape, name="input")
    x = _conv_bn_relu(inputs, "conv1", filters[0], 3)
    for i, f in enumerate(filters, start=1):
        strides = 1 if i == 1 else 2
        y = _conv_bn_relu(x, f"s{i}_conv1", f, 3, strides)
        y = L.Conv2D(f, 3, padding="same", use_bias=False, name=f"s{i}_conv2")(y)
        y = L.BatchNormalization(name=f"bn_s{i}_conv2")(y)
        if strides != 1 or f != x.shape[-1]:
            x = L.Conv2D(f, 1, strides=strides, padding="same", name=f"s{i}_shortcut")(x)
        x = L.Add(name=f"s{i}_add")([x, y])
        x = L.ReLU(name=f"s{i}_relu")(x)
    x = L.AveragePooling2D(pool_size=tuple(int(d) for d in x.shape[1:3]), name="pool")(x)
    x = L.Flatten(name="flatten")(x)
    return _head(x, inputs, num_classes, softmax, name)


# DS-CNN vision variant (reds-method.md): conv 64 3x3 s2, 4 DS blocks of 64, pool, FC 10.
_DS_CNN_VISION = dict(filters=64, blocks=4, first_kernel=(3, 3), first_strides=(2, 2), num_classes=10)


def _kws(fn: Callable[..., keras.Model], **fixed: Any) -> Callable[..., keras.Model]:
    return functools.partial(fn, **fixed)


_BUILDERS: dict[str, Callable[..., keras.Model]] = {
    "dnn_s": _kws(dnn, hidden=144, name="dnn_s"),
    "dnn_m": _kws(dnn, hidden=256, name="dnn_m"),
    "dnn_l": _kws(dnn, hidden=436, name="dnn_l"),
    "cnn_s": _kws(cnn, convs=[(28, (1, 1)), (30, (2, 1))], linear=16, dense=128, name="cnn_s"),
    "cnn_l": _kws(cnn, convs=[(60, (1, 1)), (76, (2, 1))], linear=58, dense=128, name="cnn_l"),
    "ds_cnn_s": _kws(ds_cnn, filters=64, blocks=4, first_strides=(2, 2), name="ds_cnn_s"),
    "ds_cnn_m": _kws(
        ds_cnn, filters=172, blocks=4, first_strides=(2, 1), block_strides=[2, 1, 1, 1], name="ds_cnn_m"
    ),
    "ds_cnn_l": _kws(
        ds_cnn, filters=276, blocks=5, first_strides=(2, 1), block_strides=[2, 1, 1, 1, 1], name="ds_cnn_l"
    ),
    "ds_cnn_fmnist": _kws(ds_cnn, **_DS_CNN_VISION, input_shape=(28, 28, 1), name="ds_cnn_fmnist"),
    "ds_cnn_cifar10": _kws(ds_cnn, **_DS_CNN_VISION, input_shape=(32, 32, 3), name="ds_cnn_cifar10"),
    "mobilenet_v1": mobilenet_v1,
    "fc2": fc2,
    "resnet8": resnet8,
}


def names() -> list[str]:
    """Names ``build`` accepts."""
    return list(_BUILDERS)


def check_options(name: str, options: dict[str, Any]) -> None:
    """Raise ``ModelFileError`` if ``options`` holds a key the builder of ``name`` does not take."""
    params = inspect.signature(_BUILDERS[name]).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    known = sorted(k for k in params if k not in ("num_classes", "input_shape"))
    unknown = sorted(k for k in options if k not in known)
    if unknown:
        raise ModelFileError(
            f"Unknown model_options for {name!r}. Received: {unknown}. Fix: use any of {known} "
            "(num_classes and input_shape come from the dataset)."
        )
    if getattr(_BUILDERS[name], "func", None) is ds_cnn:
        _check_ds_cnn_options(options.get("pool"), options.get("leaky_relu"))


def build(
    name: str, num_classes: int | None = None, input_shape: tuple | None = None, **kwargs: Any
) -> keras.Model:
    """Build a reference architecture as a plain tf_keras functional model.

    Args:
        name: one of ``names()``.
        num_classes: classifier outputs (default: the architecture's dataset).
        input_shape: (H, W, C) input (default: the architecture's dataset).
        **kwargs: builder options, e.g. ``alpha`` (mobilenet_v1), ``hidden`` (fc2), ``filters`` (resnet8),
            ``softmax`` (all), ``dropout`` (DS-CNN).
    """
    if name not in _BUILDERS:
        raise ValueError(f"Unknown architecture. Received: name={name!r}. Fix: use one of {names()}")
    if num_classes is not None:
        kwargs["num_classes"] = int(num_classes)
    if input_shape is not None:
        kwargs["input_shape"] = tuple(input_shape)
    return _BUILDERS[name](**kwargs)
