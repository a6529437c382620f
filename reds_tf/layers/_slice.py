"""Active widths of a nested layer and the prefix-slicing helpers its ``call`` uses.

A nested layer stores only its column of the WidthPlan (one int per level) and a
Python attribute ``level`` (None = full width). Slicing the first ``w`` units of the
full weights (never masking) keeps shapes static per level, so a submodel costs its
own MACs and a ``tf.function`` traces one graph per level.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..errors import PlanError


def check_widths(
    layer: str, what: str, widths: Sequence[int] | None, full: int | None = None
) -> list[int] | None:
    """Validate one layer's plan column: positive, nested (non-decreasing), at most ``full``."""
    if widths is None:
        return None
    ws = [int(w) for w in widths]
    if not ws:
        raise PlanError(f"Layer '{layer}': {what} needs at least one level. Received: {what}=[]")
    for k, w in enumerate(ws):
        if w < 1 or (full is not None and w > full):
            raise PlanError(
                f"Layer '{layer}': {what}[{k}] must be in [1, {full}]. Received: {what}={ws}. "
                "Fix: use widths between 1 and the layer's full width."
            )
    for k in range(len(ws) - 1):
        if ws[k] > ws[k + 1]:
            raise PlanError(
                f"Layer '{layer}': {what} must be non-decreasing from level 0 (smallest) up. "
                f"Received: {what}={ws}"
            )
    return ws


def active_width(layer: str, widths: Sequence[int] | None, level: int | None, full: int) -> int:
    """Width at ``level``: ``full`` when the layer is not width-controlled or ``level`` is None."""
    if widths is None or level is None:
        return full
    if not 0 <= level < len(widths):
        raise PlanError(
            f"Layer '{layer}' has {len(widths)} levels; level must be in [0, {len(widths) - 1}] or None. "
            f"Received: level={level}"
        )
    return int(widths[level])


def check_level(layer: str, level: int | None, num_levels: int | None) -> int | None:
    """Validate a level index against the number of levels a layer knows (None = any)."""
    if level is None:
        return None
    level = int(level)
    if level < 0 or (num_levels is not None and level >= num_levels):
        hi = "K-1" if num_levels is None else str(num_levels - 1)
        raise PlanError(f"Layer '{layer}': level must be in [0, {hi}] or None. Received: level={level}")
    return level


def num_levels_of(*columns: Sequence[int] | None) -> int | None:
    """Number of levels the non-None columns agree on (None if all are None)."""
    ks = {len(c) for c in columns if c is not None}
    if len(ks) > 1:
        raise PlanError(f"Width columns of one layer have different numbers of levels: {sorted(ks)}")
    return ks.pop() if ks else None


def as_list(widths: Sequence[int] | None) -> list[int] | None:
    """A plain list for get_config (Keras wraps list attributes in trackable wrappers)."""
    return None if widths is None else [int(w) for w in widths]


class LevelState:
    """The ``level``/``num_levels`` attributes every nested layer shares (a mixin; list it first), and the
    training-time ``kernel_quantizer`` hook of the layers with a kernel.

    The host class provides ``name``, ``in_widths`` and ``out_widths``. ``level`` is a plain
    Python attribute, not part of the config (None = full width); setting it validates the
    index against the layer's plan columns.
    """

    _level: int | None = None
    #: training-time hook (not part of the config): ``call`` slices ``kernel_quantizer(full kernel)``
    #: instead of the kernel, so that level k trains through the rounding of the int8 weights it
    #: shares with the full level (``reds_tf.qat``). None = the float kernel.
    kernel_quantizer: Callable[[Any], Any] | None = None

    def full_kernel(self, kernel: Any) -> Any:
        """The full kernel ``call`` slices: quantised by ``kernel_quantizer`` when one is set."""
        return kernel if self.kernel_quantizer is None else self.kernel_quantizer(kernel)

    @property
    def level(self) -> int | None:
        return self._level

    @level.setter
    def level(self, value: int | None) -> None:
        self._level = check_level(self.name, value, self.num_levels)

    @property
    def num_levels(self) -> int | None:
        return num_levels_of(self.in_widths, self.out_widths)
