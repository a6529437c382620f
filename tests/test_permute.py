"""Permutation: function-preserving for every zoo architecture, sorted scores, errors."""

from __future__ import annotations

import numpy as np
import pytest

from reds_tf import zoo
from reds_tf._keras import keras
from reds_tf.errors import PlanError
from reds_tf.importance import random_scores
from reds_tf.nested import level_scope, make_nested
from reds_tf.permute import max_abs_diff, permutation_from_scores, permute_model, sort_model
from reds_tf.topology import graph_of

from .conftest import CHEAP_ARCHS, random_input, random_plan, randomize


@pytest.mark.parametrize("name", CHEAP_ARCHS)
def test_permutation_preserves_function(name):
    model = randomize(zoo.build(name), seed=11)
    before = [w.copy() for w in model.get_weights()]
    scores = random_scores(model, seed=5)
    permuted, sorted_scores = sort_model(model, scores)
    x = random_input(model, batch=4)
    assert max_abs_diff(model, permuted, x) < 1e-5
    # The permutation really moved units (so the check above could fail) ...
    first = graph_of(model).group_names[0]
    assert not np.array_equal(model.get_layer(first).kernel.numpy(), permuted.get_layer(first).kernel.numpy())
    # ... left the original alone, and sorted every group by descending score.
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    for g, s in sorted_scores.items():
        assert np.all(np.diff(s) <= 0) and sorted(s) == sorted(scores[g])


def test_a_wrong_permutation_is_detected():
    # Guard for the test above: permuting a producer without its BN/consumers changes outputs.
    model = randomize(zoo.build("ds_cnn_s"), seed=2)
    broken = keras.models.clone_model(model)
    broken.set_weights(model.get_weights())
    k = broken.get_layer("pw2").kernel
    k.assign(k.numpy()[..., ::-1])
    assert max_abs_diff(model, broken, random_input(model)) > 1e-3


def test_nested_model_with_per_level_stats():
    plain = randomize(zoo.build("ds_cnn_s"), seed=3)
    nested = make_nested(plain, random_plan(graph_of(plain), 2), stats_per_level=True)
    rng = np.random.default_rng(0)
    bn = nested.get_layer("bn_pw2")
    bn.moving_mean.assign(rng.normal(size=bn.moving_mean.shape))
    permuted = permute_model(nested, permutation_from_scores(random_scores(nested, seed=1)))
    x = random_input(plain)
    assert max_abs_diff(nested, permuted, x) < 1e-5
    assert type(permuted.get_layer("bn_pw2")) is type(bn)
    with level_scope(permuted, 0), level_scope(nested, 0):  # levels now keep other units
        assert max_abs_diff(nested, permuted, x) > 1e-5


def test_permutation_from_scores_is_stable_descending():
    p = permutation_from_scores({"a": np.array([1.0, 3.0, 3.0, 2.0])})["a"]
    np.testing.assert_array_equal(p, [1, 2, 3, 0])


def test_bad_permutations_raise():
    model = zoo.build("fc2", hidden=4)
    with pytest.raises(PlanError, match=r"Permutation of group 'fc1' must be a permutation of range\(4\)"):
        permute_model(model, {"fc1": np.array([0, 0, 1, 2])})
    with pytest.raises(PlanError, match=r"Unknown unit groups \['nope'\]"):
        permute_model(model, {"nope": np.arange(3)})
