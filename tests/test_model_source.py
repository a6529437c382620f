"""A user's model file through reds_tf: read in every format, nested, permuted and solved like a zoo model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from reds_tf import costs, importance, model_source, nested, permute, solve, topology, zoo
from reds_tf._keras import keras
from reds_tf.cli import main
from reds_tf.data import fashion_mnist
from reds_tf.errors import ModelFileError
from tests.byom_models import dense_autoencoder, keras_app_mobilenet, kws_ds_cnn, save_as
from tests.conftest import random_input, random_plan, randomize

TINY = Path(__file__).resolve().parents[1] / "models" / "tiny-fashion_mnist.yaml"


@pytest.mark.parametrize("fmt", ["keras", "h5", "savedmodel"])
def test_every_format_loads_with_its_weights(tmp_path, fmt):
    model = randomize(kws_ds_cnn())
    path = save_as(model, tmp_path, fmt)
    loaded = model_source.build(str(path), num_classes=12, input_shape=(49, 10, 1))
    x = random_input(model)
    assert np.array_equal(model(x, training=False).numpy(), loaded(x, training=False).numpy())
    assert topology.graph_of(loaded).full_widths == topology.graph_of(model).full_widths


# (builder, file format, solver width step: steps of 4 keep the wide models' MILPs to seconds)
USERS_MODELS = {
    "kws_ds_cnn": (kws_ds_cnn, "h5", 1),
    "autoencoder": (dense_autoencoder, "h5", 4),
    "mobilenet_v1_0.25": (lambda: zoo.mobilenet_v1(0.25, softmax=True), "keras", 4),
    "resnet8": (lambda: zoo.resnet8(softmax=True), "savedmodel", 1),
    "keras_app_mobilenet": (keras_app_mobilenet, "keras", 1),
}


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n.startswith("mobilenet") else n for n in USERS_MODELS],
)
def test_users_model_nests_permutes_and_solves(tmp_path, name):
    make, fmt, step = USERS_MODELS[name]
    model = model_source.load_file(save_as(randomize(make()), tmp_path, fmt))
    x = random_input(model)
    ref = model(x, training=False).numpy()

    # Permuted by random scores: every unit moves, the function stays.
    scores = importance.random_scores(model, seed=3)
    perm, _ = permute.sort_model(model, scores)
    assert permute.max_abs_diff(model, perm, x) < 1e-5

    graph = topology.graph_of(model)
    net = nested.make_nested(perm, random_plan(graph, levels=3, seed=2))
    with nested.level_scope(net, 2):
        assert np.max(np.abs(net(x, training=False).numpy() - ref)) < 1e-5
    with nested.level_scope(net, 0):
        small = net(x, training=False).numpy()
    assert np.max(np.abs(nested.extract_level(net, 0)(x, training=False).numpy() - small)) < 1e-5

    budgets = [0.25, 0.5, 0.75]
    report = solve.solve(
        graph, importance.magnitude_scores(perm), [solve.Budget(b) for b in budgets], granularity=step
    )
    full = costs.macs(graph, graph.full_widths)
    for b, widths in zip(budgets, report.plan.widths, strict=False):
        assert costs.macs(graph, widths) <= b * full


def test_missing_file_names_path_and_fix(tmp_path):
    with pytest.raises(ModelFileError, match=r"Model file not found. Received: model='.*nope.h5'"):
        model_source.build(str(tmp_path / "nope.h5"))


def test_directory_that_is_not_a_savedmodel(tmp_path):
    with pytest.raises(ModelFileError, match="directory without saved_model.pb"):
        model_source.load_file(tmp_path)


def test_unknown_zoo_name_lists_zoo_and_files():
    with pytest.raises(ModelFileError, match="Unknown model. Received: model='resnet_9000'.*ds_cnn_s"):
        model_source.check("resnet_9000")


def test_file_must_fit_the_data_and_takes_no_options(tmp_path):
    path = str(save_as(kws_ds_cnn(), tmp_path, "keras"))
    with pytest.raises(ModelFileError, match=r"takes inputs of shape \(49, 10, 1\); the dataset gives"):
        model_source.build(path, num_classes=12, input_shape=(28, 28, 1))
    with pytest.raises(ModelFileError, match="outputs 12 values; the dataset has 10 classes"):
        model_source.build(path, num_classes=10, input_shape=(49, 10, 1))
    with pytest.raises(ModelFileError, match="model_options apply to zoo architectures only"):
        model_source.build(path, {"filters": 8})


@pytest.mark.parametrize("fmt", ["h5", "savedmodel"])
def test_cli_solve_takes_a_model_file_and_says_it_uses_magnitude_scores(tmp_path, fmt):
    path = save_as(randomize(kws_ds_cnn()), tmp_path, fmt)
    out = tmp_path / "plan.json"
    res = CliRunner().invoke(main, ["solve", "--model", str(path), "--macs", "0.5", "--out", str(out)])
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    assert "L1-magnitude" in doc["scores_source"] and "not Taylor" in doc["scores_source"]
    assert "fresh init" not in doc["scores_source"]  # the file's own weights were ranked
    assert doc["per_level"][0]["macs_pct"] <= 50 and doc["per_level"][-1]["macs_pct"] == 100


def test_recipe_with_a_model_file_and_npz_data_starts_from_its_weights(tmp_path):
    """`reds run` on a user's trained .h5 and their own .npz arrays (a real Fashion-MNIST subset), with
    pretrain epochs 0: the pretrained model IS the file's model, and REDS nests it."""
    x_tr, y_tr, x_te, y_te = fashion_mnist.load_arrays()
    data = tmp_path / "data"
    data.mkdir()
    np.savez(data / "train.npz", x=x_tr[:1200], y=y_tr[:1200])
    np.savez(data / "test.npz", x=x_te[:300], y=y_te[:300])
    keras.utils.set_random_seed(0)
    x = inputs = keras.Input((28, 28, 1))
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(32, activation="relu")(x)
    user = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x), name="users_mlp")
    user.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    user.fit(x_tr[:1200] / 255.0, y_tr[:1200], epochs=2, batch_size=50, verbose=0)
    user_acc = user.evaluate(x_te[:300] / 255.0, y_te[:300], verbose=0)[1]
    path = save_as(user, tmp_path, "h5")

    recipe = yaml.safe_load(TINY.read_text())
    recipe.pop("model_options")
    recipe.update(model=str(path), dataset="npz", pretrain={"epochs": 0})
    recipe_path = tmp_path / "byom.yaml"
    recipe_path.write_text(yaml.safe_dump(recipe))
    run_dir = tmp_path / "run"
    args = [
        "run",
        "--recipe",
        str(recipe_path),
        "--run-dir",
        str(run_dir),
        "--data-dir",
        str(data),
        "--quiet",
    ]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    pre = keras.models.load_model(run_dir / "pretrained.keras", compile=False)
    for a, b in zip(pre.get_weights(), user.get_weights(), strict=True):
        assert np.array_equal(a, b)
    results = json.loads((run_dir / "results.json").read_text())
    assert results["pretrained"]["test_accuracy"] == pytest.approx(user_acc, abs=1e-6) and user_acc > 0.6
    assert len(results["levels"]) == 4 and results["levels"][-1]["macs_pct"] == 100.0

    # The run recorded the file's digest: after the file changes, resuming is refused before any work.
    keras.utils.set_random_seed(1)
    keras.models.clone_model(user).save(path)
    again = CliRunner().invoke(main, args + ["--resume"])
    assert again.exit_code != 0 and "model_file_sha256" in again.output, again.output


def test_recipe_with_a_missing_model_file_fails_before_loading_data(tmp_path):
    recipe = yaml.safe_load(TINY.read_text())
    recipe.pop("model_options")
    recipe.update(model=str(tmp_path / "gone.keras"), dataset="vww")  # vww is not here: never reached
    recipe_path = tmp_path / "gone.yaml"
    recipe_path.write_text(yaml.safe_dump(recipe))
    res = CliRunner().invoke(main, ["run", "--recipe", str(recipe_path), "--run-dir", str(tmp_path / "r")])
    assert res.exit_code != 0 and "Model file not found" in res.output
