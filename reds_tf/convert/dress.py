"""DRESS conversion: nested row-sparse levels of one Keras model -> int8 .tflite references + one device blob.

Every output row of a sparse layer (Conv2D incl. 1x1 and the first conv, Dense) holds its weights in
importance order (``orders[name][r]``: flat column indices, most important first; for Conv2D the flat
index runs over the Keras kernel's (kh, kw, c_in), row-major, which is TFLite's OHWI row order); level k
keeps the first ``counts[k][l]`` entries of every row of layer l. The model is quantised ONCE (int8,
per-channel weight scales from the full dense weights, one activation calibration), so a dropped weight
is exactly 0 and every level shares the same scales, biases and activation parameters:

* ``level_k.tflite``: the full int8 model with every weight outside level k's kept set zeroed in its
  int8 buffer: the zero-expanded dense reference that the firmware's sparse kernels match bit for bit
  under TFLM;
* ``reds_model.bin`` (+ ``reds_model_blob.c`` / ``.h``): the device blob (``c_arena``, version 4) with
  each sparse layer's int8 values in importance order [R, n_max] and column indices [R, n_max] (uint8
  when fan_in <= 256, else uint16) stored once, n_max the top level's count, and per level one count
  per sparse layer; depthwise and the other layers stay dense; switching a level is one integer;
* ``report.json``: per level the kept weights and MACs, int8 (TFLM) against the float masked Keras
  model on the calibration images, and flash (values + indices + counts) against the dense blob.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._keras import keras
from ..errors import RunExistsError, UnsupportedLayerError
from ..runstore import atomic_dir
from . import c_arena
from .c_prepare import OP_CONV_2D, OP_FULLY_CONNECTED, SPARSE_OPS, read_level
from .flatbuffer import S, add_buffer, op_name, pack_model, read_tflite, tensor_array
from .tflite import convert_int8
from .verify import dequantize_output, io_quant, quantize_input, run_tflm

BLOB_NAME = "reds_model"  # reds_model.bin, reds_model_blob.c, reds_model_blob.h
CHECK_SAMPLES = 100  # calibration images run per level through TFLM for the report


def _sparse_kind(layer: keras.layers.Layer) -> str | None:
    """ "conv" / "dense" for the layer kinds DRESS makes sparse; None otherwise (depthwise stays dense)."""
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return None
    if isinstance(layer, keras.layers.Conv2D) and not isinstance(layer, keras.layers.SeparableConv2D):
        return "conv"
    if isinstance(layer, keras.layers.Dense):
        return "dense"
    return None


def _check_inputs(
    model: keras.Model,
    orders: Mapping[str, np.ndarray],
    counts: Sequence[Sequence[int]],
    names: Sequence[str],
) -> tuple[list[np.ndarray], np.ndarray]:
    """Validate the arguments; return each sparse layer's order as int64 [R, fan_in] and counts [K, L]."""
    layers = {layer.name: layer for layer in model.layers}
    if not names or len(set(names)) != len(names):
        raise ValueError(f"layer_names must name distinct layers. Received: layer_names={list(names)}")
    out = []
    for name in names:
        layer = layers.get(name)
        if layer is None or _sparse_kind(layer) is None:
            raise UnsupportedLayerError(
                f"layer_names: {name!r} is {'not in the model' if layer is None else type(layer).__name__}; "
                "DRESS makes Conv2D and Dense layers row-sparse. Fix: name Conv2D/Dense layers of "
                f"'{model.name}' only (depthwise layers stay dense)."
            )
        kernel = layer.kernel.shape
        if _sparse_kind(layer) == "conv" and (tuple(layer.dilation_rate) != (1, 1) or layer.groups != 1):
            raise UnsupportedLayerError(
                f"{name}: the sparse conv kernel takes dilation 1 and groups 1. Received: "
                f"dilation_rate={layer.dilation_rate}, groups={layer.groups}. Fix: keep this layer dense."
            )
        if name not in orders:
            raise ValueError(f"orders has no entry for layer {name!r}. Received keys: {sorted(orders)}")
        o = np.asarray(orders[name])
        rows, fan = int(kernel[-1]), int(np.prod(kernel[:-1]))
        if o.shape != (rows, fan) or not np.issubdtype(o.dtype, np.integer):
            raise ValueError(
                f"orders[{name!r}] must be an integer array of shape (out_units, fan_in) = {(rows, fan)}. "
                f"Received: {o.dtype} {o.shape}"
            )
        if not np.array_equal(np.sort(o, axis=1), np.broadcast_to(np.arange(fan), o.shape)):
            raise ValueError(
                f"orders[{name!r}]: every row must be a permutation of range({fan}) (each column once, "
                "most important first). Fix: use np.argsort(-score, axis=1)."
            )
        out.append(o.astype(np.int64))
    c = np.asarray(counts, dtype=np.int64)
    fans = np.array([o.shape[1] for o in out])
    if c.ndim != 2 or c.shape[1] != len(names) or not 1 <= c.shape[0] <= c_arena.MAX_LEVELS:
        raise ValueError(
            f"counts must be K lists of L = {len(names)} ints (1 <= K <= {c_arena.MAX_LEVELS}). "
            f"Received: shape {c.shape}"
        )
    if (c < 0).any() or (c > fans).any() or (np.diff(c, axis=0) < 0).any() or (c[-1] < 1).any():
        raise ValueError(
            "counts must be nested (level k <= level k + 1 per layer), in [0, fan_in] = "
            f"{fans.tolist()}, and at least 1 at the top level. Received: counts={c.tolist()}"
        )
    return out, c


def _match_ops(
    model: keras.Model, tfl: S.ModelT, names: Sequence[str], orders: list[np.ndarray]
) -> list[int]:
    """Each sparse layer's CONV_2D / FULLY_CONNECTED operator in the int8 flatbuffer.

    The converter keeps the Keras layers' order and folds BatchNormalization into the kernels, so the
    Conv2D/Dense layers pair with the CONV_2D/FULLY_CONNECTED operators in order. Each pair is checked:
    the same kernel shape, and every int8 row a per-channel multiple of the Keras row (cosine > 0.9, the
    folded BN scale may flip its sign)."""
    g = tfl.subgraphs[0]
    ops = [i for i, op in enumerate(g.operators) if op_name(tfl, op) in ("CONV_2D", "FULLY_CONNECTED")]
    keras_layers = [layer for layer in model.layers if _sparse_kind(layer) is not None]
    if len(ops) != len(keras_layers):
        raise UnsupportedLayerError(
            f"'{model.name}' has {len(keras_layers)} Conv2D/Dense layers but its int8 TFLite model has "
            f"{len(ops)} CONV_2D/FULLY_CONNECTED ops; cannot pair them. Fix: a plain model with one op per "
            "layer (no Dense on rank > 2 inputs)."
        )
    pair = {layer.name: i for layer, i in zip(keras_layers, ops, strict=True)}
    for name, order in zip(names, orders, strict=True):
        op = g.operators[pair[name]]
        w = tensor_array(tfl, op.inputs[1]).astype(np.float64).reshape(order.shape[0], -1)
        k = np.asarray(model.get_layer(name).kernel.numpy(), np.float64)
        rows = k.reshape(-1, k.shape[-1]).T  # [R, fan_in] in (kh, kw, c_in) row-major order
        norm = np.linalg.norm(w, axis=1) * np.linalg.norm(rows, axis=1)
        live = norm > 0
        cos = np.abs((w * rows).sum(axis=1)[live] / norm[live])
        if w.shape != rows.shape or (live.any() and cos.min() < 0.9):
            raise UnsupportedLayerError(
                f"{name}: the paired TFLite op {op_name(tfl, op)} (operator {pair[name]}) has weights of "
                f"shape {w.shape} not matching the layer's {rows.shape} rows. Fix: a plain Keras model "
                "whose Conv2D/Dense layers convert one-to-one."
            )
    return [pair[n] for n in names]


def _level_model(tfl: bytes, op_ids: list[int], orders: list[np.ndarray], counts: np.ndarray) -> bytes:
    """The full int8 model with every weight outside the kept sets zeroed (same scales, biases and
    activation parameters)."""
    m = read_tflite(tfl)
    g = m.subgraphs[0]
    for i, order, n in zip(op_ids, orders, counts, strict=True):
        t = g.operators[i].inputs[1]
        w = tensor_array(m, t)
        rows = w.reshape(order.shape[0], -1)
        keep = np.zeros(rows.shape, bool)
        np.put_along_axis(keep, order[:, :n], True, axis=1)
        g.tensors[t].buffer = add_buffer(m, np.where(keep, rows, 0).astype(np.int8).reshape(w.shape))
    return pack_model(m)


def _sparse_entries(
    tfl: S.ModelT, op_ids: list[int], orders: list[np.ndarray], n_max: np.ndarray
) -> list[dict]:
    """Per sparse layer the values [R, n_max] (full int8 weights in importance order) and indices."""
    out = []
    for i, order, n in zip(op_ids, orders, n_max, strict=True):
        op = tfl.subgraphs[0].operators[i]
        rows = tensor_array(tfl, op.inputs[1]).reshape(order.shape[0], -1)
        idx = order[:, :n]
        dtype = np.uint8 if rows.shape[1] <= 256 else np.uint16
        out.append({"output": op.outputs[0], "values": np.take_along_axis(rows, idx, axis=1).astype(np.int8),
                    "indices": idx.astype(dtype)})  # fmt: skip
    return out


def _blob_levels(level_files: list[bytes], sparse: list[dict], counts: np.ndarray) -> list[dict]:
    """``read_level`` of every level with each sparse layer's op turned into its row-sparse op."""
    levels = []
    for k, data in enumerate(level_files):
        lv = read_level(data)
        by_out = {e["output"]: e for e in lv["ops"]}
        for j, sp in enumerate(sparse):
            e = by_out[sp["output"]]
            if e["rec"]["type"] not in (OP_CONV_2D, OP_FULLY_CONNECTED):
                raise UnsupportedLayerError(f"Sparse layer {j} maps to a {e['rec']['type']} op record.")
            e["rec"] = {**e["rec"], "type": SPARSE_OPS[e["rec"]["type"]]}
            e["weights"] = None
            e["sparse"] = {"values": sp["values"], "indices": sp["indices"], "count": int(counts[k, j])}
        levels.append(lv)
    return levels


def _masked_keras(
    model: keras.Model, names: Sequence[str], orders: list[np.ndarray], n: np.ndarray
) -> keras.Model:
    """A copy of the float model with the weights outside the kept sets at 0 (the level's float twin)."""
    twin = keras.models.clone_model(model)
    twin.set_weights(model.get_weights())
    for name, order, c in zip(names, orders, n, strict=True):
        layer = twin.get_layer(name)
        k = layer.kernel.numpy()
        flat = k.reshape(-1, k.shape[-1])  # [fan_in, R]
        keep = np.zeros(flat.T.shape, bool)
        np.put_along_axis(keep, order[:, :c], True, axis=1)
        layer.kernel.assign(np.where(keep.T, flat, 0).reshape(k.shape))
    return twin


def convert_dress(
    model: keras.Model,
    orders: Mapping[str, np.ndarray],
    counts: Sequence[Sequence[int]],
    layer_names: Sequence[str],
    calibration_images: np.ndarray,
    out_dir: str | Path,
    *,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Convert a model with nested row-sparse levels; returns the report (also ``out_dir/report.json``).

    Args:
        model: the plain full Keras model (BatchNormalization is folded by the TFLite converter).
        orders: per sparse layer, int [out_units, fan_in]: row r's flat column indices, most important
            first (Conv2D: ``np.ravel_multi_index`` over the kernel's (kh, kw, c_in); Dense: the input).
        counts: K lists of L ints, level 0 smallest, nested, each <= the layer's fan_in.
        layer_names: the L sparse layers (Conv2D / Dense), the columns of ``counts``.
        calibration_images: float inputs for the one activation calibration (and the report's checks).
        out_dir: written atomically; a non-empty one is refused unless ``overwrite``.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise RunExistsError(
            f"out_dir is not empty. Received: out_dir={str(out_dir)!r}. Fix: pass overwrite=True to replace "
            "it, or another directory."
        )
    order_list, c = _check_inputs(model, orders, counts, layer_names)
    x = np.asarray(calibration_images, np.float32)
    tfl = convert_int8(model, x, samples=len(x))
    full = read_tflite(tfl)
    op_ids = _match_ops(model, full, layer_names, order_list)
    n_max = c[-1]
    level_files = [_level_model(tfl, op_ids, order_list, c[k]) for k in range(len(c))]
    sparse = _sparse_entries(full, op_ids, order_list, n_max)
    blob, summary = c_arena.build_blob(_blob_levels(level_files, sparse, c))
    dense_blob, _ = c_arena.build_blob([read_level(tfl)])
    report = _report(model, layer_names, order_list, c, x, tfl, level_files, sparse, summary, len(dense_blob))
    report["blob_version"] = c_arena.read_blob(blob)["header"]["version"]
    with atomic_dir(out_dir) as stage:
        for k, data in enumerate(level_files):
            (stage / f"level_{k}.tflite").write_bytes(data)
        (stage / f"{BLOB_NAME}.bin").write_bytes(blob)
        src, hdr = c_arena.c_source(blob, BLOB_NAME)
        (stage / f"{BLOB_NAME}_blob.c").write_text(src)
        (stage / f"{BLOB_NAME}_blob.h").write_text(hdr)
        report["files"] = sorted(p.name for p in stage.iterdir()) + ["report.json"]
        (stage / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _report(
    model: keras.Model,
    names: Sequence[str],
    orders: list[np.ndarray],
    c: np.ndarray,
    x: np.ndarray,
    tfl: bytes,
    level_files: list[bytes],
    sparse: list[dict],
    summary: dict[str, Any],
    dense_blob_bytes: int,
) -> dict[str, Any]:
    """Per-level numbers and the flash ledger (values + indices + counts vs the dense layers)."""
    q = io_quant(tfl)
    xs = x[:CHECK_SAMPLES]
    xq = quantize_input(xs, q)
    layers = []
    for name, order, sp in zip(names, orders, sparse, strict=True):
        rows, fan = order.shape
        layers.append({"name": name, "rows": rows, "fan_in": fan, "n_max": int(sp["values"].shape[1]),
                       "index_bytes": int(sp["indices"].itemsize),
                       "values_bytes": int(sp["values"].size), "indices_bytes": int(sp["indices"].nbytes),
                       "dense_weight_bytes": rows * fan})  # fmt: skip
    counts_bytes = 4 * c.size
    sparse_bytes = sum(d["values_bytes"] + d["indices_bytes"] for d in layers) + counts_bytes
    levels = []
    for k, data in enumerate(level_files):
        y_int8 = dequantize_output(run_tflm(data, xq), q).astype(np.float64)
        y_float = np.asarray(_masked_keras(model, names, orders, c[k]).predict(xs, verbose=0), np.float64)
        y_float = y_float.reshape(len(xs), -1)
        levels.append({
            "level": k,
            "counts": c[k].tolist(),
            "kept_weights": int(sum(order.shape[0] * n for order, n in zip(orders, c[k], strict=True))),
            "macs": summary["levels"][k]["macs"],
            "int8_vs_float_top1_agreement": float(np.mean(y_int8.argmax(1) == y_float.argmax(1))),
            "int8_vs_float_max_abs_diff": float(np.abs(y_int8 - y_float).max()),
            "tflite_bytes": len(data),
        })  # fmt: skip
    return {
        "format": "dress",
        "layer_names": list(names),
        "calibration": {
            "samples": len(x),
            "checked_samples": len(xs),
            "input_scale": q.in_scale,
            "input_zero_point": q.in_zero,
            "output_scale": q.out_scale,
            "output_zero_point": q.out_zero,
        },  # fmt: skip
        "levels": levels,
        "sparse_layers": layers,
        "flash": {
            "sparse_values_indices_counts_bytes": sparse_bytes,
            "counts_bytes": counts_bytes,
            "dense_weight_bytes_of_sparse_layers": sum(d["dense_weight_bytes"] for d in layers),
            "blob_bytes": summary["blob_bytes"],
            "dense_blob_bytes": dense_blob_bytes,
            "blob_ratio_vs_dense": round(summary["blob_bytes"] / dense_blob_bytes, 4),
        },
        "blob": {k: v for k, v in summary.items() if k != "levels"},
    }
