"""Measure the runtime's kernels in the emulated Cortex-M4 and fit the cost model's coefficients.

Needs a source checkout (``firmware/`` and ``benchmarks/mcu_cycles.py``: arm-none-eabi-gcc, unicorn)
and no TensorFlow. Each kernel kind is run over a grid of shapes (every channel width class mod 4,
narrow to full) and fitted by non-negative least squares on relative error (each shape weighs by
1 / its cycles, so small layers are fitted as well as big ones); then it is run on random held-out
shapes and the fit error reported. Cycles are ``CortexM4Timing``'s estimate (benchmarks/mcu_cycles.py).
"""

from __future__ import annotations

import importlib
import itertools
import json
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..costs import eval_bilinear
from ..graph import Graph, Op
from ..runstore import atomic_write_text
from .model import FEATURES, FORMAT_VERSION, TARGETS, CostModel, data_path, feature_terms, kernel_kind

ROOT = Path(__file__).resolve().parents[2]
#: target -> (optimisation, portable C kernels); -O2 is the build the benchmarks' targets use
BUILDS = {"dsp": ("-O2", False), "portable": ("-O2", True)}


def _mcu():
    """benchmarks/mcu_cycles.py: the emulator and the firmware build (source checkouts only)."""
    if not (ROOT / "firmware" / "Makefile").exists() or not (ROOT / "benchmarks" / "mcu_cycles.py").exists():
        raise FileNotFoundError(
            f"Measuring the device needs a source checkout with firmware/ and benchmarks/ "
            f"(looked in {ROOT}). "
            "Fix: run from a git clone of reds_tf."
        )
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module("benchmarks.mcu_cycles")


@dataclass(frozen=True)
class Shape:
    """One kernel call: the op (full widths) and the widths it runs at (in, out channels)."""

    op: Op
    cin: int
    cout: int

    @property
    def widths(self) -> list[int]:
        return [self.cin, self.cout]

    def features(self) -> dict[str, float]:
        return {name: float(eval_bilinear(t, self.widths)) for name, t in feature_terms(self.op).items()}


def _same(n: int, k: int, s: int) -> tuple[int, int]:
    out = (n + s - 1) // s
    return out, max(((out - 1) * s + k - n) // 2, 0)


def make_shape(kind: str, hw: tuple[int, int], kernel: tuple[int, int], stride: int,
               cin: int, cout: int, cin_full: int, cout_full: int) -> Shape:  # fmt: skip
    """A kernel call as an ``Op`` of a graph whose groups 0 / 1 are the input / output channels."""
    (oh, _), (ow, _) = _same(hw[0], kernel[0], stride), _same(hw[1], kernel[1], stride)
    graph_kind = {"conv": "conv2d", "pointwise": "conv2d"}.get(kind, kind)
    # The kxk conv kernels are fitted on fixed input channels (a first layer's image channels): as in
    # a graph, the input then belongs to no group.
    in_g = None if kind == "conv" else 0
    out_g = 0 if kind in ("depthwise", "global_pool") else 1
    if kind == "global_pool":
        oh = ow = 1
    if kind == "dense":
        hw, oh, ow = (1, 1), 1, 1
    op = Op(
        f"{kind}",
        graph_kind,
        ("input",),
        in_g,
        out_g,
        cin_full,
        cout_full,
        tuple(hw),
        (oh, ow),
        tuple(kernel),
    )
    return Shape(op, cin, cin if out_g == 0 else cout)


def measure(m4, shape: Shape, seed: int = 0) -> int:
    """Estimated cycles of one kernel call in the emulator (``benchmarks.mcu_cycles.M4``)."""
    op, cin, cout = shape.op, shape.cin, shape.cout
    kind = kernel_kind(op)
    (ih, iw), (oh, ow), (kh, kw) = op.in_hw, op.out_hw, op.kernel
    rng = np.random.default_rng(seed)

    def rand(n: int) -> bytes:
        return rng.integers(-128, 128, max(n, 1), dtype=np.int8).tobytes()

    m4.reset_heap()
    if kind in ("conv", "pointwise", "depthwise"):
        stride = max(1, round(ih / oh))
        pad_h, pad_w = _same(ih, kh, stride)[1], _same(iw, kw, stride)[1]
        if kind == "depthwise":
            w = m4.alloc(rand(kh * kw * op.in_full))
        else:
            w = m4.alloc(rand(op.out_full * kh * kw * op.in_full))
        x, out = m4.alloc(rand(ih * iw * cin)), m4.alloc(oh * ow * cout + 8)
        geo = (ih, iw, cin, cout, kh, kw, stride, pad_h, pad_w, oh, ow, op.in_full)
        args = (w, x, out, m4.alloc(np.array(geo, np.int32).tobytes()))
        fn = "bench_dw" if kind == "depthwise" else "bench_conv"
    elif kind == "dense":
        w = m4.alloc(rand(op.out_full * op.in_full))
        args = (w, m4.alloc(rand(cin)), m4.alloc(cout + 8), cin, cout, op.in_full)
        fn = "bench_fc"
    else:
        args = (m4.alloc(rand(ih * iw * cin)), m4.alloc(cin + 8), ih, iw, cin)
        fn = "bench_mean"
    status, _ = m4.call(fn, *args)
    if status != 0:
        raise RuntimeError(f"{fn} returned status {status} for {op} at widths {shape.widths}")
    return int(m4.cycles)


#: spatial settings measured per kernel kind: (input hw, kernel, stride, fixed input channels or None)
SETTINGS: dict[str, list[tuple[tuple[int, int], tuple[int, int], int, int | None]]] = {
    "conv": [((28, 28), (3, 3), 2, 1), ((32, 32), (3, 3), 2, 3), ((49, 10), (10, 4), 2, 1),
             ((96, 96), (3, 3), 2, 3)],
    "pointwise": [((14, 14), (1, 1), 1, None), ((25, 5), (1, 1), 1, None), ((7, 7), (1, 1), 1, None)],
    "depthwise": [((14, 14), (3, 3), 1, None), ((25, 5), (3, 3), 1, None), ((12, 12), (3, 3), 2, None)],
    "dense": [((1, 1), (1, 1), 1, None)],
    "global_pool": [((14, 14), (1, 1), 1, None), ((25, 5), (1, 1), 1, None)],
}  # fmt: skip
FULL = 64


def grid_shapes(kind: str) -> list[Shape]:
    """The fitting grid: widths covering every residue mod 4, narrow to full."""
    ws = [1, 2, 3, 4, 5, 7, 8, 13, 16, 19, 24, 30, 32, 41, 48, 55, 62, 64]
    out = []
    for hw, k, s, fixed_in in SETTINGS[kind]:
        if kind in ("depthwise", "global_pool"):
            out += [make_shape(kind, hw, k, s, c, c, FULL, FULL) for c in ws]
            continue
        # pointwise: every residue mod 8 beyond the first block too (its SIMD tails differ by residue), and
        # 2 and 3 input channels (a tile in C)
        extra = [2, 9, 11, 13, 17, 19, 21, 23, 33] if kind == "pointwise" else []
        cins = [fixed_in] if fixed_in else ws[::2] + extra + [64]
        couts = ws
        full_in = fixed_in or FULL
        out += [make_shape(kind, hw, k, s, a, b, full_in, FULL) for a, b in itertools.product(cins, couts)]
    return out


def random_shapes(kind: str, n: int, seed: int) -> list[Shape]:
    """Held-out shapes: random widths (and the grid's spatial settings)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        hw, k, s, fixed_in = SETTINGS[kind][int(rng.integers(len(SETTINGS[kind])))]
        # A quarter of the widths at the edges the knapsack often picks (1, 2, 3, full).
        a, b = (int(rng.choice([1, 2, 3, FULL])) if rng.random() < 0.25 else int(rng.integers(1, FULL + 1))
                for _ in range(2))  # fmt: skip
        out.append(make_shape(kind, hw, k, s, fixed_in or a, b, fixed_in or FULL, FULL))
    return out


def fit_kind(kind: str, shapes: list[Shape], cycles: list[int]) -> dict[str, float]:
    """Least squares on relative error (each shape weighs 1 / its cycles, so small layers count too).

    Coefficients may be negative: the features overlap on purpose (e.g. the SIMD pair terms and
    the scalar-path corrections for a single input channel), only their sum is a cost. The fitted
    cost is not monotone in every width, and neither is the kernel's (3 input channels run a
    3-step scalar tail, 4 one SIMD step); the solver re-checks every plan against the model.
    """
    names = [f[0] for f in FEATURES[kind]]
    X = np.array([[s.features()[f] for f in names] for s in shapes], dtype=np.float64)
    y = np.asarray(cycles, dtype=np.float64)
    A = X / y[:, None]
    scale = np.abs(A).max(axis=0)
    scale[scale == 0] = 1.0  # a feature the grid never exercises gets coefficient 0
    # rcond drops the directions the grid cannot tell apart (features that are constant per spatial
    # setting, such as a fixed-input conv's gather and pixel terms): the minimum-norm solution there.
    coef = np.linalg.lstsq(A / scale, np.ones_like(y), rcond=1e-9)[0]
    if np.any(X @ (coef / scale) <= 0):
        raise ValueError(
            f"The {kind} fit predicts a non-positive cost on its own grid: refit with more shapes."
        )
    return {f: float(c / s) for f, c, s in zip(names, coef, scale, strict=True)}


def op_shape(op: Op, widths: Sequence[int]) -> Shape:
    """The kernel call one graph op makes at ``widths`` (its groups renumbered 0 = input, 1 = output)."""
    cin = op.in_full if op.in_group is None else int(widths[op.in_group])
    cout = op.out_full if op.out_group is None else int(widths[op.out_group])
    same = op.in_group is not None and op.in_group == op.out_group
    local = replace(
        op,
        in_group=None if op.in_group is None else 0,
        out_group=None if op.out_group is None else (0 if same else 1),
    )
    return Shape(local, cin, cin if same else cout)


def measure_level(m4, graph: Graph, widths: Sequence[int]) -> dict[str, int]:
    """Emulated cycles of every kernel a graph runs at ``widths``, per op."""
    return {
        op.name: measure(m4, op_shape(op, widths), i) for i, op in enumerate(graph.ops) if kernel_kind(op)
    }


def rel_errors(model: CostModel, shapes: Iterable[Shape], cycles: Iterable[int]) -> np.ndarray:
    """Relative error (prediction / measured - 1) per shape."""
    out = []
    for s, c in zip(shapes, cycles, strict=True):
        pred = sum(float(model.coefs[kernel_kind(s.op)][f]) * v for f, v in s.features().items())
        out.append(pred / c - 1.0)
    return np.asarray(out)


def build_emulator(target: str, build_dir: Path):
    """Build the firmware for ``target`` and load it into the emulator."""
    mc = _mcu()
    opt, portable = BUILDS[target]
    return mc.M4(mc.build(build_dir / target, opt, portable))


def fit(target: str, build_dir: Path, n_heldout: int = 40, seed: int = 1) -> tuple[CostModel, dict[str, Any]]:
    """Measure the grid, fit every kernel kind, measure random held-out shapes; returns (model, report)."""
    m4 = build_emulator(target, build_dir)
    coefs, report = {}, {}
    for kind in FEATURES:
        shapes = grid_shapes(kind)
        cyc = [measure(m4, s, i) for i, s in enumerate(shapes)]
        coefs[kind] = fit_kind(kind, shapes, cyc)
        report[kind] = {"fit_shapes": len(shapes)}
    opt, portable = BUILDS[target]
    meta = {
        "build": f"make -C firmware m4 M4_OPT={opt}" + (" M4_DEFS=-DREDS_PORTABLE" if portable else ""),
        "timing": "benchmarks/mcu_cycles.py CortexM4Timing (zero-wait-state memory)",
        "invoke_cycles": 0.0,
    }
    model = CostModel(target, coefs, meta)
    for kind in FEATURES:
        held = random_shapes(kind, n_heldout, seed)
        err = rel_errors(model, held, [measure(m4, s, 1000 + i) for i, s in enumerate(held)])
        report[kind].update(heldout_shapes=len(held),
                            max_abs_err_pct=round(100 * float(np.abs(err).max()), 2),
                            mean_abs_err_pct=round(100 * float(np.abs(err).mean()), 2))  # fmt: skip
    model.meta["heldout_error"] = report
    return model, report


def write(model: CostModel, path: Path | None = None) -> Path:
    """Write the model atomically (temp file + rename) to the package's data file or ``path``."""
    p = Path(path) if path is not None else data_path(model.target)
    return atomic_write_text(p, json.dumps(model.to_dict(), indent=1, sort_keys=True) + "\n")


def fit_all(targets: Iterable[str] = TARGETS, build_dir: Path | None = None) -> dict[str, dict[str, Any]]:
    """Refit and write every target's data file; returns the held-out report per target."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for t in targets:
            model, report = fit(t, Path(build_dir or tmp))
            model.meta["format_version"] = FORMAT_VERSION
            write(model)
            out[t] = report
    return out
