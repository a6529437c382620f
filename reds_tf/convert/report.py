"""The conversion report: per-level sizes, arenas, MACs and accuracies as JSON and markdown."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..runstore import atomic_write_text
from .flatbuffer import S, op_name, pack_models_ledger


def tflite_macs(model: S.ModelT) -> int:
    """Multiply-accumulates of CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED, from tensor shapes."""
    sg = model.subgraphs[0]
    total = 0
    for op in sg.operators:
        name = op_name(model, op)
        if name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            continue
        w = [int(d) for d in sg.tensors[op.inputs[1]].shape]
        out = int(np.prod(sg.tensors[op.outputs[0]].shape, dtype=np.int64))
        if name == "CONV_2D":
            total += out * w[1] * w[2] * w[3]
        elif name == "DEPTHWISE_CONV_2D":
            total += out * w[1] * w[2]
        else:
            total += out * w[1]
    return total


def weight_bytes(model: S.ModelT) -> int:
    """Bytes of constant data the model's operators read (weights, biases, small params)."""
    sg = model.subgraphs[0]
    seen, total = set(), 0
    for op in sg.operators:
        for i in op.inputs:
            if i < 0 or i in seen:
                continue
            seen.add(i)
            data = model.buffers[sg.tensors[i].buffer].data
            total += 0 if data is None else len(data)
    return total


def bundle_breakdown(models: list[S.ModelT], labels: list[str] | None = None) -> dict[str, dict[str, int]]:
    """Bytes of a bundle by level and category: ``{label: {category: bytes}}``.

    ``models`` are the bundle's device models (``bundle.device_models``), smallest first.
    The full (last) level is packed first, so every shared byte is filed under it and a
    smaller level's numbers are exactly what it adds to the bundle. Categories: buffer
    data, its alignment padding, tensor / quantisation / operator / buffer tables, the
    vectors inside them by dtype (shapes, float32 scales, int64 zero points, op in/outputs),
    and subgraph/model tables with their offset vectors. The totals sum to the blob size.
    """
    labels = labels or [f"level {i}" for i in range(len(models))]
    _, _, _, ledger = pack_models_ledger(models, labels)
    out: dict[str, dict[str, int]] = {lab: {} for lab in labels}
    for (lab, cat), n in sorted(ledger.items()):
        if n:
            out[lab][cat] = n
    for lab in labels:
        out[lab]["total"] = sum(out[lab].values())
    return out


def breakdown_markdown(bd: dict[str, dict[str, int]]) -> str:
    """``bundle_breakdown`` as a markdown table: one row per category, one column per level."""
    labels = list(bd)
    cats = sorted({c for v in bd.values() for c in v if c != "total"})
    head = "| bytes | " + " | ".join(labels) + " |\n|---|" + "---|" * len(labels) + "\n"
    rows = "".join(
        f"| {c} | " + " | ".join(f"{bd[lab].get(c, 0):,}" for lab in labels) + " |\n" for c in cats
    )
    total = "| **total** | " + " | ".join(f"**{bd[lab]['total']:,}**" for lab in labels) + " |\n"
    return head + rows + total


def _blob_ledger(fw: dict[str, Any]) -> str:
    """The firmware blob's byte ledger: every section once, then what each level adds (widest first)."""
    if "sections" not in fw:
        return ""
    rows = "".join(f"| {name} | {b:,} |\n" for name, b in fw["sections"].items())
    per = ", ".join(
        f"level {lv['level']}: {lv['table_bytes']:,} B descriptor and op list + "
        f"{lv['params_bytes_added']:,} B int32"
        for lv in fw["levels"]
    )
    return (
        f"| firmware blob section | bytes |\n|---|---|\n{rows}\nPer level (op templates are shared; the "
        f"widest level's int32 arrays are stored first, a narrower level adds only what is not a view of "
        f"them): {per}.\n\n"
    )


# Issue "convert": bundle flash <= 1.10 x the full level's standalone file.
RATIO_TARGET = 1.10


@dataclass
class LevelReport:
    """One level's numbers; ``None`` where a measurement was skipped (no test data, --no-verify)."""

    level: int
    file: str
    standalone_bytes: int
    standalone_weight_bytes: int
    bundle_marginal_bytes: int
    arena_standalone_bytes: int
    arena_bundle_bytes: int
    macs: int
    macs_tflite: int
    #: predicted Cortex-M4 cycles in the firmware's SIMD build (device cost model); None: no prediction
    cycles_pred: int | None
    shared_tensors: int
    unshared_tensors: int
    layouts: dict[str, int]
    float_accuracy: float | None = None
    int8_accuracy: float | None = None
    accuracy_diff_pp: float | None = None
    top1_agreement: float | None = None
    tflite_ref_vs_tflm_max_lsb: int | None = None
    tflite_ref_vs_tflm_differing: float | None = None  # share of int8 outputs that differ (reported only)
    bundle_bit_exact: bool | None = None
    verified_samples: int = 0
    widths: dict[str, int] | None = None


@dataclass
class ConvertReport:
    """Everything ``convert`` measured; ``to_dict`` is report.json."""

    out_dir: str
    levels: list[LevelReport]
    bundle_file: str
    bundle_bytes: int
    bundle_strategy: str
    full_standalone_bytes: int
    full_standalone_weight_bytes: int
    full_stripped_bytes: int
    naive_sum_bytes: int
    strategies: dict[str, dict[str, Any]]
    shares: list[list[dict]] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    firmware: dict[str, Any] = field(default_factory=dict)
    verified: bool = False
    bundle_breakdown: dict[str, dict[str, int]] = field(default_factory=dict)
    calibration_mode: str = "shared"
    #: how activation ranges were set: "minmax" (the converter's), "mse" or "percentile" (ranges.clip_ranges)
    activation_ranges: str = "minmax"
    #: per-group factor summary of ``equalize.channel_factors`` (None: not equalised)
    equalization: dict[str, Any] | None = None

    @property
    def bundle_ratio(self) -> float:
        """Bundle flash over the full level's standalone .tflite (target <= 1.10)."""
        return self.bundle_bytes / self.full_standalone_bytes

    @property
    def bundle_ratio_weights(self) -> float:
        """Bundle flash over the full level's constant data alone (stricter; no per-model tables)."""
        return self.bundle_bytes / self.full_standalone_weight_bytes

    @property
    def bundle_ratio_stripped(self) -> float:
        """Bundle flash over the full level alone packed the bundle's way (stripped, deduplicated)."""
        return self.bundle_bytes / self.full_stripped_bytes

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["bundle_ratio_stripped"] = round(self.bundle_ratio_stripped, 4)
        d["bundle_ratio"] = round(self.bundle_ratio, 4)
        d["bundle_ratio_weights"] = round(self.bundle_ratio_weights, 4)
        d["naive_ratio"] = round(self.naive_sum_bytes / self.full_standalone_bytes, 4)
        d["bundle_ratio_target"] = RATIO_TARGET
        d["bundle_ratio_target_met"] = self.bundle_ratio <= RATIO_TARGET
        return d

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    def _firmware_line(self) -> str:
        fw = self.firmware
        if not fw:
            return ""
        if "error" in fw:
            return f"**No firmware blob was written**: {fw['error']}\n\n"
        ratio = fw.get("blob_ratio_vs_full")
        return (
            f"Firmware blob: {fw['blob_bytes']:,} B"
            + (
                ""
                if ratio is None
                else f" = {ratio:.3f} x a blob of the full level alone ({fw['full_level_blob_bytes']:,} B)"
            )  # fmt: skip
            + ".\n\n"
            + _blob_ledger(fw)
        )

    def _equalization_line(self) -> str:
        if self.equalization is None:
            return "Channel ranges not equalised before quantisation.\n\n"
        g, skipped = self.equalization["groups"], self.equalization["skipped"]
        lo = min((v["min"] for v in g.values()), default=1.0)
        hi = max((v["max"] for v in g.values()), default=1.0)
        left = f"; left alone: {', '.join(f'{k} ({v})' for k, v in skipped.items())}" if skipped else ""
        return (
            f"Channel ranges equalised before quantisation in {len(g)} unit groups "
            f"(factors {lo:.3g} .. {hi:.3g}){left}.\n\n"
        )

    def markdown(self) -> str:
        """A table per level plus the bundle totals and the measured strategies."""

        def pct(v: float | None) -> str:
            return "-" if v is None else f"{100 * v:.2f}"

        head = (
            "| level | MACs | standalone B | in bundle B | arena standalone B | arena bundle B | float acc % "
            "| int8 acc % | diff pp | top-1 agree % | ref vs TFLM max LSB (differing %) | bit-exact |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
        )
        rows = "".join(
            f"| {r.level} | {r.macs:,} | {r.standalone_bytes:,} | {r.bundle_marginal_bytes:,} | "
            f"{r.arena_standalone_bytes:,} | {r.arena_bundle_bytes:,} | {pct(r.float_accuracy)} | "
            f"{pct(r.int8_accuracy)} | "
            f"{'-' if r.accuracy_diff_pp is None else f'{r.accuracy_diff_pp:.2f}'} | "
            f"{pct(r.top1_agreement)} | "
            f"{'-' if r.tflite_ref_vs_tflm_max_lsb is None else r.tflite_ref_vs_tflm_max_lsb}"
            f"{'' if r.tflite_ref_vs_tflm_differing is None else f' ({pct(r.tflite_ref_vs_tflm_differing)})'}"
            f" | {'-' if r.bundle_bit_exact is None else ('yes' if r.bundle_bit_exact else 'NO')} |\n"
            for r in self.levels
        )
        strat = "".join(
            f"| {name} | {s['bytes']:,} | {s['bytes'] / self.full_standalone_bytes:.3f} | "
            f"{', '.join(f'{a:,}' for a in s['arena_bytes'])} | {s['slice_ops']} |\n"
            for name, s in self.strategies.items()
        )
        return (
            f"# reds_tf conversion: {len(self.levels)} levels\n\n{head}{rows}\n"
            "TFLM (tflite-micro) is the device reference; the tf.lite reference-kernel column is reported "
            "only (the two interpreters differ by a few LSB on ordinary models). `bundle.tflite` is for "
            "TFLM only: tf.lite refuses its per-channel scale vectors with a single zero point.\n\n"
            f"Calibration: {self.calibration_mode} mode, {self.activation_ranges} activation ranges.\n\n"
            f"{self._firmware_line()}{self._equalization_line()}"
            f"Bundle `{Path(self.bundle_file).name}` ({self.bundle_strategy}): {self.bundle_bytes:,} B = "
            f"{self.bundle_ratio:.3f} x the full level's standalone file ({self.full_standalone_bytes:,} B), "
            f"{self.bundle_ratio_stripped:.3f} x the full level stripped like the bundle "
            f"({self.full_stripped_bytes:,} B), "
            f"{self.bundle_ratio_weights:.3f} x its constant data ({self.full_standalone_weight_bytes:,} B); "
            f"naive sum of standalone files {self.naive_sum_bytes:,} B "
            f"({self.naive_sum_bytes / self.full_standalone_bytes:.3f} x).\n\n"
            f"**Bundle ratio {self.bundle_ratio:.4f} x** (target <= {RATIO_TARGET:.2f} x: "
            f"{'met' if self.bundle_ratio <= RATIO_TARGET else 'NOT met'}).\n\n"
            "| strategy | bundle B | x full standalone | TFLM arena per level B | SLICE ops |\n"
            f"|---|---|---|---|---|\n{strat}"
            + (
                "\nBundle bytes by level and category (each shared byte filed under the largest level "
                "using it, so a smaller level's column is what it adds):\n\n"
                + breakdown_markdown(self.bundle_breakdown)
                if self.bundle_breakdown
                else ""
            )
        )
