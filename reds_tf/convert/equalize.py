"""Per-channel range equalisation before int8 conversion (cross-layer equalisation, Nagel et al. 2019).

TFLite quantises every activation tensor with ONE scale, and every weight tensor per output channel.
After joint fine-tuning with frozen BN statistics the channels of a tensor can differ in range by
orders of magnitude, so a small channel gets a handful of int8 steps. Scaling unit ``c`` of a group by
``f_c > 0`` (its producers' kernels and biases, its BatchNorm's ``moving_mean`` and ``beta``, its
depthwise biases) and dividing the consumers' input rows by ``f_c`` leaves the network's function
unchanged whenever everything in between is positively homogeneous (ReLU without a cap, LeakyReLU,
linear, pooling, Flatten, Add, BN with its variance kept). The factor trades the channel's share of the
activation range against its share of each consumer's per-channel weight range:
``f_c = sqrt(w_c / a_c)``, so both end up near ``sqrt(a_c * w_c)``.

Scaling is per unit, so the nested levels stay prefixes of one set of weights: factors are computed
once (from every level's activations) and applied to every level's plain model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._keras import keras
from ..errors import UnsupportedLayerError
from ..topology import analyse

L = keras.layers
_PASS_KINDS = ("batchnorm", "depthwise", "pool", "global_pool", "flatten", "dropout", "pad", "add")


@dataclass
class Equalization:
    """Per-group channel factors and why a group was left alone.

    ``factors``: group name -> one factor per unit of the full width. ``skipped``: group name -> reason
    (a layer in the group that is not positively homogeneous, e.g. ReLU6 or a sigmoid).
    """

    factors: dict[str, np.ndarray] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    #: group names in execution order: levels built separately name their layers differently, so
    #: ``apply_factors`` matches their groups by position
    order: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "groups": {
                g: {"min": float(f.min()), "max": float(f.max()), "median": float(np.median(f))}
                for g, f in self.factors.items()
            },
            "skipped": dict(self.skipped),
        }


def _homogeneous(layer: Any) -> bool:
    """Whether ``layer(f * x) == f * layer(x)`` for every f > 0 (channel-wise)."""
    if isinstance(layer, L.LeakyReLU):
        return True
    if isinstance(layer, L.ReLU):
        return layer.max_value is None and float(layer.threshold) == 0.0
    if isinstance(layer, L.Activation):
        return getattr(layer.activation, "__name__", "") in ("relu", "linear")
    return False


def _fused_activation_ok(layer: Any) -> bool:
    act = getattr(layer, "activation", None)
    return act is None or getattr(act, "__name__", "") in ("relu", "linear")


def _group_layers(model: keras.Model) -> tuple[list[Any], dict[str, list[str]], dict[str, str]]:
    """Unit groups, the layers whose output tensor carries each group's units AND is quantised on its
    own, and groups that cannot scale. Not quantised on their own: a conv's output that only feeds its
    BN (folded by the converter), Flatten/Reshape and Dropout (they pass their input's tensor on)."""
    graph, members, roles = analyse(model)
    readers: dict[str, list[str]] = {}
    for op in graph.ops:
        for src in op.inputs:
            readers.setdefault(src, []).append(op.kind)
    carriers: dict[str, list[str]] = {m.name: [] for m in members}
    bad: dict[str, str] = {}
    for name, role in roles.items():
        g = role.out_group
        if g is None:
            continue
        layer = model.get_layer(name)
        folded = role.kind in ("conv2d", "dense", "depthwise") and readers.get(name) == ["batchnorm"]
        if role.kind not in ("flatten", "dropout") and not folded:
            carriers[g].append(name)
        if role.kind == "activation" and not _homogeneous(layer):
            bad[g] = f"layer '{name}' ({type(layer).__name__}) is not positively homogeneous"
        elif role.kind in ("conv2d", "dense", "depthwise") and not _fused_activation_ok(layer):
            bad[g] = f"layer '{name}' has a fused {layer.activation.__name__} activation"
        elif role.kind not in _PASS_KINDS + ("activation", "conv2d", "dense"):
            bad[g] = f"layer '{name}' of kind {role.kind}"
    return members, carriers, bad


def _spans(model: keras.Model, names: list[str], x: np.ndarray, batch: int = 256) -> dict[str, np.ndarray]:
    """Per-channel span ``max(x, 0) - min(x, 0)`` of each named layer's output over ``x``."""
    probe = keras.Model(model.inputs, [model.get_layer(n).output for n in names])
    lo = {n: None for n in names}
    hi = {n: None for n in names}
    for i in range(0, len(x), batch):
        outs = probe(x[i : i + batch], training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        for n, o in zip(names, outs, strict=True):
            o = np.asarray(o)
            o = o.reshape(-1, o.shape[-1])
            a, b = o.min(axis=0), o.max(axis=0)
            lo[n] = a if lo[n] is None else np.minimum(lo[n], a)
            hi[n] = b if hi[n] is None else np.maximum(hi[n], b)
    return {n: np.maximum(hi[n], 0.0) - np.minimum(lo[n], 0.0) for n in names}


def _weight_share(model: keras.Model, consumers: tuple[tuple[str, int], ...], width: int) -> np.ndarray:
    """Per input unit: its largest share of any consumer output channel's weight range."""
    share = np.zeros(width)
    for name, positions in consumers:
        k = np.abs(np.asarray(model.get_layer(name).kernel))
        m = k.reshape(-1, positions, width, k.shape[-1]).max(axis=(0, 1))  # (in units, out channels)
        share = np.maximum(share, (m / np.maximum(m.max(axis=0, keepdims=True), 1e-12)).max(axis=1))
    return share


def channel_factors(models: list[keras.Model], x: np.ndarray, max_factor: float = 32.0) -> Equalization:
    """Factors for every unit group, from the levels' activations on ``x`` (``models``: plain per-level
    models, smallest first, the last one full width; a single plain model works too)."""
    full = models[-1]
    try:
        members, carriers, bad = _group_layers(full)
    except UnsupportedLayerError as e:  # no unit groups to scale; the converter may still take the model
        return Equalization(skipped={"model": f"no unit groups ({type(e).__name__})"})
    eq = Equalization(skipped=dict(bad), order=[g.name for g in members])
    names = {g: carriers[g] for g in carriers if g not in bad}
    flat = [n for g in names for n in names[g]]
    if not flat:
        return eq
    spans_full = _spans(full, flat, x)
    share = {n: np.zeros(spans_full[n].shape[-1]) for n in flat}
    at = {layer.name: i for i, layer in enumerate(full.layers)}
    for m in models:
        if m is full:
            sp = spans_full
        elif [type(a) for a in m.layers] == [type(b) for b in full.layers]:  # same layers, any names
            local = [m.layers[at[n]].name for n in flat]
            sp = dict(zip(flat, _spans(m, local, x).values(), strict=True))
        else:
            continue
        for n in flat:
            # The full level's range sets the shared scale; a smaller level may reach beyond it.
            s = sp[n] / max(float(spans_full[n].max()), 1e-12)
            share[n][: s.size] = np.maximum(share[n][: s.size], s)
    for g in members:
        if g.name not in names or not names[g.name]:
            continue
        a = np.max([share[n] for n in names[g.name]], axis=0)
        w = _weight_share(full, g.consumers, g.full) if g.consumers else np.ones(g.full)
        f = np.sqrt(np.maximum(w, 1e-12) / np.maximum(a, 1e-12))
        eq.factors[g.name] = np.clip(f, 1.0 / max_factor, max_factor)
    return eq


def apply_factors(model: keras.Model, eq: Equalization) -> None:
    """Rescale ``model``'s weights in place by ``eq`` (any level: factors are cut to its widths)."""
    if not eq.factors:
        return
    members, _, _ = _group_layers(model)
    names = eq.order if len(eq.order) == len(members) else [g.name for g in members]
    for g, name in zip(members, names, strict=True):
        f_full = eq.factors.get(name)
        if f_full is None:
            continue
        for name in g.producers:
            layer = model.get_layer(name)
            ws = layer.get_weights()
            f = f_full[: ws[0].shape[-1]]
            layer.set_weights([ws[0] * f] + [b * f for b in ws[1:]])
        for name in g.tied:
            layer = model.get_layer(name)
            # BN(f x) = f BN(x) with mean and beta scaled and gamma, variance kept; a depthwise
            # kernel acts per channel, so only its bias scales.
            bn = isinstance(layer, L.BatchNormalization)
            scaled = (layer.beta, layer.moving_mean) if bn else (layer.bias,)
            for v in scaled:
                if v is not None:
                    v.assign(v.numpy() * f_full[: v.shape[-1]])
        for name, positions in g.consumers:
            layer = model.get_layer(name)
            ws = layer.get_weights()
            k = ws[0]
            width = k.shape[-2] // positions
            inv = np.tile(1.0 / f_full[:width], positions)
            ws[0] = k * inv.reshape((1,) * (k.ndim - 2) + (-1, 1))
            layer.set_weights(ws)
