"""NestedConv2D: a Conv2D that computes a width-prefix submodel by slicing its kernel."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._keras import keras, tf
from ._slice import LevelState, active_width, as_list, check_widths, num_levels_of


class NestedConv2D(LevelState, keras.layers.Conv2D):
    """Conv2D (channels_last, groups=1) holding the full kernel; level k uses a prefix.

    Args:
        filters: full number of output channels.
        kernel_size: as ``keras.layers.Conv2D``.
        in_widths: active input channels per level, or None (input not width-controlled).
        out_widths: active output channels per level, or None (fixed).
        **kwargs: as ``keras.layers.Conv2D``.

    The attribute ``level`` (not part of the config; None = full width) selects the level;
    ``call`` convolves with ``kernel[:, :, :w_in, :w_out]``.
    """

    def __init__(
        self,
        filters: int,
        kernel_size: Any,
        in_widths: Sequence[int] | None = None,
        out_widths: Sequence[int] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(filters, kernel_size, **kwargs)
        if self.groups != 1 or self.data_format != "channels_last":
            raise ValueError(
                f"Layer '{self.name}': NestedConv2D supports groups=1 and channels_last only. "
                f"Received: groups={self.groups}, data_format={self.data_format}"
            )
        self.out_widths = check_widths(self.name, "out_widths", out_widths, self.filters)
        self.in_widths = check_widths(self.name, "in_widths", in_widths)
        num_levels_of(self.in_widths, self.out_widths)

    def build(self, input_shape: Any) -> None:
        super().build(input_shape)
        check_widths(self.name, "in_widths", self.in_widths, self.full_in)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    @property
    def full_in(self) -> int:
        return int(self.kernel.shape[2])

    def active_widths(self, level: int | None = None) -> tuple[int, int]:
        """(input channels, output channels) at ``level`` (default: the current level)."""
        lv = self._level if level is None else level
        return (
            active_width(self.name, self.in_widths, lv, self.full_in),
            active_width(self.name, self.out_widths, lv, self.filters),
        )

    def call(self, inputs: Any) -> Any:
        w_in, w_out = self.active_widths()
        outputs = self.convolution_op(inputs, self.full_kernel(self.kernel)[:, :, :w_in, :w_out])
        if self.use_bias:
            outputs = tf.nn.bias_add(outputs, self.bias[:w_out])
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def sliced_weights(self, level: int | None) -> list[np.ndarray]:
        """The weights of the plain Conv2D of this level (kernel, bias)."""
        w_in, w_out = self.active_widths(level) if level is not None else (self.full_in, self.filters)
        out = [self.kernel.numpy()[:, :, :w_in, :w_out]]
        if self.use_bias:
            out.append(self.bias.numpy()[:w_out])
        return out

    def plain_config(self, level: int | None) -> dict[str, Any]:
        """Config of a plain ``keras.layers.Conv2D`` with this level's widths."""
        cfg = super().get_config()
        cfg["filters"] = self.active_widths(level)[1] if level is not None else self.filters
        return cfg

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.update(in_widths=as_list(self.in_widths), out_widths=as_list(self.out_widths))
        return cfg
