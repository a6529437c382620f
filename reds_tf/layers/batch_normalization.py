"""NestedBatchNormalization: BatchNorm over a channel prefix, optionally with per-level statistics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._keras import keras, tf
from ._slice import LevelState, active_width, as_list, check_widths


class NestedBatchNormalization(LevelState, keras.layers.BatchNormalization):
    """BatchNormalization (axis=-1) whose channels follow its input's width.

    Args:
        widths: active channels per level, or None (not width-controlled).
        stats_per_level: if True, ``moving_mean``/``moving_variance`` have shape (K, C) and
            level k normalises with row k (per-level recalibration, as in slimmable
            networks); ``level=None`` uses the last row. gamma and beta stay shared.
        **kwargs: as ``keras.layers.BatchNormalization`` (renorm, virtual batches and
            ``adjustment`` are not supported).

    Level k uses ``gamma[:w]``, ``beta[:w]`` and the first w moving statistics. In
    training mode it normalises with the batch moments of the active channels and
    updates only the active prefix of the moving statistics (biased batch variance, as
    non-fused Keras BN). ``trainable=False`` means inference mode, as in tf_keras.
    """

    def __init__(
        self,
        widths: Sequence[int] | None = None,
        stats_per_level: bool = False,
        axis: int | list[int] = -1,
        **kwargs: Any,
    ) -> None:
        for bad in ("renorm", "virtual_batch_size", "adjustment"):
            if kwargs.get(bad):
                raise ValueError(
                    f"NestedBatchNormalization does not support {bad}. Received: {bad}={kwargs[bad]}"
                )
        kwargs.pop("fused", None)
        super().__init__(axis=axis, **kwargs)
        self.widths = check_widths(self.name, "widths", widths)
        self.stats_per_level = bool(stats_per_level)
        if self.stats_per_level and self.widths is None:
            raise ValueError(
                f"Layer '{self.name}': stats_per_level=True needs a widths column (one entry per level). "
                "Received: widths=None"
            )

    # One column for input and output: channels are tied to the input's units.
    in_widths = property(lambda self: self.widths)
    out_widths = property(lambda self: self.widths)

    def build(self, input_shape: Any) -> None:
        shape = tf.TensorShape(input_shape)
        rank = shape.rank
        axes = self.axis if isinstance(self.axis, (list, tuple)) else [self.axis]
        if len(axes) != 1 or axes[0] not in (-1, rank - 1):
            raise ValueError(f"Layer '{self.name}': only axis=-1 is supported. Received: axis={self.axis}")
        self.axis = [rank - 1]
        self.fused = False
        c = int(shape[-1])
        check_widths(self.name, "widths", self.widths, c)
        stat_shape = (len(self.widths), c) if self.stats_per_level else (c,)
        self.gamma = (
            self.add_weight(
                name="gamma",
                shape=(c,),
                initializer=self.gamma_initializer,
                regularizer=self.gamma_regularizer,
                constraint=self.gamma_constraint,
                trainable=True,
                experimental_autocast=False,
            )
            if self.scale
            else None
        )
        self.beta = (
            self.add_weight(
                name="beta",
                shape=(c,),
                initializer=self.beta_initializer,
                regularizer=self.beta_regularizer,
                constraint=self.beta_constraint,
                trainable=True,
                experimental_autocast=False,
            )
            if self.center
            else None
        )
        stat = dict(
            shape=stat_shape,
            synchronization=tf.VariableSynchronization.ON_READ,
            trainable=False,
            aggregation=tf.VariableAggregation.MEAN,
            experimental_autocast=False,
        )
        self.moving_mean = self.add_weight(
            name="moving_mean", initializer=self.moving_mean_initializer, **stat
        )
        self.moving_variance = self.add_weight(
            name="moving_variance", initializer=self.moving_variance_initializer, **stat
        )
        # A narrower level feeds fewer channels; only the rank is fixed.
        self.input_spec = keras.layers.InputSpec(ndim=rank)
        self.built = True

    @property
    def full(self) -> int:
        return int(self.moving_mean.shape[-1])

    def active_widths(self, level: int | None = None) -> tuple[int, int]:
        lv = self._level if level is None else level
        w = active_width(self.name, self.widths, lv, self.full)
        return w, w

    def _stat_row(self, level: int | None) -> int | None:
        if not self.stats_per_level:
            return None
        return len(self.widths) - 1 if level is None else level

    def _stat(self, var: Any, row: int | None, w: int) -> Any:
        return var[:w] if row is None else var[row, :w]

    def call(self, inputs: Any, training: Any = None) -> Any:
        if training is None:
            training = keras.backend.learning_phase()
        if not self.trainable:
            training = False  # tf_keras v2 semantics: a frozen BN runs in inference mode.
        w = self.active_widths()[0]
        row = self._stat_row(self._level)
        x = tf.cast(inputs, tf.float32)
        mm, mv = self._stat(self.moving_mean, row, w), self._stat(self.moving_variance, row, w)
        static = training if isinstance(training, (bool, int)) else tf.get_static_value(training)
        if static is not None and not bool(static):
            mean, var = mm, mv
        else:
            axes = list(range(x.shape.rank - 1))
            b_mean, b_var = tf.nn.moments(x, axes)
            rate = 1.0 - self.momentum
            if static is None:  # training is a symbolic tensor: blend instead of branching.
                on = tf.cast(training, tf.float32)
                mean, var = on * b_mean + (1 - on) * mm, on * b_var + (1 - on) * mv
                rate = rate * on
            else:
                mean, var = b_mean, b_var
            self._update(self.moving_mean, row, w, mm - (mm - b_mean) * rate)
            self._update(self.moving_variance, row, w, mv - (mv - b_var) * rate)
        gamma = self.gamma[:w] if self.scale else None
        beta = self.beta[:w] if self.center else None
        out = tf.nn.batch_normalization(x, mean, var, beta, gamma, self.epsilon)
        return tf.cast(out, self.compute_dtype)

    @staticmethod
    def _update(var: Any, row: int | None, w: int, value: Any) -> None:
        # Only the active prefix (of the level's row) changes; inactive channels keep their stats.
        if row is None:
            var[:w].assign(value)
        else:
            var[row, :w].assign(value)

    def sliced_weights(self, level: int | None) -> list[np.ndarray]:
        """Weights of the plain BatchNormalization of this level (gamma, beta, mean, variance)."""
        w = self.active_widths(level)[0] if level is not None else self.full
        row = self._stat_row(level)
        out = [v.numpy()[:w] for v in (self.gamma, self.beta) if v is not None]
        out += [
            np.asarray(self._stat(v, row, w))
            for v in (self.moving_mean.numpy(), self.moving_variance.numpy())
        ]
        return out

    def set_full_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Load the weights of a plain BatchNormalization (statistics copied to every level's row)."""
        ws = [np.asarray(a) for a in weights]
        if self.stats_per_level:
            ws[-2:] = [np.tile(a[None, :], (len(self.widths), 1)) for a in ws[-2:]]
        self.set_weights(ws)

    def plain_config(self, level: int | None) -> dict[str, Any]:
        cfg = super().get_config()
        cfg["axis"] = -1
        return cfg

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.update(widths=as_list(self.widths), stats_per_level=self.stats_per_level)
        return cfg
