"""Keras model -> pure ``Graph``: ops in execution order and the unit groups they share.

The only bridge from Keras to the pure cost/solver world. Works on plain and nested
models alike (nested layers subclass the built-ins and report full widths).

Group rule: every Conv2D/Dense whose output does NOT reach a model output through
pass-through layers starts a group named after it (full = filters/units). Depthwise,
BatchNorm, activations, pooling, Flatten and Dropout keep their input's group. The
classifier (a mixing layer feeding an output) and the model input are fixed.

Residual networks: ``Add`` sums tensors unit by unit, so the groups of its inputs are
joined into ONE group (named after its first producer in execution order) whose width
is chosen once for all of them; a join with a fixed tensor (the model input, a
classifier) fixes the whole group. Permuting a joined group permutes every producer's
output units alike, which keeps the sum, and so the network, unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from ._keras import keras
from .errors import UnsupportedLayerError
from .graph import INPUT, PASSTHROUGH_KINDS, Graph, Group, Op

L = keras.layers


@dataclass(frozen=True)
class GroupMembers:
    """Every layer whose weights index one unit group's units.

    Attributes:
        name: group name (= the first producer's layer name).
        index: position in ``Graph.groups`` and in WidthPlan columns.
        full: number of units.
        producers: the Conv2D/Dense layers whose output channels are the units (several when an
            ``Add`` joins their outputs), in execution order.
        tied: BatchNorm and DepthwiseConv2D layers whose channels are the units
            (their parameters are indexed by unit on the channel axis).
        consumers: (layer name, in_positions) of the Conv2D/Dense layers reading the
            units on their input axis; in_positions = H*W for a Dense fed through
            Flatten of an (H, W, C) tensor (row ``p*C + c``), else 1.
    """

    name: str
    index: int
    full: int
    producers: tuple[str, ...]
    tied: tuple[str, ...]
    consumers: tuple[tuple[str, int], ...]

    @property
    def producer(self) -> str:
        """The first producer, whose name the group carries."""
        return self.producers[0]


@dataclass(frozen=True)
class LayerRole:
    """Groups of one layer's input and output channels (None = fixed) and its op kind."""

    kind: str
    in_group: str | None
    out_group: str | None
    in_positions: int = 1


def _channels_last(layer: Any) -> bool:
    return layer.data_format == "channels_last"


def _keeps_channels(layer: Any) -> bool:
    """A Reshape that keeps the channel axis last and whole (to a vector, as Flatten does, or to
    other positions with the same channels) and fixes every other size, so a nested copy can leave
    the channel size to -1."""
    target = tuple(layer.target_shape)
    flat = len(target) == 1
    same = int(layer.output_shape[-1]) == int(layer.input_shape[-1])
    return (flat or same) and -1 not in target[:-1]


class LayerKind(NamedTuple):
    """Keras layer classes of one op kind (``reds_tf.graph.KIND_TABLE``): ``supported(layer)`` says
    whether a given layer's settings are (None = always), ``note`` how the user-facing list says so."""

    classes: tuple[type, ...]
    kind: str
    supported: Callable[[Any], bool] | None = None
    note: str = ""


# The first matching row decides (DepthwiseConv2D before its base class Conv2D). Adding a Keras
# layer is one row here plus, for a new op kind, one entry in graph.KIND_TABLE.
LAYER_KINDS: tuple[LayerKind, ...] = (
    LayerKind(
        (L.DepthwiseConv2D,),
        "depthwise",
        lambda la: la.depth_multiplier == 1 and _channels_last(la),
        "depth_multiplier=1, channels_last",
    ),
    LayerKind(
        (L.Conv2D,),
        "conv2d",
        lambda la: not isinstance(la, L.Conv2DTranspose) and la.groups == 1 and _channels_last(la),
        "groups=1, channels_last",
    ),
    LayerKind((L.Dense,), "dense", note="on a vector"),
    LayerKind((L.BatchNormalization,), "batchnorm", note="axis=-1"),
    LayerKind((L.ReLU, L.LeakyReLU, L.ELU, L.Softmax, L.Activation), "activation"),
    LayerKind((L.Dropout,), "dropout"),
    LayerKind((L.MaxPooling2D, L.AveragePooling2D), "pool"),
    LayerKind((L.GlobalAveragePooling2D, L.GlobalMaxPooling2D), "global_pool"),
    LayerKind((L.Flatten,), "flatten"),
    LayerKind((L.Reshape,), "flatten", _keeps_channels, "channels kept last"),
    LayerKind((L.ZeroPadding2D,), "pad", _channels_last),
    LayerKind((L.Add,), "add", note="of equal shapes"),
)
SUPPORTED = "InputLayer, " + ", ".join(
    cls.__name__ + (f" ({row.note})" if row.note and i == len(row.classes) - 1 else "")
    for row in LAYER_KINDS
    for i, cls in enumerate(row.classes)
)


def is_softmax(layer: Any) -> bool:
    """True for a layer whose output is a softmax (a Softmax layer, or any layer with softmax activation)."""
    return (
        isinstance(layer, L.Softmax)
        or getattr(getattr(layer, "activation", None), "__name__", "") == "softmax"
    )


def layer_kind(layer: Any) -> str | None:
    """Op kind of a supported layer, None for InputLayer; raises for anything else."""
    if isinstance(layer, L.InputLayer):
        return None
    for row in LAYER_KINDS:
        if isinstance(layer, row.classes):
            if row.supported is None or row.supported(layer):
                return row.kind
            break
    cls = type(layer).__name__
    fix = _FIXES.get(cls, "rebuild the model from the supported layers listed above, or remove the layer")
    raise UnsupportedLayerError(
        f"Layer '{layer.name}' of class {cls} is not supported for nested widths "
        f"(config: {_short_config(layer)}). Supported layers: {SUPPORTED}. Fix: {fix}."
    )


# Unsupported layers that have an exact replacement among the supported ones.
_FIXES = {
    "SeparableConv2D": "replace it by DepthwiseConv2D followed by a 1x1 Conv2D (the same computation)",
    "DepthwiseConv2D": "use depth_multiplier=1 and channels_last, or a DepthwiseConv2D + 1x1 Conv2D pair",
    "Conv2D": "use groups=1 and data_format='channels_last'",
    "Conv1D": "reshape the input to (steps, 1, channels) and use Conv2D with kernel (k, 1)",
    "ReLU6": "use ReLU(max_value=6)",
    "Reshape": "keep the channel axis last and unchanged (e.g. Reshape((1, 1, C)) after global pooling) "
    "with explicit sizes elsewhere, or use Flatten",
}


def _short_config(layer: Any) -> str:
    keys = ("groups", "depth_multiplier", "data_format", "axis")
    try:
        cfg = layer.get_config()
    except Exception:  # pragma: no cover - exotic custom layers
        return "?"
    return ", ".join(f"{k}={cfg[k]}" for k in keys if k in cfg) or "defaults"


def ordered_layers(model: keras.Model) -> list[tuple[Any, list[str]]]:
    """(layer, names of its input layers) in topological order; one call per layer."""
    if not getattr(model, "_is_graph_network", False) or not model.inputs:
        raise UnsupportedLayerError(
            f"Model '{model.name}' is a subclassed or unbuilt model. Received: {type(model).__name__}. "
            "Fix: use a built Sequential (with an input shape) or a functional model."
        )
    if len(model.inputs) != 1:
        raise UnsupportedLayerError(
            f"Model '{model.name}' has {len(model.inputs)} inputs; nested widths support one input."
        )
    out = []
    for layer in model.layers:
        nodes = [
            n for i, n in enumerate(layer._inbound_nodes) if f"{layer.name}_ib-{i}" in model._network_nodes
        ]
        if isinstance(layer, keras.Model):
            raise UnsupportedLayerError(
                f"Layer '{layer.name}' is a nested model ({type(layer).__name__}). Supported layers: "
                f"{SUPPORTED}. Fix: flatten the model into one functional model."
            )
        if len(nodes) > 1:
            raise UnsupportedLayerError(
                f"Layer '{layer.name}' ({type(layer).__name__}) is called {len(nodes)} times; shared "
                "layers are not supported. Fix: use one layer per call."
            )
        if isinstance(layer, L.InputLayer):
            continue
        kind = layer_kind(layer)  # the first unsupported layer in execution order raises here
        # Sequential models do not list their InputLayer; name every input tensor INPUT.
        ins = [] if not nodes else [_src_name(lyr) for lyr, *_ in nodes[0].iterate_inbound()]
        if len(ins) > 1 and kind != "add":
            raise UnsupportedLayerError(
                f"Layer '{layer.name}' of class {type(layer).__name__} has {len(ins)} inputs; only "
                f"single-input layers are supported: {SUPPORTED}."
            )
        out.append((layer, ins))
    return out


class _Joins:
    """Union-find over provisional groups; a set joined with a fixed tensor (None) is fixed.

    Every set's root is its earliest provisional group, so a joined group keeps the name and
    position of its first producer.
    """

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.fixed: set[int] = set()

    def new(self) -> int:
        self.parent.append(len(self.parent))
        return self.parent[-1]

    def find(self, g: int) -> int:
        while self.parent[g] != g:
            g = self.parent[g]
        return g

    def union(self, gs: list[int | None]) -> int | None:
        roots = sorted({self.find(g) for g in gs if g is not None})
        if not roots:
            return None
        for r in roots[1:]:
            self.parent[r] = roots[0]
        if None in gs or self.fixed & set(roots):
            self.fixed.add(roots[0])
        return roots[0]


def _src_name(layer: Any) -> str:
    return INPUT if isinstance(layer, L.InputLayer) else layer.name


def _hw(shape: Any) -> tuple[int, int]:
    """Spatial size of a Keras tensor shape (batch first): (H, W) for rank 4, (T, 1) for rank 3."""
    dims = [int(d) for d in shape[1:-1]]
    return (dims + [1, 1])[:2] if len(dims) <= 2 else (dims[0], dims[1])


def analyse(
    model: keras.Model, name: str | None = None
) -> tuple[Graph, list[GroupMembers], dict[str, LayerRole]]:
    """Graph, group membership and per-layer roles of a plain or nested Keras model."""
    ordered = ordered_layers(model)
    kinds = {layer.name: layer_kind(layer) for layer, _ in ordered}
    consumers: dict[str, list[str]] = {n: [] for n in kinds}
    consumers[INPUT] = []
    for layer, ins in ordered:
        for src in ins:
            consumers[src].append(layer.name)

    # Mixing layers that reach an output through pass-through layers are fixed (classifiers).
    fixed: set[str] = set()
    stack = [_src_name(t._keras_history.layer) for t in model.outputs]
    seen: set[str] = set()
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        if n == INPUT:
            continue
        if kinds[n] in ("conv2d", "dense"):
            fixed.add(n)
        elif kinds[n] in PASSTHROUGH_KINDS + ("add",):
            stack += [s for layer, ins in ordered if layer.name == n for s in ins]

    groups: list[Group] = []  # provisional: one per unfixed producer, before Add joins them
    joins = _Joins()
    ops: list[Op] = []
    slots: dict[str, tuple[str, int | None, int | None, int]] = {}  # kind, groups in/out, in_positions
    tensor: dict[str, tuple[int | None, int, tuple[int, int], int]] = {}  # group, channels, hw, rank
    in_shape = model.inputs[0].shape
    tensor[INPUT] = (None, int(in_shape[-1]), _hw(in_shape), len(in_shape))
    tied: dict[int, list[str]] = {}
    cons: dict[int, list[tuple[str, int]]] = {}
    for layer, ins in ordered:
        kind = kinds[layer.name]
        src = ins[0] if ins else INPUT
        g_in, c_in, hw_in, rank_in = tensor[src]
        out_shape = layer.output_shape
        out_hw = _hw(out_shape)
        kernel, bias, in_pos = (1, 1), False, 1
        folds_bn = len(consumers[layer.name]) == 1 and kinds[consumers[layer.name][0]] == "batchnorm"
        if kind in ("conv2d", "dense"):
            if kind == "dense" and rank_in != 2:
                raise UnsupportedLayerError(
                    f"Layer '{layer.name}' (Dense) reads a rank-{rank_in} tensor; only vectors are "
                    f"supported. Fix: put Flatten or GlobalAveragePooling2D before it. Supported: {SUPPORTED}"
                )
            full_out = int(layer.filters if kind == "conv2d" else layer.units)
            if kind == "conv2d":
                kernel = tuple(int(k) for k in layer.kernel_size)
            else:
                in_pos = hw_in[0] * hw_in[1]
                out_hw = (1, 1)
            g_out = None
            if layer.name not in fixed:
                g_out = joins.new()
                groups.append(Group(layer.name, full_out))
                tied[g_out], cons[g_out] = [], []
            if g_in is not None:
                cons[g_in].append((layer.name, in_pos))
            bias = bool(layer.use_bias) or folds_bn
            c_out = full_out
        elif kind == "add":
            srcs = [tensor[s] for s in ins]
            if len({(c, tuple(hw), rank) for _, c, hw, rank in srcs}) > 1:
                raise UnsupportedLayerError(
                    f"Layer '{layer.name}' (Add) sums tensors of different shapes "
                    f"{[tuple(layer.input_shape[i][1:]) for i in range(len(ins))]}; only equal shapes are "
                    "supported (no broadcasting). Fix: give the shortcut a 1x1 Conv2D with the other "
                    "branch's filters and strides."
                )
            g_out, c_out = joins.union([g for g, *_ in srcs]), c_in
        else:
            if kind == "batchnorm":
                axis = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
                if len(axis) != 1 or axis[0] not in (-1, rank_in - 1):
                    raise UnsupportedLayerError(
                        f"Layer '{layer.name}' (BatchNormalization) normalises axis={list(axis)}; only the "
                        f"channel axis -1 is supported. Supported: {SUPPORTED}"
                    )
            if kind == "depthwise":
                kernel = tuple(int(k) for k in layer.kernel_size)
                bias = bool(layer.use_bias) or folds_bn
            if kind == "pool":
                kernel = tuple(int(k) for k in layer.pool_size)
            if kind in ("depthwise", "batchnorm") and g_in is not None:
                tied[g_in].append(layer.name)
            if kind == "flatten":
                out_hw = hw_in  # Flatten keeps H*W*C elements; the next Dense sees in_hw = (H, W)
            g_out, c_out = g_in, c_in
        ops.append(
            Op(
                name=layer.name,
                kind=kind,
                inputs=tuple(ins) or (src,),
                in_group=g_in,
                out_group=g_out,
                in_full=c_in,
                out_full=c_out,
                in_hw=hw_in,
                out_hw=out_hw,
                kernel=kernel,
                bias=bias,
            )
        )
        slots[layer.name] = (kind, g_in, g_out, in_pos)
        tensor[layer.name] = (g_out, c_out, out_hw, len(out_shape))

    # Final groups: one per set of joined provisional groups that is not fixed, in first-producer order.
    final: dict[int | None, int | None] = {None: None}
    sets: list[list[int]] = []
    for g in range(len(groups)):
        root = joins.find(g)
        if root in joins.fixed:
            final[g] = None
        elif root == g:
            final[g] = len(sets)
            sets.append([g])
        else:
            final[g] = final[root]
            sets[final[root]].append(g)
    members = [
        GroupMembers(
            groups[gs[0]].name,
            i,
            groups[gs[0]].full,
            tuple(groups[g].name for g in gs),
            tuple(t for g in gs for t in tied[g]),
            tuple(c for g in gs for c in cons[g]),
        )
        for i, gs in enumerate(sets)
    ]
    graph = Graph(
        name=name or model.name,
        groups=tuple(groups[gs[0]] for gs in sets),
        ops=tuple(replace(op, in_group=final[op.in_group], out_group=final[op.out_group]) for op in ops),
        input_hw=tensor[INPUT][2],
        input_channels=tensor[INPUT][1],
        meta={"model": model.name},
    )
    gname = lambda g: None if final[g] is None else members[final[g]].name  # noqa: E731
    roles = {n: LayerRole(k, gname(gi), gname(go), pos) for n, (k, gi, go, pos) in slots.items()}
    return graph, members, roles


def graph_of(model: keras.Model, name: str | None = None) -> Graph:
    """Pure ``Graph`` of a plain or nested Keras model (full widths)."""
    return analyse(model, name)[0]


def unit_groups(model: keras.Model) -> list[GroupMembers]:
    """Per unit group: producers, tied BN/depthwise layers and consumers (in group order)."""
    return analyse(model)[1]


def layer_roles(model: keras.Model) -> dict[str, LayerRole]:
    """Per supported (non-input) layer: op kind and the group names of its input/output channels."""
    return analyse(model)[2]
