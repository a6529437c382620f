"""Nested models: convert a plain model, switch levels, extract plain submodels, save/load.

``make_nested`` clones a plain (or nested) functional/Sequential model, replacing
Conv2D/Dense/DepthwiseConv2D/BatchNormalization by their nested versions with the
plan's columns and copying the weights. The result is an ordinary tf_keras model; its
active submodel is chosen by ``set_level`` (or ``level_scope``), which only sets the
Python attribute ``level`` of every nested layer. Because ``call`` reads ``level`` at
trace time, a ``tf.function`` that loops over levels in Python traces one static-shape
graph per level; a ``tf.function`` traced earlier keeps the level it was traced with.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ._keras import keras
from .errors import NotARedsModelError, PlanError
from .keras_file import load_keras, save_keras
from .layers import (
    NestedBatchNormalization,
    NestedConv2D,
    NestedDense,
    NestedDepthwiseConv2D,
    custom_objects,
    is_nested,
    is_switched,
)
from .plan import WidthPlan
from .topology import analyse

L = keras.layers
_PLAIN = {
    NestedDense: L.Dense,
    NestedConv2D: L.Conv2D,
    NestedDepthwiseConv2D: L.DepthwiseConv2D,
    NestedBatchNormalization: L.BatchNormalization,
}


# Op kinds whose weights are indexed by units -> (nested class, its width-column arguments from the
# layer's role, the plan's column lookup and stats_per_level). Every other layer is cloned as it is.
_NESTED: dict[str, tuple[type, Callable[[Any, Callable, bool], dict[str, Any]]]] = {
    "conv2d": (NestedConv2D, lambda r, col, _: dict(in_widths=col(r.in_group), out_widths=col(r.out_group))),
    "dense": (
        NestedDense,
        lambda r, col, _: dict(
            in_widths=col(r.in_group), out_widths=col(r.out_group), in_positions=r.in_positions
        ),
    ),
    "depthwise": (NestedDepthwiseConv2D, lambda r, col, _: dict(widths=col(r.in_group))),
    "batchnorm": (
        NestedBatchNormalization,
        lambda r, col, per_level: dict(
            widths=col(r.in_group), stats_per_level=per_level and r.in_group is not None
        ),
    ),
}


def nested_layers(model: keras.Model) -> list[Any]:
    """The nested layers of a model, in layer order."""
    return [layer for layer in model.layers if is_nested(layer)]


def switched_layers(model: keras.Model) -> list[Any]:
    """The layers whose ``level`` attribute selects the submodel (nested and other ``LevelState`` layers)."""
    return [layer for layer in model.layers if is_switched(layer)]


def _plain_config(layer: Any) -> dict[str, Any]:
    return layer.plain_config(None) if is_nested(layer) else layer.get_config()


def _full_weights(layer: Any) -> list[Any]:
    return layer.sliced_weights(None) if is_nested(layer) else layer.get_weights()


def _check_plan(plan: WidthPlan, groups: tuple[str, ...], full: tuple[int, ...], model: str) -> None:
    if tuple(plan.groups) != groups or tuple(plan.full) != full:
        raise PlanError(
            f"Plan does not match model '{model}'. Plan groups "
            f"{list(plan.groups)}, full: {list(plan.full)}; "
            f"model groups: {list(groups)}, full: {list(full)}. Fix: solve the plan for this model "
            "(reds_tf.topology.graph_of(model))."
        )


def make_nested(
    model: keras.Model, plan: WidthPlan | None = None, stats_per_level: bool = False
) -> keras.Model:
    """A nested copy of ``model`` (weights copied) whose levels are the plan's levels.

    Args:
        model: a built plain or nested functional/Sequential tf_keras model of supported
            layers (``reds_tf.topology.SUPPORTED``); raises ``UnsupportedLayerError`` naming
            the first unsupported layer.
        plan: widths per level; None = one full-width level.
        stats_per_level: give every width-controlled BatchNorm one row of moving
            statistics per level (initialised from the model's statistics).
    """
    graph, _, roles = analyse(model)
    if plan is None:
        plan = WidthPlan.full_width(graph.group_names, graph.full_widths)
    _check_plan(plan, graph.group_names, graph.full_widths, model.name)

    def col(g: str | None) -> list[int] | None:
        return None if g is None else list(plan.column(g))

    def clone(layer: Any) -> Any:
        role = roles.get(layer.name)
        cfg = _plain_config(layer)
        if isinstance(layer, L.Reshape):  # its channel size follows the level's width
            cfg["target_shape"] = (*tuple(cfg["target_shape"])[:-1], -1)
        if role is None or role.kind not in _NESTED:
            return type(layer).from_config(cfg)
        cls, columns = _NESTED[role.kind]
        return cls(**columns(role, col, stats_per_level), **cfg)

    new = keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        target = new.get_layer(layer.name)
        if not layer.weights:
            continue
        if isinstance(target, NestedBatchNormalization):
            target.set_full_weights(_full_weights(layer))
        else:
            target.set_weights(_full_weights(layer))
    return new


def _set_columns(layer: Any, in_col: list[int] | None, out_col: list[int] | None) -> None:
    if isinstance(layer, (NestedDepthwiseConv2D, NestedBatchNormalization)):
        if isinstance(layer, NestedBatchNormalization) and layer.stats_per_level:
            rows = int(layer.moving_mean.shape[0])
            if in_col is None or len(in_col) != rows:
                raise PlanError(
                    f"Layer '{layer.name}' keeps BatchNorm statistics for {rows} levels; the plan has "
                    f"{None if in_col is None else len(in_col)}. Fix: make_nested(model, plan, "
                    "stats_per_level=True) with the new plan, or use a plan with the same number of levels."
                )
        layer.widths = in_col
    else:
        layer.in_widths, layer.out_widths = in_col, out_col
    layer.level = None


def set_plan(model: keras.Model, plan: WidthPlan) -> None:
    """Write the plan's columns into the nested layers (group names and full widths must match)."""
    graph, _, roles = analyse(model)
    _check_plan(plan, graph.group_names, graph.full_widths, model.name)
    layers = nested_layers(model)
    if not layers:
        raise NotARedsModelError(f"Model '{model.name}' has no nested layers. Fix: make_nested(model, plan).")
    for layer in layers:
        role = roles[layer.name]
        in_col = None if role.in_group is None else list(plan.column(role.in_group))
        out_col = None if role.out_group is None else list(plan.column(role.out_group))
        _set_columns(layer, in_col, out_col)
    _clear_functions(model)


def num_levels(model: keras.Model) -> int:
    """Number of levels of a nested (or other level-switched) model (1 when no layer is controlled)."""
    layers = switched_layers(model)
    if not layers:
        raise NotARedsModelError(
            f"Model '{model.name}' has no nested layers, so it has no levels. Fix: make_nested(model, plan)."
        )
    ks = {layer.num_levels for layer in layers if layer.num_levels is not None}
    if len(ks) > 1:
        raise PlanError(f"Nested layers of '{model.name}' disagree on the number of levels: {sorted(ks)}")
    return ks.pop() if ks else 1


def plan_of(model: keras.Model) -> WidthPlan:
    """The WidthPlan stored in a nested model's layers (rebuilt from their columns)."""
    graph, members, _ = analyse(model)
    k = num_levels(model)
    cols = []
    for m in members:
        producer = model.get_layer(m.producer)
        col = getattr(producer, "out_widths", None)
        if col is None:
            raise NotARedsModelError(
                f"Layer '{m.producer}' of model '{model.name}' carries no width column. "
                "Fix: make_nested(model, plan) or set_plan(model, plan)."
            )
        cols.append(list(col))
    widths = tuple(tuple(c[i] for c in cols) for i in range(k))
    return WidthPlan(graph.group_names, graph.full_widths, widths)


def _clear_functions(model: keras.Model) -> None:
    # Keras caches traced predict/test/train functions; they would keep the old level.
    model.predict_function = None
    model.test_function = None
    model.train_function = None


def get_level(model: keras.Model) -> int | None:
    """The level of the first level-switched layer (None = full width)."""
    layers = switched_layers(model)
    return layers[0].level if layers else None


def set_level(model: keras.Model, level: int | None) -> None:
    """Select submodel ``level`` (0 = smallest; None = full width) on every nested layer."""
    k = num_levels(model)
    if level is not None and not 0 <= int(level) < k:
        raise PlanError(
            f"Model '{model.name}' has {k} levels; level must be in [0, {k - 1}] or None. Received: {level}"
        )
    for layer in switched_layers(model):
        layer.level = level
    _clear_functions(model)


@contextmanager
def level_scope(model: keras.Model, level: int | None) -> Iterator[keras.Model]:
    """``with level_scope(model, k):`` runs level k inside, then restores the previous level."""
    previous = get_level(model)
    set_level(model, level)
    try:
        yield model
    finally:
        set_level(model, previous)


def extract_level(model: keras.Model, level: int) -> keras.Model:
    """A standalone PLAIN tf_keras model of level ``level`` with the sliced weights."""
    k = num_levels(model)
    if not 0 <= int(level) < k:
        raise PlanError(
            f"Model '{model.name}' has {k} levels; level must be in [0, {k - 1}]. Received: {level}"
        )

    def clone(layer: Any) -> Any:
        if is_nested(layer):
            return _PLAIN[type(layer)].from_config(layer.plain_config(level))
        return type(layer).from_config(layer.get_config())

    plain = keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        if not layer.weights:
            continue
        weights = layer.sliced_weights(level) if is_nested(layer) else layer.get_weights()
        plain.get_layer(layer.name).set_weights(weights)
    return keras.Model(plain.inputs, plain.outputs, name=f"{model.name}_level{level}")


def save_model(model: keras.Model, path: str | Path) -> None:
    """Save a nested model as ``.keras`` (atomically); weights and WidthPlan columns included."""
    save_keras(model, path, plan_of)  # plan_of: refuse to save something load_model would reject


def load_model(path: str | Path, compile: bool = False) -> keras.Model:
    """Load a nested model saved by ``save_model``; raises NotARedsModelError otherwise."""
    model = load_keras(path, custom_objects(), "reds model", "reds_tf.nested.save_model", compile)
    if not isinstance(model, keras.Model) or not nested_layers(model):
        raise NotARedsModelError(
            f"{str(path)!r} is a plain Keras model without nested layers, not a reds model. "
            "Fix: convert it with reds_tf.nested.make_nested(model, plan) first."
        )
    try:
        plan_of(model)
    except (PlanError, NotARedsModelError) as e:
        raise NotARedsModelError(
            f"{str(path)!r} holds nested layers without a consistent WidthPlan: {e}"
        ) from e
    return model
