"""The state every row-sparse layer shares: per-level counts, the row orders, the level, the mask.

A row-sparse layer holds its full kernel plus ``order`` (non-trainable int32, shape
``(rows, fan_in)``): row r lists its flat column indices by descending importance. Level k keeps the
first ``counts[k]`` of them in every row. The mask is ``rank < n`` with ``rank`` the inverse
permutation of ``order`` (``rank[r, c]`` = position of column c in row r's order), held as a second
non-trainable weight that ``set_order`` writes with the order, so a step builds each mask with one
comparison (an argsort per call was about half the masking time on DS-CNN); a level that keeps whole rows
skips masking. ``level`` is a plain
Python attribute read at trace time (as the nested layers' ``level``), so ``nested.set_level`` and
the REDS trainer switch these layers too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._keras import tf
from ..errors import PlanError
from ..layers import LevelState


def check_counts(layer: str, counts: Sequence[int] | None, fan_in: int | None = None) -> list[int] | None:
    """Validate one layer's count column: at least 1, at most ``fan_in``, non-decreasing."""
    if counts is None:
        return None
    ns = [int(n) for n in counts]
    if not ns:
        raise PlanError(f"Layer '{layer}': counts needs at least one level. Received: counts=[]")
    for k, n in enumerate(ns):
        if n < 1 or (fan_in is not None and n > fan_in):
            raise PlanError(
                f"Layer '{layer}': counts[{k}] must be in [1, {fan_in}] (weights per row). "
                f"Received: counts={ns}"
            )
    if any(a > b for a, b in zip(ns, ns[1:], strict=False)):
        raise PlanError(
            f"Layer '{layer}': counts must be non-decreasing from level 0 (smallest) up. "
            f"Received: counts={ns}"
        )
    return ns


def _identity_order(shape: Any, dtype: Any = None, **_: Any) -> tf.Tensor:
    rows, fan_in = int(shape[0]), int(shape[1])
    return tf.tile(tf.range(fan_in, dtype=tf.int32)[None, :], [rows, 1])


class RowMask(LevelState):
    """Mixin (list it first) for a keras layer with a ``kernel`` whose rows are output units.

    The host class defines ``rows``, ``fan_in`` and ``_to_kernel_layout(mask_rows)``, which turns a
    ``(rows, fan_in)`` mask into the kernel's own layout. The mixin's ``build`` adds the order
    weights after the host's kernel, and its ``get_config`` adds ``counts`` to the host's config.
    """

    counts: list[int] | None = None

    @property
    def num_levels(self) -> int | None:
        return None if self.counts is None else len(self.counts)

    def build(self, input_shape: Any) -> None:
        super().build(input_shape)  # the host keras layer makes the kernel first
        check_counts(self.name, self.counts, self.fan_in)
        for name in ("order", "rank"):  # the identity order is its own inverse
            setattr(
                self,
                name,
                self.add_weight(
                    name=name,
                    shape=(self.rows, self.fan_in),
                    dtype=tf.int32,
                    initializer=_identity_order,
                    trainable=False,
                ),
            )

    def active_count(self, level: int | None = None) -> int:
        """Weights kept per row at ``level`` (default: the current level; None = all)."""
        lv = self._level if level is None else level
        if lv is None or self.counts is None:
            return self.fan_in
        return int(self.counts[lv])

    def set_order(self, order: np.ndarray) -> None:
        """Load the row orders (each row a permutation of ``range(fan_in)``)."""
        order = np.asarray(order)
        if order.shape != (self.rows, self.fan_in):
            raise PlanError(
                f"Layer '{self.name}': order must have shape (rows, fan_in) = {(self.rows, self.fan_in)}. "
                f"Received: shape {order.shape}"
            )
        if not np.array_equal(np.sort(order, axis=1), np.broadcast_to(np.arange(self.fan_in), order.shape)):
            raise PlanError(
                f"Layer '{self.name}': every row of order must be a permutation of range({self.fan_in}). "
                "Fix: build it with np.argsort(-scores, axis=1)."
            )
        self.order.assign(order.astype(np.int32))
        self.rank.assign(np.argsort(order, axis=1).astype(np.int32))

    def row_mask(self, count: int) -> tf.Tensor:
        """``(rows, fan_in)`` float mask keeping the first ``count`` entries of every row's order."""
        return tf.cast(self.rank < count, self.dtype)

    def masked_kernel(self) -> tf.Tensor:
        """The kernel of the current level: ``W * M_k`` (the plain kernel when rows are kept whole)."""
        n = self.active_count()
        if n >= self.fan_in:
            return self.kernel
        return self.kernel * self._to_kernel_layout(self.row_mask(n))

    def level_kernel(self, level: int | None) -> np.ndarray:
        """The masked kernel of ``level`` as a NumPy array (None = the full kernel)."""
        n = self.active_count(level) if level is not None else self.fan_in
        kernel = self.kernel.numpy()
        if n >= self.fan_in:
            return kernel
        return kernel * self._to_kernel_layout(self.row_mask(n)).numpy()

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg["counts"] = None if self.counts is None else [int(n) for n in self.counts]
        return cfg
