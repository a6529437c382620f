"""NestedDepthwiseConv2D: a depthwise conv whose channels follow its input's width."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._keras import keras, tf
from ._slice import LevelState, active_width, as_list, check_widths


class NestedDepthwiseConv2D(LevelState, keras.layers.DepthwiseConv2D):
    """DepthwiseConv2D (depth_multiplier=1, channels_last) on a channel prefix.

    Depthwise channels are tied to the input's units, so one column ``widths`` gives both
    the input and output width per level (None = not width-controlled). ``in_widths`` and
    ``out_widths`` are read-only aliases of it, for code that treats all layers alike.
    """

    def __init__(self, kernel_size: Any, widths: Sequence[int] | None = None, **kwargs: Any) -> None:
        super().__init__(kernel_size, **kwargs)
        if self.depth_multiplier != 1 or self.data_format != "channels_last":
            raise ValueError(
                f"Layer '{self.name}': NestedDepthwiseConv2D supports depth_multiplier=1 and channels_last "
                f"only. Received: depth_multiplier={self.depth_multiplier}, data_format={self.data_format}"
            )
        self.widths = check_widths(self.name, "widths", widths)

    # One column for input and output: channels are tied to the input's units.
    in_widths = property(lambda self: self.widths)
    out_widths = property(lambda self: self.widths)

    def build(self, input_shape: Any) -> None:
        super().build(input_shape)
        check_widths(self.name, "widths", self.widths, self.full)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    @property
    def full(self) -> int:
        return int(self.depthwise_kernel.shape[2])

    def active_widths(self, level: int | None = None) -> tuple[int, int]:
        lv = self._level if level is None else level
        w = active_width(self.name, self.widths, lv, self.full)
        return w, w

    def call(self, inputs: Any) -> Any:
        w = self.active_widths()[0]
        outputs = tf.nn.depthwise_conv2d(
            inputs,
            self.full_kernel(self.depthwise_kernel)[:, :, :w, :],
            strides=(1,) + tuple(self.strides) + (1,),
            padding=self.padding.upper(),
            dilations=self.dilation_rate,
            data_format="NHWC",
        )
        if self.use_bias:
            outputs = tf.nn.bias_add(outputs, self.bias[:w])
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def sliced_weights(self, level: int | None) -> list[np.ndarray]:
        w = self.active_widths(level)[0] if level is not None else self.full
        out = [self.depthwise_kernel.numpy()[:, :, :w, :]]
        if self.use_bias:
            out.append(self.bias.numpy()[:w])
        return out

    def plain_config(self, level: int | None) -> dict[str, Any]:
        return super().get_config()

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg["widths"] = as_list(self.widths)
        return cfg
