"""Cost model cross-checks against counts taken independently from Keras layer shapes and TFLite."""

from __future__ import annotations

import numpy as np
import pytest

from reds_tf import costs, zoo
from reds_tf._keras import keras, tf
from reds_tf.nested import extract_level, make_nested
from reds_tf.topology import graph_of

from .conftest import random_plan, randomize

L = keras.layers


def keras_macs(model: keras.Model) -> int:
    """MACs counted from Keras layer input/output shapes only."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, L.DepthwiseConv2D):
            kh, kw = layer.kernel_size
            total += int(np.prod(layer.output_shape[1:])) * kh * kw
        elif isinstance(layer, L.Conv2D):
            kh, kw = layer.kernel_size
            total += int(np.prod(layer.output_shape[1:])) * kh * kw * layer.input_shape[-1]
        elif isinstance(layer, L.Dense):
            total += layer.input_shape[-1] * layer.units
    return total


def keras_trainable(model: keras.Model) -> int:
    return sum(int(w.shape.num_elements()) for w in model.trainable_weights)


def test_ds_cnn_s_full_width_against_hand_count():
    g = graph_of(zoo.build("ds_cnn_s"))
    full = g.full_widths
    # Written out from the architecture: conv 10x4 s2 "same" on 49x10 -> 25x5x64, 4 DS blocks, FC 12.
    hw = 25 * 5
    hand_macs = hw * 10 * 4 * 1 * 64 + 4 * (hw * 3 * 3 * 64 + hw * 64 * 64) + 64 * 12
    hand_params = 10 * 4 * 64 + 2 * 64 + 4 * (3 * 3 * 64 + 2 * 64 + 64 * 64 + 2 * 64) + 64 * 12 + 12
    assert hand_macs == 2_656_768 and hand_params == 23_180
    assert abs(costs.macs(g, full) - hand_macs) <= 0.01 * hand_macs
    assert abs(costs.params(g, full) - hand_params) <= 0.01 * hand_params
    # int8 deployment: BN folded into a bias per conv/dw/pw channel (int32), int8 kernels.
    hand_bytes = 10 * 4 * 64 + 4 * (9 * 64 + 64 * 64) + 64 * 12 + 4 * (64 + 4 * 2 * 64 + 12)
    assert costs.weight_bytes(g, full, "int8") == hand_bytes
    # Peak activation memory: the widest op reads and writes a 25x5x64 int8 tensor.
    assert costs.peak_memory(g, full) == 2 * hw * 64


@pytest.mark.parametrize("name", zoo.names() + ["mobilenet_v1@1.0"])
def test_full_width_macs_and_params_match_keras(name):
    model = zoo.build("mobilenet_v1", alpha=1.0) if name == "mobilenet_v1@1.0" else zoo.build(name)
    g = graph_of(model)
    assert costs.macs(g, g.full_widths) == keras_macs(model)
    assert costs.params(g, g.full_widths) == keras_trainable(model)


def test_resnet8_by_hand():
    """MLPerf Tiny IC ResNet-8 on 32x32x3: 12.5 M MACs; the Add keeps its skip tensor live."""
    g = graph_of(zoo.build("resnet8"))
    hand_macs = (
        32 * 32 * 9 * (3 * 16 + 2 * 16 * 16)  # conv1, stack 1
        + 16 * 16 * (9 * 16 * 32 + 9 * 32 * 32 + 16 * 32)  # stack 2 with its 1x1 stride-2 shortcut
        + 8 * 8 * (9 * 32 * 64 + 9 * 64 * 64 + 32 * 64)  # stack 3
        + 64 * 10
    )
    assert costs.macs(g, g.full_widths) == hand_macs == 12_501_632
    # Widest step: stack 1's Add reads the skip (32x32x16) and the branch, writes its sum.
    assert costs.peak_memory(g, g.full_widths) == 3 * 32 * 32 * 16
    half = [w // 2 for w in g.full_widths]  # joined groups: one width for every tensor they add
    assert costs.peak_memory(g, half) == 3 * 32 * 32 * 8


def test_reference_sizes():
    def full_macs(name, **kw):
        g = graph_of(zoo.build(name, **kw))
        return costs.macs(g, g.full_widths)

    assert 27e6 < full_macs("ds_cnn_l") < 29e6  # "about 28 M MACs"
    assert 7.0e6 < full_macs("mobilenet_v1") < 8.0e6  # "about 7.5 M MACs" at alpha 0.25
    g = graph_of(zoo.build("mobilenet_v1", alpha=1.0))
    assert 3.1e6 < costs.params(g, g.full_widths) < 3.3e6  # "3.2 M params"


@pytest.mark.parametrize("name", ["ds_cnn_s", "cnn_s", "dnn_s", "resnet8"])
def test_level_costs_match_extracted_models(name):
    plain = zoo.build(name)
    g = graph_of(plain)
    plan = random_plan(g, levels=3, seed=9)
    nested = make_nested(plain, plan)
    per_level = costs.plan_costs(g, plan)
    for k in range(plan.num_levels):
        sub = extract_level(nested, k)
        assert per_level[k].macs == keras_macs(sub)
        assert per_level[k].params == keras_trainable(sub)
        assert costs.macs(graph_of(sub), graph_of(sub).full_widths) == per_level[k].macs
    assert per_level[0].macs_fraction < per_level[1].macs_fraction <= per_level[2].macs_fraction == 1.0


def tflite_weight_bytes(model: keras.Model) -> int:
    """Bytes of the weight/bias buffers of CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED in int8 TFLite."""
    from ai_edge_litert import schema_py_generated as S

    # Fresh layers have all-zero biases; the converter stores identical buffers once, so
    # give every bias (and BN, which folds into one) distinct values first.
    randomize(model, seed=0)
    rng = np.random.default_rng(0)

    def rep():
        for _ in range(4):
            yield [rng.normal(size=(1,) + model.input_shape[1:]).astype("float32")]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    m = S.ModelT.InitFromPackedBuf(bytearray(conv.convert()), 0)
    wanted = {
        S.BuiltinOperator.CONV_2D,
        S.BuiltinOperator.DEPTHWISE_CONV_2D,
        S.BuiltinOperator.FULLY_CONNECTED,
    }
    sg = m.subgraphs[0]
    total, seen = 0, set()
    for op in sg.operators:
        code = m.operatorCodes[op.opcodeIndex]
        if max(code.builtinCode, code.deprecatedBuiltinCode) not in wanted:
            continue
        for t in list(op.inputs)[1:]:
            buf = sg.tensors[t].buffer if t >= 0 else 0
            if buf and buf not in seen and m.buffers[buf].data is not None:
                seen.add(buf)
                total += len(m.buffers[buf].data)
    return total


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ds_cnn_s", "cnn_s"])
def test_int8_weight_bytes_match_tflite(name):
    model = zoo.build(name)
    g = graph_of(model)
    ours = costs.weight_bytes(g, g.full_widths, "int8")
    theirs = tflite_weight_bytes(model)
    assert abs(ours - theirs) <= 0.05 * theirs, (ours, theirs)


def test_int8_weight_bytes_match_tflite_fc2():
    model = zoo.build("fc2", hidden=32)
    g = graph_of(model)
    ours = costs.weight_bytes(g, g.full_widths, "int8")
    assert ours == 784 * 32 + 32 * 10 + 4 * (32 + 10)
    assert abs(ours - tflite_weight_bytes(model)) <= 0.05 * ours
