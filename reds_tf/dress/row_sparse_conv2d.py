"""RowSparseConv2D: a Conv2D whose every filter keeps its most important (kh, kw, c_in) taps per level."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._keras import keras, tf
from ._row_mask import RowMask, check_counts


class RowSparseConv2D(RowMask, keras.layers.Conv2D):
    """Conv2D (channels_last, groups=1) holding the full kernel; level k keeps ``counts[k]`` taps per filter.

    Args:
        filters: number of output channels (rows).
        kernel_size: as ``keras.layers.Conv2D``.
        counts: weights kept per filter at each level (level 0 smallest, non-decreasing), or None.
        **kwargs: as ``keras.layers.Conv2D``.

    Row r is filter ``kernel[..., r]`` flattened over (kh, kw, c_in) in row-major order, so column
    ``c`` is ``np.ravel_multi_index((i, j, ci), (kh, kw, c_in))`` (TFLite's OHWI order). 1x1
    pointwise convolutions are the case ``kh = kw = 1``.
    """

    def __init__(
        self, filters: int, kernel_size: Any, counts: Sequence[int] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(filters, kernel_size, **kwargs)
        if self.groups != 1 or self.data_format != "channels_last":
            raise ValueError(
                f"Layer '{self.name}': RowSparseConv2D supports groups=1 and channels_last only. "
                f"Received: groups={self.groups}, data_format={self.data_format}"
            )
        self.counts = check_counts(self.name, counts)

    @property
    def rows(self) -> int:
        return int(self.filters)

    @property
    def fan_in(self) -> int:
        kh, kw, c_in, _ = (int(d) for d in self.kernel.shape)
        return kh * kw * c_in

    def _to_kernel_layout(self, mask_rows: Any) -> Any:
        return tf.reshape(tf.transpose(mask_rows), self.kernel.shape)

    def call(self, inputs: Any) -> Any:
        outputs = self.convolution_op(inputs, self.masked_kernel())
        if self.use_bias:
            outputs = tf.nn.bias_add(outputs, self.bias)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def plain_config(self) -> dict[str, Any]:
        """Config of the plain ``keras.layers.Conv2D`` with the same shape."""
        return keras.layers.Conv2D.get_config(self)
