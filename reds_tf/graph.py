"""A pure description of a network for the cost model and the solver (no TensorFlow).

A ``Graph`` is a list of ops in execution order. Every op reads tensors produced by
earlier ops (or the model input, named ``INPUT``) and produces one tensor. Channel
counts are either fixed or controlled by a unit ``Group``: the set of units whose
width is chosen together (a producer's output channels plus everything tied to them:
its BatchNorm, the depthwise layer that follows, activations, pooling, Flatten).

Costs are expressed as terms over group widths so the solver can build its model from
the same numbers the cost model reports:

* ``BilinearTerm(coef, a, b)`` contributes ``coef * w[a] * w[b]``, with ``None`` for a
  fixed factor (already folded into ``coef``). MACs, parameters and weight bytes are
  sums of bilinear terms.
* ``LinearTerm(coef, g)`` contributes ``coef * w[g]`` (``coef`` alone when ``g`` is None).
  Activation memory is linear in the widths.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

INPUT = "input"


@dataclass(frozen=True)
class Kind:
    """What the cost model needs to know about one op kind.

    ``role``: "mixing" (output channels start a new group or are fixed), "passthrough" (keeps its
    input's group), "alias" (a passthrough that vanishes or fuses when deployed: BN folds into the
    conv, activations fuse, dropout is removed; its output is its input's deployed tensor) or
    "join" (sums equal-shaped inputs, whose groups are one). ``kernel``: the kernel's weights per
    (input unit, output unit) pair and which sides are unit groups ("in"/"out"; None = absent).
    ``macs_per_position``: MACs = kernel weights x output positions (a convolution) rather than
    once (Dense). ``params_per_unit``: further trainable parameters per output unit (BN gamma/beta).
    ``bias``: a per-output-channel bias is deployed when ``Op.bias``.
    """

    role: str
    kernel: Callable[[Op], tuple[int, str | None, str | None]] | None = None
    macs_per_position: bool = False
    params_per_unit: int = 0
    bias: bool = False


def _spatial_kernel(op: Op) -> int:
    return op.kernel[0] * op.kernel[1]


# The one table of op kinds: adding a kind to the cost model is one entry here.
KIND_TABLE: dict[str, Kind] = {
    "conv2d": Kind("mixing", lambda op: (_spatial_kernel(op), "in", "out"), True, bias=True),
    "dense": Kind("mixing", lambda op: (op.in_hw[0] * op.in_hw[1], "in", "out"), bias=True),
    "depthwise": Kind("passthrough", lambda op: (_spatial_kernel(op), "in", None), True, bias=True),
    "batchnorm": Kind("alias", params_per_unit=2),
    "activation": Kind("alias"),
    "dropout": Kind("alias"),
    "pool": Kind("passthrough"),
    "global_pool": Kind("passthrough"),
    "flatten": Kind("passthrough"),  # Flatten, and a Reshape that keeps the channels last
    "pad": Kind("passthrough"),
    "add": Kind("join"),
}
KINDS = tuple(KIND_TABLE)
MIXING_KINDS = tuple(k for k, v in KIND_TABLE.items() if v.role == "mixing")
# Ops that keep their input's channel group.
PASSTHROUGH_KINDS = tuple(k for k, v in KIND_TABLE.items() if v.role in ("passthrough", "alias"))
ALIAS_KINDS = tuple(k for k, v in KIND_TABLE.items() if v.role == "alias")


@dataclass(frozen=True)
class Group:
    """Units whose width is chosen together; named after the layer that produces them."""

    name: str
    full: int
    min_width: int = 1


@dataclass(frozen=True)
class Op:
    """One layer of the network.

    ``in_group``/``out_group`` index ``Graph.groups`` or are None (fixed channel count
    ``in_full``/``out_full``). ``in_hw``/``out_hw`` are the spatial sizes of the input and
    output tensors; a Dense op fed by Flatten keeps the pre-flatten ``in_hw``, so its input
    feature count is ``in_hw[0] * in_hw[1] * channels``. ``bias`` is True when the deployed
    op carries a per-output-channel bias (its own, or one folded from a BatchNorm).
    """

    name: str
    kind: str
    inputs: tuple[str, ...]
    in_group: int | None
    out_group: int | None
    in_full: int
    out_full: int
    in_hw: tuple[int, int] = (1, 1)
    out_hw: tuple[int, int] = (1, 1)
    kernel: tuple[int, int] = (1, 1)
    bias: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Unknown op kind. Received: kind={self.kind!r}; expected one of {KINDS}")
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "in_hw", tuple(self.in_hw))
        object.__setattr__(self, "out_hw", tuple(self.out_hw))
        object.__setattr__(self, "kernel", tuple(self.kernel))


#: Functions of one width a cost term may use instead of the width itself (the device cost model's
#: kernels work on channel pairs and blocks of 4 or 8). Integer arithmetic, so they work on ints and
#: numpy integer arrays alike; each maps a width grid to exact values the solver can use.
WIDTH_FUNCS: dict[str, Any] = {
    "w": lambda v: v,
    "one": lambda v: v * 0 + 1,
    "even": lambda v: (v + 1) // 2 * 2,  # channels processed in pairs (an odd last one repeats)
    "div8": lambda v: v // 8,
    "mod8div4": lambda v: v % 8 // 4,
    "mod4": lambda v: v % 4,
    # the SIMD pointwise tile: an 8-channel asm loop (entered when v >= 8), then 4, then the tail when a
    # word before it exists (v >= 4): 3 channels as one SIMD step, 2 as one packed pair, 1 scalar; below 4
    # channels every one is a scalar step (and the tile runs in C)
    "ge8": lambda v: (v >= 8) * 1,
    "tail3simd": lambda v: ((v % 4 == 3) * (v >= 4)) * 1,
    "tail2pair": lambda v: ((v % 4 == 2) * (v >= 4)) * 1,
    "tail_scalar": lambda v: v % 4 - (v >= 4) * (3 * (v % 4 == 3) + 2 * (v % 4 == 2)),
    "small": lambda v: ((v >= 2) * (v <= 3)) * 1,
    "chunks32": lambda v: (v + 31) // 32,  # the 9-tap first conv's output channels per constants table
    "mod2": lambda v: v % 2,
    "nz4": lambda v: (v % 4 != 0) * 1,  # a last group of fewer than 4 channels (the depthwise gathers 4)
    "is1": lambda v: (v == 1) * 1,  # a single input channel takes the kernels' scalar path
}


@dataclass(frozen=True)
class BilinearTerm:
    """``coef * fa(w[a]) * fb(w[b])``; ``fa``/``fb`` name ``WIDTH_FUNCS`` (the width itself by default)."""

    coef: int
    a: int | None
    b: int | None
    fa: str = "w"
    fb: str = "w"

    def factor(self, side: str, v: Any) -> Any:
        """``fa(v)`` (side ``a``) or ``fb(v)`` (side ``b``)."""
        return WIDTH_FUNCS[self.fa if side == "a" else self.fb](v)


@dataclass(frozen=True)
class LinearTerm:
    coef: int
    g: int | None


@dataclass(frozen=True)
class Graph:
    """Groups and ops of a network, plus the model input's shape."""

    name: str
    groups: tuple[Group, ...]
    ops: tuple[Op, ...]
    input_hw: tuple[int, int]
    input_channels: int
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", tuple(self.groups))
        object.__setattr__(self, "ops", tuple(self.ops))
        object.__setattr__(self, "input_hw", tuple(self.input_hw))
        seen = {INPUT}
        for op in self.ops:
            for src in op.inputs:
                if src not in seen:
                    raise ValueError(f"Op '{op.name}' reads '{src}' before it is produced.")
            for g in (op.in_group, op.out_group):
                if g is not None and not 0 <= g < len(self.groups):
                    raise ValueError(f"Op '{op.name}' names group {g}; the graph has {len(self.groups)}.")
            seen.add(op.name)

    # -- widths ---------------------------------------------------------------------------
    @property
    def group_names(self) -> tuple[str, ...]:
        return tuple(g.name for g in self.groups)

    @property
    def full_widths(self) -> tuple[int, ...]:
        return tuple(g.full for g in self.groups)

    def op(self, name: str) -> Op:
        for op in self.ops:
            if op.name == name:
                return op
        raise KeyError(f"No op named '{name}' in graph '{self.name}'.")

    # -- cost terms -----------------------------------------------------------------------
    def _kernel_terms(self, per_weight: int, macs: bool = False) -> list[tuple[str, BilinearTerm]]:
        """``per_weight`` x the kernel weights of every op with a kernel (x output positions for MACs)."""
        out = []
        for op in self.ops:
            kind = KIND_TABLE[op.kind]
            if kind.kernel is None:
                continue
            coef, a, b = kind.kernel(op)
            if macs and kind.macs_per_position:
                coef *= op.out_hw[0] * op.out_hw[1]
            out.append((op.name, _bilinear(per_weight * coef, op, a, b)))
        return out

    def mac_terms(self) -> list[tuple[str, BilinearTerm]]:
        """Per op, MACs as ``coef * w[a] * w[b]`` (one term per op that computes)."""
        return self._kernel_terms(1, macs=True)

    def param_terms(self) -> list[tuple[str, BilinearTerm]]:
        """Trainable parameters: kernels, biases and BatchNorm gamma/beta.

        A bias that exists only because a following BatchNorm folds into it (``op.bias``
        with a BatchNorm reading the op) is not counted: before folding it is the BN's
        beta, which is counted with the BN. This matches Keras' trainable-weight count
        for the usual conv(use_bias=False) + BN pattern.
        """
        bn_fed = {op.inputs[0] for op in self.ops if op.kind == "batchnorm"}
        out = self._kernel_terms(1)
        for op in self.ops:
            kind = KIND_TABLE[op.kind]
            if kind.bias and op.bias and op.name not in bn_fed:
                out.append((op.name, _bilinear(1, op, None, "out")))
            if kind.params_per_unit:
                out.append((op.name, _bilinear(kind.params_per_unit, op, None, "out")))
        return out

    def weight_byte_terms(self, weight_bytes: int = 1, bias_bytes: int = 4) -> list[tuple[str, BilinearTerm]]:
        """Deployed weight storage: BN folded away, int8 kernels and int32 biases by default."""
        out = self._kernel_terms(weight_bytes)
        out += [
            (op.name, _bilinear(bias_bytes, op, None, "out"))
            for op in self.ops
            if KIND_TABLE[op.kind].bias and op.bias
        ]
        return out

    def tensor_terms(self, bytes_per_element: int = 1) -> dict[str, LinearTerm]:
        """Size of every deployed tensor (the model input and each non-alias op's output)."""
        hw = self.input_hw[0] * self.input_hw[1]
        sizes = {INPUT: LinearTerm(bytes_per_element * hw * self.input_channels, None)}
        for op in self.ops:
            if op.kind in ALIAS_KINDS:
                continue
            ohw = op.out_hw[0] * op.out_hw[1]
            if op.out_group is None:
                sizes[op.name] = LinearTerm(bytes_per_element * ohw * op.out_full, None)
            else:
                sizes[op.name] = LinearTerm(bytes_per_element * ohw, op.out_group)
        return sizes

    def deployed_name(self, tensor: str) -> str:
        """The deployed tensor a (possibly fused) op's output really is."""
        while tensor != INPUT:
            op = self.op(tensor)
            if op.kind not in ALIAS_KINDS:
                break
            tensor = op.inputs[0]
        return tensor

    def memory_terms(self, bytes_per_element: int = 1) -> list[tuple[str, list[LinearTerm]]]:
        """Per deployed op, the tensors live while it runs, as linear terms.

        A tensor is live from the op that produces it to its last consumer, as in TFLite's
        arena planner; while an op runs, its inputs, its output and every tensor still
        needed later occupy memory.
        """
        sizes = self.tensor_terms(bytes_per_element)
        deployed = [op for op in self.ops if op.kind not in ALIAS_KINDS]
        reads = {op.name: {self.deployed_name(s) for s in op.inputs} for op in deployed}
        last_use: dict[str, int] = {}
        for i, op in enumerate(deployed):
            for t in reads[op.name]:
                last_use[t] = i
        out = []
        for i, op in enumerate(deployed):
            live = set(reads[op.name]) | {op.name}
            producers = [INPUT] + [o.name for o in deployed[:i]]
            live |= {t for t in producers if last_use.get(t, -1) > i}
            out.append((op.name, [sizes[t] for t in sorted(live)]))
        return out

    # -- JSON -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "input_hw": list(self.input_hw),
            "input_channels": self.input_channels,
            "groups": [asdict(g) for g in self.groups],
            "ops": [asdict(op) for op in self.ops],
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Graph:
        return cls(
            name=d["name"],
            groups=tuple(Group(**g) for g in d["groups"]),
            ops=tuple(Op(**op) for op in d["ops"]),
            input_hw=tuple(d["input_hw"]),
            input_channels=d["input_channels"],
            meta=d.get("meta", {}),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_json(cls, text: str) -> Graph:
        return cls.from_dict(json.loads(text))


def _bilinear(coef: int, op: Op, a_side: str | None, b_side: str | None) -> BilinearTerm:
    """Fold fixed channel counts into ``coef``; keep group indices as factors."""
    factors = []
    for side in (a_side, b_side):
        if side is None:
            continue
        g = op.in_group if side == "in" else op.out_group
        full = op.in_full if side == "in" else op.out_full
        if g is None:
            coef *= full
        else:
            factors.append(g)
    factors += [None] * (2 - len(factors))
    return BilinearTerm(coef, factors[0], factors[1])
