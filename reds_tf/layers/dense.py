"""NestedDense: a Dense layer that computes a width-prefix submodel by slicing its kernel."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._keras import keras, tf
from ._slice import LevelState, active_width, as_list, check_widths, num_levels_of


class NestedDense(LevelState, keras.layers.Dense):
    """Dense layer holding the full kernel; level k uses the first ``out_widths[k]`` units.

    Args:
        units: full number of output units.
        in_widths: active input channels per level, or None (input not width-controlled).
        out_widths: active output units per level, or None (fixed, e.g. the classifier).
        in_positions: P when fed by Flatten of an (H, W, C) tensor (P = H*W): kernel row
            ``p*C + c`` belongs to position p and channel c, so an input width w keeps
            rows ``p*C + c`` with ``c < w`` for every p. 1 for a plain vector input.
        **kwargs: as ``keras.layers.Dense``.

    The attribute ``level`` (not part of the config; None = full width) selects the level.
    """

    def __init__(
        self,
        units: int,
        in_widths: Sequence[int] | None = None,
        out_widths: Sequence[int] | None = None,
        in_positions: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(units, **kwargs)
        self.out_widths = check_widths(self.name, "out_widths", out_widths, self.units)
        self.in_widths = check_widths(self.name, "in_widths", in_widths)
        if int(in_positions) < 1:
            raise ValueError(
                f"Layer '{self.name}': in_positions must be >= 1. Received: in_positions={in_positions}"
            )
        self.in_positions = int(in_positions)
        num_levels_of(self.in_widths, self.out_widths)

    def build(self, input_shape: Any) -> None:
        super().build(input_shape)
        in_dim = int(self.kernel.shape[0])
        if in_dim % self.in_positions:
            raise ValueError(
                f"Layer '{self.name}': input size {in_dim} is not a multiple of "
                f"in_positions={self.in_positions}."
            )
        full_in = in_dim // self.in_positions
        check_widths(self.name, "in_widths", self.in_widths, full_in)
        # A narrower level feeds fewer input features; only the rank is fixed.
        self.input_spec = keras.layers.InputSpec(min_ndim=2)

    @property
    def full_in(self) -> int:
        return int(self.kernel.shape[0]) // self.in_positions

    def active_widths(self, level: int | None = None) -> tuple[int, int]:
        """(input channels, output units) at ``level`` (default: the current level)."""
        lv = self._level if level is None else level
        return (
            active_width(self.name, self.in_widths, lv, self.full_in),
            active_width(self.name, self.out_widths, lv, self.units),
        )

    def _slice_kernel(self, kernel: Any, w_in: int, w_out: int, xp: Any = tf) -> Any:
        if w_in == self.full_in:
            return kernel[:, :w_out]
        p = self.in_positions
        k = xp.reshape(kernel, (p, self.full_in, self.units))[:, :w_in, :w_out]
        return xp.reshape(k, (p * w_in, w_out))

    def call(self, inputs: Any) -> Any:
        w_in, w_out = self.active_widths()
        kernel = self._slice_kernel(self.full_kernel(self.kernel), w_in, w_out)
        x = tf.cast(inputs, self.compute_dtype)
        outputs = tf.matmul(x, tf.cast(kernel, self.compute_dtype))
        if self.use_bias:
            outputs = tf.nn.bias_add(outputs, tf.cast(self.bias[:w_out], self.compute_dtype))
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def sliced_weights(self, level: int | None) -> list[np.ndarray]:
        """The weights of the plain Dense of this level (kernel, bias)."""
        w_in, w_out = self.active_widths(level) if level is not None else (self.full_in, self.units)
        out = [self._slice_kernel(self.kernel.numpy(), w_in, w_out, xp=np)]
        if self.use_bias:
            out.append(self.bias.numpy()[:w_out])
        return out

    def plain_config(self, level: int | None) -> dict[str, Any]:
        """Config of a plain ``keras.layers.Dense`` with this level's widths."""
        cfg = super().get_config()
        cfg["units"] = self.active_widths(level)[1] if level is not None else self.units
        return cfg

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.update(
            in_widths=as_list(self.in_widths),
            out_widths=as_list(self.out_widths),
            in_positions=self.in_positions,
        )
        return cfg
