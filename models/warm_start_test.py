"""Warm start: rows carried over by raw id, new ids fresh, gone ids dropped; another kind
or shape of model is not loaded."""
import os

import numpy as np
import pytest

from models import feature_spec, warm_start
from tests import tiny_models


def test_rows_are_carried_by_raw_id_not_by_index():
    old = np.array([[1.0], [2.0], [3.0]])
    new = np.array([[0.0], [0.0], [0.0], [0.0]])
    rows, counts = warm_start.carry_rows(old, ["a", "b", "c"], new, ["c", "new", "a", "other"])
    assert rows[:, 0].tolist() == [3.0, 0.0, 1.0, 0.0]
    assert counts == {"carried": 2, "added": 2, "dropped": 1}  # b is gone


def _examples_root(root, vocab_x, vocab_y):
    """An examples root with these vocabularies and the tiny generator of `source`."""
    tiny_models.write_examples_root(root)
    for name, vocab in zip(feature_spec.VOCAB_FILES, (vocab_x, vocab_y)):
        feature_spec.write_lines(os.path.join(root, feature_spec.VOCAB_DIR, name), vocab)
    return str(root)


@pytest.mark.parametrize("kind", ["i2vae", "sasrec", "i2vae+graph"])
def test_a_model_warm_starts_from_the_bundle_with_a_changed_catalogue(tmp_path, kind):
    """"+graph": the served i2VAE scored with the generator graph blended in (its serving
    tables are wider than its item embeddings, which are what is carried)."""
    kind, graph = kind.split("+")[0], kind.endswith("+graph")
    old_x, old_y = [f"x{i}" for i in range(tiny_models.NX)], [f"y{i}" for i in range(tiny_models.NY)]
    model, _ = tiny_models.build(kind)
    if graph:
        rng = np.random.default_rng(0)
        model.attach_graph_blend([rng.normal(size=(n + 1, 3)) for n in (tiny_models.NX, tiny_models.NY)])
    uri = str(tmp_path / "model")
    warm_start.save_bundle(model, tiny_models.model_config(kind), _examples_root(tmp_path / "day1", old_x, old_y), uri)
    # day 2: x0 and x1 are gone, two new X items; the same number of items, in another order
    new_x = ["new_a"] + old_x[2:][::-1] + ["new_b"]
    root = _examples_root(tmp_path / "day2", new_x, old_y)
    fresh, _ = tiny_models.build(kind)
    initial = fresh.item_embeddings()[0].numpy()
    counts = warm_start.warm_start_model(fresh, tiny_models.model_config(kind), root, uri)
    assert counts == {"carried": tiny_models.NX - 2 + tiny_models.NY, "added": 2, "dropped": 2}
    old_table, new_table = (m.item_embeddings()[0].numpy() for m in (model, fresh))
    for j, raw in enumerate(new_x, 1):
        if raw in old_x:
            np.testing.assert_array_equal(new_table[j], old_table[old_x.index(raw) + 1])
        else:  # keeps its fresh initialisation
            np.testing.assert_array_equal(new_table[j], initial[j])
    np.testing.assert_array_equal(fresh.item_embeddings()[1].numpy(), model.item_embeddings()[1].numpy())
    tables = {t.ref() for t in fresh.item_embeddings()}
    for a, b in zip(model.trainable_variables, fresh.trainable_variables):
        if b.ref() not in tables:
            np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_a_model_of_another_kind_is_not_loaded(tmp_path):
    vocab_x, vocab_y = [f"x{i}" for i in range(tiny_models.NX)], [f"y{i}" for i in range(tiny_models.NY)]
    root = _examples_root(tmp_path / "day1", vocab_x, vocab_y)
    model, _ = tiny_models.build("sasrec")
    warm_start.save_bundle(model, tiny_models.model_config("sasrec"), root, str(tmp_path / "model"))
    fresh, _ = tiny_models.build("i2vae")
    before = [v.numpy() for v in fresh.trainable_variables]
    assert warm_start.warm_start_model(fresh, tiny_models.model_config("i2vae"), root, str(tmp_path / "model")) is None
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(before, fresh.trainable_variables))


def test_the_generator_lightgcn_carries_users_and_items_by_raw_id(tmp_path):
    root = _examples_root(tmp_path / "day1", ["a", "b"], ["c"])
    uri = str(tmp_path / "model")
    model, _ = tiny_models.build("sasrec")
    warm_start.save_bundle(model, tiny_models.model_config("sasrec"), root, uri)
    # the day-1 generator: users u1, u2 then items x:a, x:b, y:c
    os.makedirs(os.path.join(uri, warm_start.BUNDLE_DIR), exist_ok=True)
    warm_start._write_npz(os.path.join(uri, warm_start.BUNDLE_DIR, warm_start.GENERATOR),
                          {"layer0": np.arange(5, dtype=np.float32)[:, None], "user_ids": np.array(["u1", "u2"])})
    fresh = np.full((5, 1), -1.0, np.float32)  # users u2, u3; items x:b, x:new, y:c
    rows, counts = warm_start.warm_start_lightgcn(fresh, ["u2", "u3"], ["b", "new"], ["c"], uri)
    assert rows[:, 0].tolist() == [1.0, -1.0, 3.0, -1.0, 4.0]
    assert counts == {"users": {"carried": 1, "added": 1, "dropped": 1},
                      "items": {"carried": 2, "added": 1, "dropped": 1}}
