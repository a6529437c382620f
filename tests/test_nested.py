"""Nested models: level k == plain model of those widths, level switching, save/load, errors."""

from __future__ import annotations

import numpy as np
import pytest

from reds_tf import zoo
from reds_tf._keras import keras, tf
from reds_tf.errors import NotARedsModelError, PlanError, UnsupportedLayerError
from reds_tf.layers import NestedBatchNormalization, NestedDense
from reds_tf.nested import (
    extract_level,
    level_scope,
    load_model,
    make_nested,
    num_levels,
    plan_of,
    save_model,
    set_level,
    set_plan,
)
from reds_tf.plan import WidthPlan
from reds_tf.topology import graph_of

from .conftest import CHEAP_ARCHS, random_input, random_plan, randomize

L = keras.layers


def independent_plain(model: keras.Model, widths: dict[str, int]) -> keras.Model:
    """A plain model of the given group widths, built layer by layer from numpy slices.

    Written without reds_tf.nested/topology: the group of a tensor follows the zoo naming
    (every Conv2D/Dense except the classifier ``fc`` starts a group named after it; an Add
    makes its inputs' groups one, named after the earliest of them).
    """
    order = [layer.name for layer in model.layers]
    alias: dict[str, str] = {}

    def root(g: str | None) -> str | None:
        while g in alias:
            g = alias[g]
        return g

    raw: dict[str, str | None] = {}
    for layer in model.layers[1:]:  # after the InputLayer
        srcs = [t._keras_history.layer.name for t in tf.nest.flatten(layer.input)]
        if isinstance(layer, (L.Conv2D, L.Dense)) and not isinstance(layer, L.DepthwiseConv2D):
            raw[layer.name] = None if layer.name == "fc" else layer.name
        else:
            raw[layer.name] = raw.get(srcs[0])
        if isinstance(layer, L.Add):
            first, *rest = sorted({root(raw[s]) for s in srcs}, key=order.index)
            alias.update({g: first for g in rest})
    group: dict[str, str | None] = {}
    tensors: dict[str, object] = {}
    inp = keras.Input(model.input_shape[1:])
    for layer in model.layers:
        if isinstance(layer, L.InputLayer):
            group[layer.name], tensors[layer.name] = None, inp
            continue
        if isinstance(layer, L.Add):
            srcs = [t._keras_history.layer.name for t in layer.input]
            tensors[layer.name] = L.Add.from_config(layer.get_config())([tensors[s] for s in srcs])
            group[layer.name] = group[srcs[0]]
            continue
        src = layer.input._keras_history.layer
        g_in = group[src.name]
        w_in = widths[g_in] if g_in else None
        cfg = layer.get_config()
        ws = layer.get_weights()
        if isinstance(layer, (L.Conv2D, L.Dense)) and not isinstance(layer, L.DepthwiseConv2D):
            g_out = None if layer.name == "fc" else root(layer.name)
            w_out = widths[g_out] if g_out else ws[0].shape[-1]
            key = "filters" if isinstance(layer, L.Conv2D) else "units"
            cfg[key] = w_out
            k = ws[0]
            if isinstance(layer, L.Dense):
                positions = int(np.prod(src.input_shape[1:-1])) if isinstance(src, L.Flatten) else 1
                c_full = k.shape[0] // positions
                k = k.reshape(positions, c_full, -1)[:, : (w_in or c_full), :w_out].reshape(-1, w_out)
            else:
                k = k[:, :, : (w_in or k.shape[2]), :w_out]
            ws = [k] + [b[:w_out] for b in ws[1:]]
        else:
            g_out = g_in
            if isinstance(layer, L.DepthwiseConv2D):
                ws = [ws[0][:, :, :w_in]] + [b[:w_in] for b in ws[1:]] if w_in else ws
            elif isinstance(layer, L.BatchNormalization):
                ws = [v[:w_in] for v in ws] if w_in else ws
        new = type(layer).from_config(cfg)
        tensors[layer.name] = new(tensors[src.name])
        if ws:
            new.set_weights(ws)
        group[layer.name] = g_out
    return keras.Model(inp, tensors[model.layers[-1].name])


SLOW_NESTED = ("mobilenet_v1", "ds_cnn_l")


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_NESTED else n for n in CHEAP_ARCHS]
)
def test_level_equals_plain_models(name):
    plain = randomize(zoo.build(name), seed=3)
    plan = random_plan(graph_of(plain), levels=3, seed=len(name))
    nested = make_nested(plain, plan)
    x = random_input(plain, batch=2)
    assert np.max(np.abs(nested(x).numpy() - plain(x).numpy())) < 1e-5  # level None = full
    for k in range(plan.num_levels):
        with level_scope(nested, k):
            y = nested(x, training=False).numpy()
        extracted = extract_level(nested, k)
        assert not any(
            isinstance(layer, (NestedDense, NestedBatchNormalization)) for layer in extracted.layers
        )
        assert np.max(np.abs(y - extracted(x).numpy())) < 1e-5
        if k == 0:  # the smallest level is where slicing mistakes show most
            ref = independent_plain(plain, dict(zip(plan.groups, plan.level(k), strict=True)))
            assert np.max(np.abs(y - ref(x).numpy())) < 1e-5
            assert extracted.count_params() == ref.count_params()
    # Smaller levels really differ (the test could fail if levels were ignored).
    with level_scope(nested, 0):
        assert np.max(np.abs(nested(x).numpy() - plain(x).numpy())) > 1e-4


def test_levels_switch_inside_one_trace_and_predict():
    plain = randomize(zoo.build("ds_cnn_s"), seed=1)
    plan = random_plan(graph_of(plain), levels=3, seed=5)
    nested = make_nested(plain, plan)
    x = random_input(plain, batch=3)

    @tf.function
    def all_levels(x):
        outs = []
        for k in range(3):
            set_level(nested, k)
            outs.append(nested(x, training=False))
        set_level(nested, None)
        return outs

    traced = [o.numpy() for o in all_levels(x)]
    for k in range(3):
        with level_scope(nested, k):
            np.testing.assert_allclose(traced[k], nested(x, training=False).numpy(), atol=1e-5)
    assert np.max(np.abs(traced[0] - traced[2])) > 1e-4
    for k in (0, 2):
        set_level(nested, k)  # predict() must not reuse a function traced at another level
        np.testing.assert_allclose(nested.predict(x, verbose=0), traced[k], atol=1e-5)
    set_level(nested, None)


def test_joint_gradient_over_levels_and_fit():
    inp = keras.Input((6, 6, 2))
    h = L.Conv2D(8, 3, use_bias=False, name="conv")(inp)
    h = L.BatchNormalization(name="bn")(h)
    h = L.ReLU()(h)
    h = L.GlobalAveragePooling2D()(h)
    plain = keras.Model(inp, L.Dense(12, name="fc")(h))
    plan = WidthPlan(("conv",), (8,), ((3,), (8,)))
    nested = make_nested(plain, plan, stats_per_level=True)
    x, y = random_input(plain, batch=8), np.arange(8) % 12
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    with tf.GradientTape() as tape:
        loss = 0.0
        for k in range(2):
            with level_scope(nested, k):
                loss += loss_fn(y, nested(x, training=True))
    grads = tape.gradient(loss, nested.trainable_variables)
    assert all(g is not None for g in grads)
    bn = nested.get_layer("bn")
    w0 = plan.column("conv")[0]
    mm = bn.moving_mean.numpy()
    assert np.all(mm[0, w0:] == 0) and np.any(mm[0, :w0] != 0) and np.any(mm[1] != 0)
    set_level(nested, 0)
    nested.compile(optimizer="adam", loss=loss_fn)
    hist = nested.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert np.isfinite(hist.history["loss"][0])


def test_level_scope_restores_and_validates():
    nested = make_nested(zoo.build("fc2", hidden=8), WidthPlan(("fc1",), (8,), ((2,), (8,))))
    assert num_levels(nested) == 2
    set_level(nested, 1)
    with level_scope(nested, 0):
        assert nested.get_layer("fc1").level == 0 and nested.get_layer("fc").level == 0
    assert nested.get_layer("fc1").level == 1
    with pytest.raises(PlanError, match=r"level must be in \[0, 1\] or None. Received: 2"):
        set_level(nested, 2)


def test_set_plan_and_plan_of():
    plain = zoo.build("cnn_s")
    g = graph_of(plain)
    nested = make_nested(plain)
    assert plan_of(nested) == WidthPlan.full_width(g.group_names, g.full_widths)
    plan = random_plan(g, levels=3, seed=7)
    set_plan(nested, plan)
    assert plan_of(nested) == plan and num_levels(nested) == 3
    assert nested.get_layer("fc_linear").in_widths == list(plan.column("conv2"))
    assert nested.get_layer("fc_linear").in_positions == 64
    wrong = WidthPlan(("a",), (3,), ((3,),))
    with pytest.raises(PlanError, match="Plan does not match model"):
        set_plan(nested, wrong)
    with pytest.raises(PlanError, match="Plan does not match model"):
        make_nested(plain, wrong)


def test_per_level_stats_need_same_level_count():
    plain = zoo.build("ds_cnn_s")
    g = graph_of(plain)
    nested = make_nested(plain, random_plan(g, 2), stats_per_level=True)
    with pytest.raises(PlanError, match="keeps BatchNorm statistics for 2 levels; the plan has 3"):
        set_plan(nested, random_plan(g, 3))


def test_renesting_a_nested_model():
    plain = randomize(zoo.build("ds_cnn_s"), seed=4)
    g = graph_of(plain)
    first = make_nested(plain, random_plan(g, 2, seed=1), stats_per_level=True)
    plan = random_plan(g, 3, seed=2)
    second = make_nested(first, plan)
    x = random_input(plain)
    np.testing.assert_allclose(second(x).numpy(), plain(x).numpy(), atol=1e-5)
    assert plan_of(second) == plan


def test_save_load_round_trip(tmp_path):
    plain = randomize(zoo.build("ds_cnn_s"), seed=6)
    plan = random_plan(graph_of(plain), levels=3, seed=3)
    nested = make_nested(plain, plan, stats_per_level=True)
    path = tmp_path / "sub" / "model.keras"
    save_model(nested, path)
    assert path.exists() and not [p for p in path.parent.iterdir() if p.name != "model.keras"]
    loaded = load_model(path)
    assert plan_of(loaded) == plan
    for a, b in zip(nested.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    x = random_input(plain)
    for k in range(3):
        with level_scope(nested, k), level_scope(loaded, k):
            np.testing.assert_array_equal(nested(x).numpy(), loaded(x).numpy())


def test_load_rejects_non_reds_files(tmp_path):
    with pytest.raises(NotARedsModelError, match="does not exist"):
        load_model(tmp_path / "missing.keras")
    junk = tmp_path / "junk.keras"
    junk.write_text("not a zip")
    with pytest.raises(NotARedsModelError, match="is not a Keras model reds_tf can read"):
        load_model(junk)
    plain = tmp_path / "plain.keras"
    zoo.build("fc2", hidden=4).save(plain)
    with pytest.raises(NotARedsModelError, match="plain Keras model without nested layers"):
        load_model(plain)
    with pytest.raises(NotARedsModelError, match="no nested layers"):
        save_model(zoo.build("fc2", hidden=4), tmp_path / "x.keras")
    with pytest.raises(ValueError, match="end it in '.keras'"):
        save_model(make_nested(zoo.build("fc2", hidden=4)), tmp_path / "x.h5")


def test_make_nested_names_first_unsupported_layer():
    x = keras.Input((8, 8, 1))
    y = L.Conv2D(4, 3, name="c")(x)
    y = L.LayerNormalization(name="norm")(y)
    y = L.UpSampling2D(name="up")(y)
    y = L.GlobalAveragePooling2D()(y)
    with pytest.raises(
        UnsupportedLayerError, match="Layer 'norm' of class LayerNormalization is not supported"
    ):
        make_nested(keras.Model(x, L.Dense(2)(y)))


def test_every_supported_plain_layer_type():
    inp = keras.Input((12, 10, 3))
    h = L.Conv2D(6, 3, padding="same", name="c1")(inp)
    h = L.BatchNormalization(name="bn1")(h)
    h = L.ReLU(max_value=6.0, name="relu6")(h)
    h = L.MaxPooling2D(2, name="maxpool")(h)
    h = L.DepthwiseConv2D(3, padding="same", name="dw")(h)
    h = L.LeakyReLU(0.1, name="leaky")(h)
    h = L.Conv2D(5, 1, activation="relu", name="pw")(h)
    h = L.AveragePooling2D((2, 1), name="avgpool")(h)
    h = L.Dropout(0.3, name="drop")(h)
    a = L.Flatten(name="flat")(h)
    a = L.Dense(7, name="hidden")(a)
    a = L.Activation("tanh", name="tanh")(a)
    out = L.Dense(4, activation="softmax", name="fc")(a)
    plain = randomize(keras.Model(inp, out), seed=8)
    g = graph_of(plain)
    assert g.group_names == ("c1", "pw", "hidden")
    plan = WidthPlan(g.group_names, g.full_widths, ((2, 1, 3), (4, 3, 5), g.full_widths))
    nested = make_nested(plain, plan)
    assert nested.get_layer("hidden").in_positions == 15
    x = random_input(plain, batch=3)
    np.testing.assert_allclose(nested(x).numpy(), plain(x).numpy(), atol=1e-6)
    for k in range(2):
        with level_scope(nested, k):
            np.testing.assert_allclose(nested(x).numpy(), extract_level(nested, k)(x).numpy(), atol=1e-6)
    seq = keras.Sequential([keras.Input((5,)), L.Dense(4, name="h"), L.ReLU(), L.Dense(2, name="o")])
    nseq = make_nested(seq, WidthPlan(("h",), (4,), ((1,), (4,))))
    xs = random_input(seq, batch=2)
    with level_scope(nseq, 0):
        np.testing.assert_allclose(nseq(xs).numpy(), extract_level(nseq, 0)(xs).numpy(), atol=1e-6)
