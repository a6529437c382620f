"""A fitted device cost model: Cortex-M4 cycles of every deployed op as a linear function of its shape.

Each kernel kind has a few features, each a product of at most two channel widths and fixed
spatial numbers (so it is a ``BilinearTerm`` over the graph's groups, like the MAC terms):

* ``conv`` (conv2d with a kernel larger than 1x1) and ``pointwise`` (1x1 conv2d):
  ``macs`` (out pixels * kernel taps * in * out channels), ``patch`` (out pixels * taps * in channels:
  gathering the receptive field), ``out`` (output elements: requantisation), ``out_c`` (per output
  channel set-up: weight row sums, multipliers), ``weights`` (taps * in * out channels), ``call``;
* ``depthwise``: ``macs``, ``out``, ``in`` (input elements), ``channels``, ``call``;
* ``dense``: ``macs``, ``out_c``, ``in_c``, ``call``;
* ``global_pool`` (the MEAN kernel): ``in``, ``channels``, ``call``.

Coefficients (cycles per unit of each feature) come from ``fit.py`` and live per target (``dsp``:
the SIMD kernels, ``portable``: the plain C kernels) in ``<target>.json`` next to this module,
with the firmware build they were fitted on and their held-out error. Evaluation is pure Python.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ..graph import WIDTH_FUNCS, BilinearTerm, Graph, Op

FORMAT_VERSION = 1
TARGETS = ("dsp", "portable")
#: kernel kind -> its features: (name, spatial multiplier, function of the input width, of the output
#: width), each a ``WIDTH_FUNCS`` name or None (the factor is absent). Spatial multipliers: ``px`` output
#: pixels, ``taps`` kernel taps, ``in_px`` input pixels, ``edge_px`` output pixels whose window
#: reaches the padding, ``rows`` output rows, ``tail`` output pixels * (taps * fixed input
#: channels mod 4: the SIMD conv's dot-product tail), ``one``. The SIMD kernels work on pairs of output
#: channels (``even``) and blocks of 8 / 4 input channels (``div8``, ``mod8div4``, ``mod4``); the portable
#: kernels on single channels (``w``); the fit gives the other build's terms ~0.
FEATURES: dict[str, tuple[tuple[str, str, str | None, str | None], ...]] = {
    "conv": (
        ("macs", "px_taps", "w", "w"), ("macs_pairs", "px_taps", "w", "even"), ("tail", "tail", None, "even"),
        ("patch", "px_taps", "w", None), ("out", "px", None, "w"), ("out_pairs", "px", None, "even"),
        ("out_c", "one", None, "w"), ("edge", "edge_px", None, "even"), ("rows", "rows", None, None),
        ("gather", "px_taps", None, None), ("out1", "px", None, "is1"), ("pixels", "px", None, None),
        ("edge_px", "edge_px", None, None), ("chunks", "px", None, "chunks32"), ("call", "one", None, None),
    ),
    "pointwise": (
        ("macs", "px", "w", "w"), ("blocks8", "px", "div8", "even"), ("blocks4", "px", "mod8div4", "even"),
        ("tail", "px", "tail_scalar", "even"),
        ("tail3", "px", "tail3simd", "even"), ("tail2", "px", "tail2pair", "even"),
        ("loop8", "px", "ge8", "even"),
        ("small", "px", "small", "even"),
        ("out", "px", None, "w"), ("out_pairs", "px", None, "even"),
        ("prep", "one", "w", "even"), ("out_c", "one", None, "even"), ("scalar", "px", "is1", "w"),
        ("scalar_rows", "rows", "is1", "w"), ("scalar_c", "one", "is1", "w"), ("out1", "px", None, "is1"),
        ("out1_in", "px", "w", "is1"), ("out1_tail", "px", "mod4", "is1"), ("call1", "one", "is1", None),
        ("in1_out1", "px", "is1", "is1"), ("scalar_pairs", "px", "is1", "even"),
        ("scalar_prep", "one", "is1", "even"), ("out1_call", "one", None, "is1"),
        ("out1_rows", "rows", None, "is1"), ("call", "one", None, None),
    ),
    "depthwise": (
        ("macs", "px_taps", "w", None), ("macs_blocks", "px_taps", "div8", None),
        ("macs_mod", "px_taps", "mod8div4", None), ("macs_tail", "px_taps", "mod4", None),
        ("out", "px", "w", None), ("out_tail", "px", "mod4", None), ("out_odd", "px", "mod2", None),
        ("in", "in_px", "w", None), ("edge", "edge_px", "w", None), ("rows", "rows", "w", None),
        ("rows_g8", "rows", "div8", None), ("rows_g4", "rows", "mod8div4", None),
        ("rows_tail", "rows", "mod4", None),
        ("rows_tg", "rows", "nz4", None),
        ("channels", "one", "w", None), ("call", "one", None, None),
    ),
    "dense": (
        ("macs", "in_px", "w", "w"), ("blocks8", "in_px", "div8", "even"),
        ("blocks4", "in_px", "mod8div4", "even"),
        ("tail", "in_px", "mod4", "even"), ("out_c", "one", None, "w"), ("out_pairs", "one", None, "even"),
        ("in_c", "in_px", "w", None), ("scalar", "in_px", "is1", "w"), ("call", "one", None, None),
    ),
    "global_pool": (("in", "in_px", "w", None), ("channels", "one", "w", None), ("call", "one", None, None)),
}  # fmt: skip


def kernel_kind(op: Op) -> str | None:
    """The kernel a deployed op runs on the device, or None for ops that cost no kernel call."""
    if op.kind == "conv2d":
        return "pointwise" if tuple(op.kernel) == (1, 1) else "conv"
    if op.kind == "dense" and op.in_hw[0] * op.in_hw[1] > 1:
        # The dense kernel is fitted on one-pixel inputs (after pooling); a dense layer on a flattened
        # image or feature map extrapolates its per-input terms, even to negative cycles.
        raise ValueError(
            f"Op '{op.name}' (dense on a flattened {op.in_hw[0]}x{op.in_hw[1]}x{op.in_full} input): the "
            "device cost model's dense kernel is fitted on one-pixel inputs only. Fix: plan this model by "
            "MACs, or add such shapes to the dense fitting grid and refit."
        )
    if op.kind in ("depthwise", "dense", "global_pool"):
        return op.kind
    if op.kind in ("pool", "add", "pad"):
        raise ValueError(
            f"Op '{op.name}' ({op.kind}): the device cost model has no fitted kernel for it (it covers "
            "conv, pointwise, depthwise, dense and global pooling). Fix: plan this model by MACs, or add "
            "a bench for the kernel and refit."
        )
    return None


def _spatial(op: Op, name: str) -> int:
    (oh, ow), (ih, iw), (kh, kw) = op.out_hw, op.in_hw, op.kernel
    if name == "tail":
        # The SIMD conv's dot product runs 4 taps at a time; only a fixed input width has a known tail.
        return oh * ow * ((kh * kw * op.in_full) % 4) if op.in_group is None else 0
    if name == "edge_px":
        return oh * ow - _inside(ih, oh, kh) * _inside(iw, ow, kw)
    return {"px": oh * ow, "px_taps": oh * ow * kh * kw, "in_px": ih * iw, "rows": oh, "one": 1}[name]


def _inside(n_in: int, n_out: int, k: int) -> int:
    """Output positions along one axis whose window lies inside the input (SAME padding)."""
    s = max(1, round(n_in / n_out))
    pad = max(((n_out - 1) * s + k - n_in) // 2, 0)
    return sum(1 for o in range(n_out) if o * s - pad >= 0 and o * s - pad + k <= n_in)


def feature_terms(op: Op) -> dict[str, BilinearTerm]:
    """The features of one op as terms over its in/out channel groups (fixed channel counts folded in)."""
    kind = kernel_kind(op)
    if kind is None:
        return {}
    out = {}
    for name, spatial, f_in, f_out in FEATURES[kind]:
        coef, groups, funcs = _spatial(op, spatial), [], []
        # A depthwise / pooling op's output channels are its input channels: one group, one factor.
        for f, g, full in ((f_in, op.in_group, op.in_full), (f_out, op.out_group, op.out_full)):
            if f is None:
                continue
            if g is None:
                coef *= int(WIDTH_FUNCS[f](full))
            else:
                groups.append(g)
                funcs.append(f)
        groups += [None] * (2 - len(groups))
        funcs += ["w"] * (2 - len(funcs))
        out[name] = BilinearTerm(coef, groups[0], groups[1], funcs[0], funcs[1])
    return out


def _value(t: BilinearTerm, widths: Sequence[int]) -> float:
    a = 1 if t.a is None else t.factor("a", int(widths[t.a]))
    b = 1 if t.b is None else t.factor("b", int(widths[t.b]))
    return float(t.coef) * a * b


@dataclass(frozen=True)
class CostModel:
    """Cycles per feature unit for each kernel kind of one target build."""

    target: str
    coefs: dict[str, dict[str, float]]
    meta: dict[str, Any]

    def op_terms(self, op: Op) -> list[BilinearTerm]:
        """Cycles of one op as bilinear terms (float coefficients) over the graph's groups."""
        kind = kernel_kind(op)
        if kind is None:
            return []
        c = self.coefs[kind]
        return [
            BilinearTerm(c[name] * t.coef, t.a, t.b, t.fa, t.fb)
            for name, t in feature_terms(op).items()
            if c[name] * t.coef != 0
        ]

    def terms(self, graph: Graph) -> list[tuple[str, BilinearTerm]]:
        """Cycles of the whole graph per op, plus the per-inference overhead (op name ``invoke``)."""
        out = [(op.name, t) for op in graph.ops for t in self.op_terms(op)]
        out.append(("invoke", BilinearTerm(self.meta.get("invoke_cycles", 0.0), None, None)))
        return out

    def op_cycles(self, graph: Graph, widths: Sequence[int]) -> dict[str, float]:
        """Predicted cycles of every op that runs a kernel."""
        out: dict[str, float] = {}
        for name, t in self.terms(graph):
            out[name] = out.get(name, 0.0) + _value(t, widths)
        return out

    def cycles(self, graph: Graph, widths: Sequence[int]) -> float:
        """Predicted cycles of one inference at ``widths``."""
        return sum(self.op_cycles(graph, widths).values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "target": self.target,
            "coefs": self.coefs,
            "meta": self.meta,
        }


def data_path(target: str) -> Path:
    """Where the fitted model of ``target`` is stored inside the package."""
    return Path(str(resources.files(__package__) / f"{target}.json"))


def load(target: str = "dsp", path: str | Path | None = None) -> CostModel:
    """The fitted cost model of ``target`` (``dsp`` or ``portable``), or one read from ``path``."""
    if target not in TARGETS:
        raise ValueError(f"Unknown device target. Received: target={target!r}. Fix: use one of {TARGETS}.")
    p = Path(path) if path is not None else data_path(target)
    if not p.exists():
        raise FileNotFoundError(
            f"No device cost model at {p}. Fix: `python -m reds_tf.device_cost fit` in a source checkout."
        )
    d = json.loads(p.read_text())
    if d.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{p}: device cost model format {d.get('format_version')!r}, "
            f"this reds_tf reads {FORMAT_VERSION}. "
            "Fix: refit with `python -m reds_tf.device_cost fit`."
        )
    for kind, names in FEATURES.items():
        if set(d["coefs"].get(kind, {})) != {f[0] for f in names}:
            raise ValueError(f"{p}: kernel '{kind}' needs coefficients {names}. Fix: refit.")
    return CostModel(d["target"], d["coefs"], d.get("meta", {}))
