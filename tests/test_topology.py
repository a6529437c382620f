"""Keras -> Graph: groups, op kinds, Flatten handling, bias folding, unsupported layers."""

from __future__ import annotations

import pytest

from reds_tf import zoo
from reds_tf._keras import keras
from reds_tf.errors import UnsupportedLayerError
from reds_tf.graph import INPUT
from reds_tf.nested import make_nested
from reds_tf.topology import analyse, graph_of, layer_roles, unit_groups

L = keras.layers


def test_ds_cnn_s_groups_and_ops():
    g = graph_of(zoo.build("ds_cnn_s"))
    assert g.group_names == ("conv1", "pw1", "pw2", "pw3", "pw4")
    assert g.full_widths == (64,) * 5
    conv1, dw1, fc = g.op("conv1"), g.op("dw1"), g.op("fc")
    assert (conv1.kind, conv1.in_group, conv1.out_group, conv1.inputs) == ("conv2d", None, 0, (INPUT,))
    assert conv1.out_hw == (25, 5) and conv1.kernel == (10, 4) and conv1.bias  # folded BN
    assert (dw1.kind, dw1.in_group, dw1.out_group) == ("depthwise", 0, 0)
    assert (fc.kind, fc.in_group, fc.out_group, fc.out_full) == ("dense", 4, None, 12)
    assert fc.bias and g.input_hw == (49, 10) and g.input_channels == 1


def test_members_of_a_depthwise_chain():
    members = {m.name: m for m in unit_groups(zoo.build("ds_cnn_s"))}
    m = members["pw1"]
    assert m.producer == "pw1" and m.tied == ("bn_pw1", "dw2", "bn_dw2") and m.consumers == (("pw2", 1),)
    assert members["pw4"].consumers == (("fc", 1),)


def test_flatten_to_dense_keeps_spatial_size():
    model = zoo.build("cnn_s")
    g = graph_of(model)
    fc = g.op("fc_linear")
    assert fc.in_hw == (16, 4) and fc.in_group == g.group_names.index("conv2") and fc.in_full == 30
    assert layer_roles(model)["fc_linear"].in_positions == 64
    members = {m.name: m for m in unit_groups(model)}
    assert members["conv2"].consumers == (("fc_linear", 64),)
    # DNN: Flatten of the (fixed) input.
    d = graph_of(zoo.build("dnn_s")).op("fc1")
    assert d.in_group is None and d.in_hw == (25, 10) and d.in_full == 1


def test_sequential_and_nested_models_give_the_same_graph():
    seq = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            L.Conv2D(4, 3, name="c"),
            L.ReLU(name="r"),
            L.GlobalAveragePooling2D(name="p"),
            L.Dense(2, name="out"),
        ]
    )
    g = graph_of(seq)
    assert g.group_names == ("c",) and g.op("out").out_group is None and g.op("c").bias
    assert graph_of(make_nested(seq)).to_dict()["ops"] == g.to_dict()["ops"]


def test_classifier_behind_passthrough_layers_is_fixed():
    x = keras.Input((6,))
    y = L.Dense(5, name="hidden")(x)
    y = L.Dense(3, name="logits")(y)
    y = L.Dropout(0.1, name="drop")(y)
    y = L.Activation("softmax", name="sm")(y)
    g = graph_of(keras.Model(x, y))
    assert g.group_names == ("hidden",) and g.op("logits").out_group is None


@pytest.mark.parametrize(
    "make, match",
    [
        (
            lambda x: L.Conv2DTranspose(2, 3, name="up")(x),
            "Layer 'up' of class Conv2DTranspose is not supported",
        ),
        (lambda x: L.LayerNormalization(name="ln")(x), "Layer 'ln' of class LayerNormalization"),
        (lambda x: L.Concatenate(name="cat")([x, x]), "Layer 'cat' of class Concatenate"),
        (lambda x: L.SeparableConv2D(2, 3, name="sep")(x), "Fix: replace it by DepthwiseConv2D followed"),
        (
            lambda x: L.Reshape((8, 16), name="rs")(x),
            "Layer 'rs' of class Reshape.*Fix: keep the channel axis",
        ),
        (
            lambda x: L.DepthwiseConv2D(3, depth_multiplier=2, name="dw")(x),
            "Layer 'dw' of class DepthwiseConv2D",
        ),
    ],
)
def test_unsupported_layer_named(make, match):
    x = keras.Input((8, 8, 2))
    y = L.Flatten()(make(x))
    model = keras.Model(x, L.Dense(2)(y))
    with pytest.raises(UnsupportedLayerError, match=match) as info:
        graph_of(model)
    assert "Supported layers: InputLayer, DepthwiseConv2D (depth_multiplier=1" in str(info.value)


def test_dense_on_a_feature_map_is_rejected():
    x = keras.Input((4, 4, 2))
    model = keras.Model(x, L.Dense(3, name="d")(x))
    with pytest.raises(UnsupportedLayerError, match="Layer 'd' \\(Dense\\) reads a rank-4 tensor"):
        graph_of(model)


def test_every_zoo_model_converts():
    for name in zoo.names():
        g = graph_of(zoo.build(name))
        assert g.groups and g.ops[-1].name == "fc" and g.ops[-1].out_group is None


def test_resnet8_add_joins_the_groups_it_sums():
    members = {m.name: m for m in analyse(zoo.build("resnet8"))[1]}
    assert list(members) == ["conv1", "s1_conv1", "s2_conv1", "s2_conv2", "s3_conv1", "s3_conv2"]
    assert members["conv1"].producers == ("conv1", "s1_conv2")  # identity shortcut
    assert members["s2_conv2"].producers == ("s2_conv2", "s2_shortcut")  # 1x1 conv shortcut
    assert members["conv1"].tied == ("bn_conv1", "bn_s1_conv2")
    assert members["conv1"].consumers == (("s1_conv1", 1), ("s2_conv1", 1), ("s2_shortcut", 1))
    roles = analyse(zoo.build("resnet8"))[2]
    assert roles["s1_conv2"].out_group == "conv1" and roles["s2_add"].in_group == "s2_conv2"


def test_add_with_a_fixed_tensor_fixes_the_joined_group():
    x = keras.Input((4, 4, 3))
    y = L.Conv2D(3, 3, padding="same", name="c")(x)
    y = L.Add(name="add")([x, y])  # the model input has a fixed width, so must c
    z = L.Conv2D(5, 1, name="mid")(y)
    model = keras.Model(x, L.Dense(2, name="out")(L.Flatten()(z)))
    g = graph_of(model)
    assert g.group_names == ("mid",) and g.op("c").out_group is None and g.op("add").out_group is None


def test_add_of_different_shapes_is_rejected_with_a_fix():
    x = keras.Input((4, 4, 3))
    y = L.Add(name="add")([x, L.Conv2D(1, 1)(x)])  # broadcasts (4,4,1) over (4,4,3)
    with pytest.raises(UnsupportedLayerError, match=r"'add' \(Add\) sums tensors of different shapes.*Fix"):
        graph_of(keras.Model(x, L.Dense(2)(L.Flatten()(y))))
