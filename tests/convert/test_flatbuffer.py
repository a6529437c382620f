"""read_tflite refuses corrupt input; packing keeps models runnable, aligned and deduplicated."""

from __future__ import annotations

import numpy as np
import pytest

from reds_tf.convert.c_prepare import quantize_multiplier
from reds_tf.convert.flatbuffer import pack_model, pack_models, read_tflite
from reds_tf.convert.tflite import convert_int8
from reds_tf.convert.verify import io_quant, measure_arena, quantize_input, run_tflm
from reds_tf.errors import CorruptFlatbufferError


@pytest.fixture(scope="module")
def small(fc2_levels, fmnist):
    return convert_int8(fc2_levels[0], fmnist["x_train"], 20)


def test_truncated_and_garbage_raise(small, tmp_path):
    for cut in (0, 7, 100, len(small) // 2, len(small) - 3):
        with pytest.raises(CorruptFlatbufferError, match="TFLite"):
            read_tflite(small[:cut])
    with pytest.raises(CorruptFlatbufferError, match="not a TFLite flatbuffer"):
        read_tflite(b"\x00" * 64)
    p = tmp_path / "bad.tflite"
    p.write_bytes(small[: len(small) // 3])
    with pytest.raises(CorruptFlatbufferError):
        read_tflite(p)
    with pytest.raises(CorruptFlatbufferError, match="Cannot read"):
        read_tflite(tmp_path / "missing.tflite")


def test_corrupted_root_offset_raises(small):
    bad = bytearray(small)
    bad[0:4] = (len(small) + 1000).to_bytes(4, "little")
    with pytest.raises(CorruptFlatbufferError):
        read_tflite(bytes(bad))


def test_repack_is_aligned_and_bit_exact(small, fmnist):
    m = read_tflite(small)
    packed = pack_model(m)
    xq = quantize_input(fmnist["x_test"][:10], io_quant(small))
    np.testing.assert_array_equal(run_tflm(packed, xq), run_tflm(small, xq))
    m2 = read_tflite(packed)
    # every constant buffer is 16-byte aligned in the file
    for b in m2.buffers:
        if b.data is not None and len(b.data):
            raw = bytes(b.data)
            assert packed.find(raw) % 16 == 0
    assert measure_arena(packed) > 0


def test_multi_root_blob_dedups(small, fmnist):
    m = read_tflite(small)
    one = pack_model(m)
    blob, offsets, _ = pack_models([read_tflite(small), read_tflite(small)], dedup_tables=False)
    assert offsets == [16, 0]
    assert len(blob) < 1.2 * len(one)
    read_tflite(blob[offsets[0] :])
    # With table dedup a second identical (stripped) model costs only its Model table and
    # 8-byte root header: every subgraph, tensor, operator and buffer table is shared.
    from reds_tf.convert.bundle import strip_for_device

    single, _, _ = pack_models([strip_for_device(read_tflite(small))])
    twice, offsets, _ = pack_models([strip_for_device(read_tflite(small)) for _ in range(2)])
    assert len(twice) <= len(single) + 48
    xq = quantize_input(fmnist["x_test"][:10], io_quant(small))
    for off in offsets:
        np.testing.assert_array_equal(run_tflm(twice[off:], xq), run_tflm(small, xq))


@pytest.mark.parametrize("real", [0.5, 0.3, 1e-3, 0.999999, 1.7])
def test_quantize_multiplier(real):
    q, shift = quantize_multiplier(real)
    assert (1 << 30) <= q < (1 << 31)
    assert abs(q * 2.0 ** (shift - 31) - real) <= real * 2**-30


def test_random_corruption_never_escapes_as_another_error(small):
    """Byte flips and wild offsets either parse or raise CorruptFlatbufferError: no crash, no hang."""
    rng = np.random.default_rng(1)
    outcomes = {"ok": 0, "corrupt": 0}
    for _ in range(300):
        m = bytearray(small)
        for _ in range(int(rng.integers(1, 4))):
            m[int(rng.integers(0, len(m)))] = int(rng.integers(0, 256))
        p = int(rng.integers(0, len(m) // 16)) * 4
        m[p : p + 4] = int(rng.integers(0, 2**32)).to_bytes(4, "little")
        try:
            read_tflite(bytes(m))
            outcomes["ok"] += 1
        except CorruptFlatbufferError:
            outcomes["corrupt"] += 1
    assert outcomes["corrupt"] > 0
