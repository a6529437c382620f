"""RowSparseDense: a Dense layer whose every output unit keeps its most important inputs per level."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._keras import keras, tf
from ._row_mask import RowMask, check_counts


class RowSparseDense(RowMask, keras.layers.Dense):
    """Dense layer holding the full kernel; level k keeps ``counts[k]`` inputs of every output unit.

    Args:
        units: number of output units (rows).
        counts: weights kept per row at each level (level 0 smallest, non-decreasing), or None
            (one dense level).
        **kwargs: as ``keras.layers.Dense``.

    Row r is kernel column ``kernel[:, r]``; its order lists input indices. The attribute ``level``
    (not part of the config; None = dense) selects the level; ``call`` multiplies by ``W * M_k``.
    """

    def __init__(self, units: int, counts: Sequence[int] | None = None, **kwargs: Any) -> None:
        super().__init__(units, **kwargs)
        self.counts = check_counts(self.name, counts)

    @property
    def rows(self) -> int:
        return int(self.units)

    @property
    def fan_in(self) -> int:
        return int(self.kernel.shape[0])

    def _to_kernel_layout(self, mask_rows: Any) -> Any:
        return tf.transpose(mask_rows)

    def call(self, inputs: Any) -> Any:
        kernel = tf.cast(self.masked_kernel(), self.compute_dtype)
        x = tf.cast(inputs, self.compute_dtype)
        if x.shape.rank == 2:
            outputs = tf.matmul(x, kernel)
        else:
            outputs = tf.tensordot(x, kernel, [[x.shape.rank - 1], [0]])
        if self.use_bias:
            outputs = tf.nn.bias_add(outputs, tf.cast(self.bias, self.compute_dtype))
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def plain_config(self) -> dict[str, Any]:
        """Config of the plain ``keras.layers.Dense`` with the same shape."""
        return keras.layers.Dense.get_config(self)
