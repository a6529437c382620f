"""``convert``: a REDS model -> per-level int8 .tflite files, a shared-weight TFLM bundle, a report.

Steps (one module each): ``tflite`` converts every level with its own calibration,
``quantize`` rewrites the levels to reuse the full level's int8 weights, ``flatbuffer``
packs them aligned and deduplicated, ``bundle`` puts all levels in one file, ``verify``
runs TFLite Micro (the device reference) and reference tf.lite, ``report`` writes the
numbers. ``python -m reds_tf.convert`` / ``reds convert`` is the command line.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._keras import keras, tf
from ..errors import NotARedsModelError, PlanError, RedsError
from ..plan import WidthPlan, parse_levels
from ..runstore import atomic_write_bytes, atomic_write_text
from . import bundle as _bundle
from .equalize import apply_factors, channel_factors
from .flatbuffer import pack_model, read_tflite
from .quantize import CALIBRATION_MODES, check_supported, share_activations, share_weights
from .ranges import check_method
from .report import ConvertReport, LevelReport, bundle_breakdown, tflite_macs, weight_bytes
from .tflite import convert_int8
from .verify import dequantize_output, io_quant, measure_arenas, quantize_input, run_tflite_ref, run_tflm

__all__ = ["convert", "ConvertReport", "VerificationError", "read_tflite", "level_models", "as_arrays"]


class VerificationError(RedsError, RuntimeError):
    """A converted model failed a built-in check (TFLM vs reference kernels, bundle vs standalone).

    ``report``: the conversion's ``ConvertReport`` (its files are written), so a caller can keep the
    numbers it measured.
    """

    def __init__(self, message: str, report: ConvertReport | None = None) -> None:
        super().__init__(message)
        self.report = report


# -- inputs -------------------------------------------------------------------------------
def _nested():
    try:
        from .. import nested
    except ImportError as e:  # pragma: no cover - only while the core package is incomplete
        raise NotARedsModelError(
            f"reds_tf.nested is not available ({e}); pass a list of plain per-level Keras models instead."
        ) from e
    return nested


def level_models(model_or_path: Any) -> tuple[list[keras.Model], WidthPlan | None]:
    """Plain Keras models of every level (level 0 smallest) and the plan (None for a list of models)."""
    if isinstance(model_or_path, (list, tuple)):
        models = list(model_or_path)
        if not models or not all(isinstance(m, keras.Model) for m in models):
            raise NotARedsModelError(
                "Expected a non-empty list of plain Keras models, one per level (smallest first). "
                f"Received: {[type(m).__name__ for m in models]}"
            )
        return models, None
    model = model_or_path
    if isinstance(model_or_path, (str, Path)):
        p = Path(model_or_path)
        if p.is_dir():
            if not (p / "model.keras").is_file():
                raise NotARedsModelError(
                    f"{p} is not a reds run directory: it has no model.keras. Fix: pass a run directory "
                    "written by `reds run`, or the path of a nested .keras model."
                )
            # The weights the run deploys: after quantisation-aware fine-tuning, that stage's.
            p = p / ("model_qat.keras" if (p / "model_qat.keras").is_file() else "model.keras")
        if not p.is_file():
            raise NotARedsModelError(
                f"No such model file. Received: {p}. Fix: pass a nested .keras model or run dir."
            )
        try:
            model = _nested().load_model(p)
        except NotARedsModelError:
            raise
        except Exception as e:
            raise NotARedsModelError(f"{p} is not a reds nested model ({type(e).__name__}: {e}).") from e
    if not isinstance(model, keras.Model):
        raise NotARedsModelError(
            f"Expected a nested Keras model, path or list of models. Received: {type(model).__name__}"
        )
    nested = _nested()
    if not nested.nested_layers(model):
        raise NotARedsModelError(
            f"Model '{model.name}' is a plain Keras model, not a reds nested model (no nested layers). Fix: "
            "build it with reds_tf.nested.make_nested(model, plan), or pass a list of per-level plain models."
        )
    try:
        k = int(nested.num_levels(model))
    except Exception as e:
        raise NotARedsModelError(
            f"Model '{model.name}' is not a reds nested model ({e}). Fix: build it with "
            "reds_tf.nested.make_nested(model, plan), or pass a list of per-level plain models."
        ) from e
    return [nested.extract_level(model, i) for i in range(k)], nested.plan_of(model)


def as_arrays(data: Any, input_rank: int, limit: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """(x, y) numpy arrays from arrays, an (x, y) tuple, or a tf.data of x or (x, y), batched or not.

    ``input_rank`` is the model's input rank without the batch axis: an element of that
    rank is one sample, one more is a batch.
    """
    if isinstance(data, np.ndarray):
        return (data if limit is None else data[:limit]), None
    if isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[0], np.ndarray):
        x, y = np.asarray(data[0]), (None if data[1] is None else np.asarray(data[1]))
        return (x[:limit], None if y is None else y[:limit]) if limit else (x, y)
    if isinstance(data, tf.data.Dataset):
        xs, ys, n = [], [], 0
        for el in data:
            x, y = (el[0], el[1]) if isinstance(el, (tuple, list)) else (el, None)
            x = np.asarray(x)
            batched = x.ndim == input_rank + 1
            xs.append(x if batched else x[None])
            if y is not None:
                y = np.asarray(y)
                ys.append(y if batched else y[None])
            n += len(xs[-1])
            if limit is not None and n >= limit:
                break
        if not xs:
            raise NotARedsModelError("The dataset is empty. Fix: pass calibration/test data with samples.")
        x = np.concatenate(xs)[:limit]
        return x, (np.concatenate(ys)[:limit] if ys else None)
    raise TypeError(
        "Data must be a numpy array, an (x, y) tuple of arrays or a tf.data.Dataset. "
        f"Received: {type(data).__name__}"
    )


def _labels(y: np.ndarray | None) -> np.ndarray | None:
    if y is None:
        return None
    y = np.asarray(y)
    return y.argmax(-1) if y.ndim > 1 and y.shape[-1] > 1 else y.reshape(-1).astype(np.int64)


def _parse_levels(levels: str | Sequence[int], k: int) -> list[int]:
    try:
        return parse_levels(levels, k)
    except PlanError as e:
        raise NotARedsModelError(str(e)) from None


def _graph_macs(model: keras.Model) -> int | None:
    """MACs from reds_tf.costs (the cost model the solver uses), when the topology is supported."""
    try:
        from .. import costs, topology

        g = topology.graph_of(model)
        return int(costs.macs(g, g.full_widths))
    except Exception:
        return None


def _graph_cycles(model: keras.Model) -> int | None:
    """Cortex-M4 cycles of one inference in the firmware's SIMD build, predicted by the fitted device
    cost model (``reds_tf.device_cost``, the one latency budgets are planned with); None for a model
    with an op the cost model has no fitted kernel for (pooling windows, ADD) or an unsupported layer.
    Elementwise activations count nothing: ReLUs fuse into the convolutions, but a LeakyReLU runs as its
    own LEAKY_RELU loop on the device, whose cycles the prediction then leaves out."""
    from .. import costs, device_cost, topology

    try:
        g = topology.graph_of(model)
        per_op = device_cost.load("dsp").op_cycles(g, g.full_widths)
    except (RedsError, ValueError):
        return None
    # A shape far outside the fitted grid can extrapolate to nonsense (the fit's terms overlap and may be
    # negative); no kernel beats SMLAD's 2 MACs per cycle, so such a prediction is dropped as unknown.
    total = sum(per_op.values())
    if min(per_op.values(), default=0.0) < 0 or total <= 0 or total < costs.macs(g, g.full_widths) / 2:
        return None
    return int(round(total))


# -- the orchestrator ---------------------------------------------------------------------
def convert(
    model_or_path: Any,
    out_dir: str | Path,
    *,
    levels: str | Sequence[int] = "all",
    calibration: Any = None,
    calibration_samples: int = 200,
    test_data: Any = None,
    verify: bool = True,
    verify_samples: int = 200,
    strategy: str = "auto",
    firmware: bool = True,
    calibration_mode: str = "shared",
    equalize: bool = False,
    activation_ranges: str = "minmax",
    log: Callable[[str], Any] | None = None,
) -> ConvertReport:
    """Convert a REDS model to int8 TFLite: per-level files, one shared-weight bundle, a report.

    Args:
        model_or_path: a nested model, its .keras path, a run directory, or a list of plain
            per-level Keras models (smallest first).
        out_dir: where ``submodel_<k>.tflite``, ``bundle.tflite``, ``bundle.json``,
            ``report.json`` and ``report.md`` are written.
        levels: ``"all"``, ``"0,2"`` or a list of level indices to write.
        calibration: representative inputs (array, (x, y) or tf.data); required.
        calibration_samples: how many calibration samples each level's converter sees.
        test_data: (x, y) data for float vs int8 accuracy; without it accuracy is not reported.
        verify: run the built-in checks and raise ``VerificationError`` when a hard one fails (a
            bundle level not bit-exact with its standalone file under TFLM; int8 accuracy more than
            1 pp below float). tf.lite reference kernels vs TFLM differences are reported only.
        verify_samples: test (or calibration) samples used by the interpreter checks.
        strategy: bundle strategy for non-prefix weights: "auto", "slice" or "copy".
        firmware: also write the firmware's C arena when ``reds_tf.convert.c_arena`` exists.
        calibration_mode: ``"shared"`` (every level uses the full level's activation calibration, so
            a level's biases, multipliers and shifts are prefixes of the full level's and are stored
            once) or ``"per_level"`` (each level calibrated through itself).
        equalize: first rescale each unit group's channels so they use the per-tensor int8 activation
            range evenly (``equalize.channel_factors``; the float function is unchanged). Groups
            with a non-homogeneous activation (ReLU6, sigmoid, ...) are left alone.
        activation_ranges: ``"minmax"`` (the converter's calibration: every activation's range is the
            min and max seen), ``"mse"`` (each range clipped to minimise the expected squared
            quantisation error over the calibration values) or ``"percentile"`` (the 0.01 % tails
            clipped); see ``ranges.clip_ranges``. In the shared mode the full level's ranges serve all.
        log: called with one line per step and level (conversion takes minutes).
    """
    say = log or (lambda _line: None)
    check_method(activation_ranges, 99.99)
    if calibration_mode not in CALIBRATION_MODES:
        raise ValueError(
            f"Unknown calibration_mode. Received: calibration_mode={calibration_mode!r}; expected one of "
            f"{CALIBRATION_MODES}."
        )
    models, plan = level_models(model_or_path)
    k_all = len(models)
    chosen = _parse_levels(levels, k_all)
    rank = len(models[-1].input_shape) - 1
    if calibration is None:
        raise NotARedsModelError(
            "Calibration data is required for full-integer quantisation. "
            "Fix: pass calibration=(x, y) arrays or "
            "a tf.data.Dataset (CLI: --calibration-data PATH.npz with arrays x and y)."
        )
    cal_x, _ = as_arrays(calibration, rank, calibration_samples)
    eq = None
    if equalize:
        say("[convert] equalising per-channel activation ranges (function-preserving)")
        models = [_copy(m) for m in models] if plan is None else models  # never edit the caller's models
        eq = channel_factors(models, cal_x)
        for m in models:
            apply_factors(m, eq)
    test_x, test_y = as_arrays(test_data, rank, None) if test_data is not None else (None, None)
    final = Path(out_dir)
    final.mkdir(parents=True, exist_ok=True)

    # Everything is written into a staging directory beside out_dir and moved in only when complete,
    # so an interrupted conversion never leaves a mix of old and new files in out_dir.
    out = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
    try:
        # 1. Convert the full level and the chosen levels, each calibrated through itself (step 2 may
        # replace the activation quantisation by the full level's).
        need = sorted(set(chosen) | {k_all - 1})
        converted = {}
        for k in need:
            say(
                f"[convert] level {k}: int8 conversion ({calibration_samples} calibration samples, "
                f"{activation_ranges} activation ranges)"
            )
            q = convert_int8(models[k], cal_x, calibration_samples, ranges=activation_ranges)
            converted[k] = read_tflite(q, name=f"level {k}")
        full = converted[k_all - 1]
        for k in need:
            check_supported(converted[k], f"level {k}")
        # 2. Quantise once: every level reuses the full level's int8 weights and scales (and, in the
        # "shared" calibration mode, its activation quantisation).
        if calibration_mode == "shared":
            for k in need[:-1]:
                share_activations(full, converted[k], f"level {k}")
        shares = {
            k: ([] if k == k_all - 1 else share_weights(full, converted[k], f"level {k}")) for k in need
        }
        standalone = {k: pack_model(converted[k]) for k in need}
        files = {}
        for k in chosen:
            files[f"submodel_{k}"] = str(atomic_write_bytes(out / f"submodel_{k}.tflite", standalone[k]))

        # 3. The bundle, measured under every strategy; the chosen one is written.
        lv_models = [converted[k] for k in chosen]
        lv_shares = [shares[k] for k in chosen]
        say(f"[convert] shared-weight bundle ({', '.join(_bundle.STRATEGIES)}) and TFLM arena sizes")
        bundles = {s: _bundle.build_bundle(lv_models, lv_shares, s) for s in _bundle.STRATEGIES}
        # Every arena in one probe run (a child process: see verify.measure_arenas).
        probe = [b.level(i) for b in bundles.values() for i in range(len(chosen))]
        arenas = measure_arenas(probe + [standalone[k] for k in chosen])
        strategies = {
            s: {
                "bytes": len(b.blob),
                "arena_bytes": arenas[j * len(chosen) : (j + 1) * len(chosen)],
                "slice_ops": sum(b.slices),
            }
            for j, (s, b) in enumerate(bundles.items())
        }
        arena_standalone = dict(zip(chosen, arenas[len(probe) :], strict=True))
        chosen_bundle = (
            bundles[strategy] if strategy in bundles else _bundle.build_bundle(lv_models, lv_shares, strategy)
        )
        files["bundle"] = str(atomic_write_bytes(out / "bundle.tflite", chosen_bundle.blob))
        index = chosen_bundle.index() | {"level_ids": chosen}
        files["bundle_index"] = str(
            atomic_write_text(out / "bundle.json", json.dumps(index, indent=2) + "\n")
        )

        # 4. Per-level numbers and checks.
        rows = []
        for i, k in enumerate(chosen):
            rest = [m for j, m in enumerate(lv_models) if j != i]
            without = (
                len(_bundle.build_bundle(rest, [s for j, s in enumerate(lv_shares) if j != i], strategy).blob)
                if rest
                else 0
            )
            lay: dict[str, int] = {}
            for s in shares[k]:
                lay[s.layout] = lay.get(s.layout, 0) + 1
            macs_tfl = tflite_macs(converted[k])
            row = LevelReport(
                level=k,
                file=f"submodel_{k}.tflite",
                standalone_bytes=len(standalone[k]),
                standalone_weight_bytes=weight_bytes(converted[k]),
                bundle_marginal_bytes=len(chosen_bundle.blob) - without,
                arena_standalone_bytes=arena_standalone[k],
                arena_bundle_bytes=strategies[strategy]["arena_bytes"][i],
                macs=_graph_macs(models[k]) or macs_tfl,
                macs_tflite=macs_tfl,
                cycles_pred=_graph_cycles(models[k]),
                shared_tensors=sum(s.shared for s in shares[k]),
                unshared_tensors=sum(not s.shared for s in shares[k]),
                layouts=lay,
                widths=None if plan is None else dict(zip(plan.groups, plan.level(k), strict=True)),
            )
            if verify:
                say(f"[convert] level {k}: verifying under TFLM and the tf.lite reference")
                _verify_level(
                    row,
                    models[k],
                    standalone[k],
                    chosen_bundle.level(i),
                    test_x,
                    test_y,
                    cal_x,
                    verify_samples,
                )
            rows.append(row)

        full_bytes = len(standalone[k_all - 1]) if k_all - 1 in standalone else len(pack_model(full))
        report = ConvertReport(
            out_dir=str(final),
            levels=rows,
            bundle_file=files["bundle"],
            bundle_bytes=len(chosen_bundle.blob),
            bundle_strategy=strategy,
            full_standalone_bytes=full_bytes,
            full_standalone_weight_bytes=weight_bytes(full),
            full_stripped_bytes=len(_bundle.build_bundle([full], [[]], strategy).blob),
            bundle_breakdown=bundle_breakdown(
                _bundle.device_models(lv_models, lv_shares, chosen_bundle.choice)[0],
                [f"level {k}" for k in chosen],
            ),
            naive_sum_bytes=sum(len(standalone[k]) for k in chosen),
            strategies=strategies,
            shares=[[s.to_dict() for s in shares[k]] for k in chosen],
            files=files,
            verified=verify,
            calibration_mode=calibration_mode,
            activation_ranges=activation_ranges,
            equalization=None if eq is None else eq.summary(),
        )
        if firmware:
            say("[convert] firmware blob and C sources")
            _write_firmware(out, [files[f"submodel_{k}"] for k in chosen], report)
        _relocate(report, out, final)
        report.save(out / "report.json")
        atomic_write_text(out / "report.md", report.markdown())
        _publish(out, final)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    if verify:
        _raise_on_failures(report)
    return report


def _copy(model: keras.Model) -> keras.Model:
    twin = keras.models.clone_model(model)
    twin.set_weights(model.get_weights())
    return twin


def _verify_level(
    row: LevelReport, model, standalone: bytes, in_bundle: bytes, test_x, test_y, cal_x, n: int
) -> None:
    """Fill the row's checks: int8 vs float, tf.lite reference vs TFLM, bundle vs standalone."""
    x = (test_x if test_x is not None else cal_x)[:n]
    q = io_quant(standalone)
    xq = quantize_input(x, q)
    y_tflm = run_tflm(standalone, xq)
    y_ref = run_tflite_ref(standalone, xq)
    y_bundle = run_tflm(in_bundle, xq)
    row.verified_samples = len(x)
    lsb = np.abs(y_tflm.astype(np.int32) - y_ref.astype(np.int32))
    row.tflite_ref_vs_tflm_max_lsb = int(lsb.max())
    row.tflite_ref_vs_tflm_differing = round(float(np.mean(lsb > 0)), 6)
    row.bundle_bit_exact = bool(np.array_equal(y_tflm, y_bundle))
    if test_x is None:
        return
    # Accuracy over the whole test set (TFLM is the device reference).
    y_int8 = dequantize_output(run_tflm(standalone, quantize_input(test_x, q)), q).argmax(-1)
    y_float = np.asarray(model.predict(test_x, batch_size=256, verbose=0)).reshape(len(test_x), -1).argmax(-1)
    row.top1_agreement = float(np.mean(y_int8 == y_float))
    labels = _labels(test_y)
    if labels is not None:
        row.float_accuracy = float(np.mean(y_float == labels))
        row.int8_accuracy = float(np.mean(y_int8 == labels))
        row.accuracy_diff_pp = round(100 * (row.float_accuracy - row.int8_accuracy), 4)


# Verification policy (hard failures raise VerificationError; the rest is reported only).
ACCURACY_DROP_MAX_PP = 1.0


def _failures(r: LevelReport) -> list[str]:
    """The hard failures of one level: bundle vs standalone not bit-exact under TFLM, or an int8
    accuracy more than ``ACCURACY_DROP_MAX_PP`` below float. tf.lite reference kernels vs TFLM
    differences are a property of the two interpreters (a plain TFLiteConverter file shows them
    too) and are reported, never failed on: TFLM is the device reference."""
    out = []
    if r.bundle_bit_exact is False:
        out.append("bundle level is not bit-exact with its standalone file under TFLM")
    if r.accuracy_diff_pp is not None and r.accuracy_diff_pp > ACCURACY_DROP_MAX_PP:
        out.append(f"int8 accuracy is {r.accuracy_diff_pp:.2f} pp below float (> {ACCURACY_DROP_MAX_PP} pp)")
    return out


def _raise_on_failures(report: ConvertReport) -> None:
    bad = [f"level {r.level}: " + ", ".join(_failures(r)) for r in report.levels if _failures(r)]
    if bad:
        raise VerificationError(
            "Conversion verification failed: "
            + "; ".join(bad)
            + f". The report is in {report.out_dir}/report.json. "
            "Fix: calibrate on more representative data (calibration_samples) or report this model "
            "as a reds_tf bug; pass verify=False (--no-verify) to keep the files anyway.",
            report,
        )


# Every file a conversion writes (``_publish`` replaces an earlier conversion's, stale levels included).
CONVERTED_FILES = ("submodel_*.tflite", "bundle.tflite", "bundle.json", "report.json", "report.md",
                   "model.blob", "model_blob.c", "model_blob.h")  # fmt: skip


def _relocate(report: ConvertReport, stage: Path, final: Path) -> None:
    """Point the report's file paths at ``final``, where ``_publish`` moves the staged files."""

    def moved(p: str) -> str:
        return str(final / Path(p).relative_to(stage))

    report.files = {k: moved(v) for k, v in report.files.items()}
    report.bundle_file = moved(report.bundle_file)
    if "paths" in report.firmware:
        report.firmware["paths"] = {k: moved(v) for k, v in report.firmware["paths"].items()}


def _publish(stage: Path, final: Path) -> None:
    """Replace an earlier conversion in ``final`` by the staged files (renames on one filesystem)."""
    for pattern in CONVERTED_FILES:
        for p in final.glob(pattern):
            p.unlink()
    for p in sorted(stage.iterdir()):
        p.replace(final / p.name)


def _write_firmware(out: Path, paths: list[str], report: ConvertReport) -> None:
    """Write the firmware's C arena (``c_arena``) from the level files."""
    from . import c_arena

    try:
        cycles = [r.cycles_pred or 0 for r in report.levels]
        summary = c_arena.write([Path(p) for p in paths], out, level_cycles=cycles)
    except RedsError as e:
        # The TFLite files and the TFLM bundle stay valid; only the native firmware blob is missing.
        warnings.warn(f"No firmware blob: {e}", stacklevel=3)
        report.firmware = {"error": str(e)}
        return
    report.firmware = summary
    report.files.update({f"firmware_{k}": str(v) for k, v in summary.get("paths", {}).items()})
