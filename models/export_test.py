"""Save and restore: checkpoints and the SavedModel give the trained model's exact scores,
for i2VAE and for every baseline kind."""
import os

import numpy as np
import pytest
import tensorflow as tf

from models import config, feature_spec, psg
from models.export import export_saved_model
from tests.tiny_models import TP, T, build, features, model_config


@pytest.mark.parametrize("kind", config.MODEL_KINDS)
def test_checkpoint_and_savedmodel_give_identical_scores(kind, examples_root, tmp_path):
    model, popularity = build(kind)
    expected = [s.numpy() for s in model.score_all({k: tf.constant(v) for k, v in features().items()})]
    model.save_weights(str(tmp_path / "ckpt"))
    restored, _ = build(kind)  # different perturbation, then the checkpoint
    restored.load_weights(str(tmp_path / "ckpt"))
    got = restored.score_all({k: tf.constant(v) for k, v in features().items()})
    for a, b in zip(expected, got):
        np.testing.assert_array_equal(a, b.numpy())
    export_saved_model(model, examples_root, popularity, model_config(kind), str(tmp_path / "saved"))
    out = tf.saved_model.load(str(tmp_path / "saved")).signatures["score_items"](
        **{k: tf.constant(v) for k, v in features().items()})
    np.testing.assert_allclose(out["scores_x"].numpy(), expected[0], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out["scores_y"].numpy(), expected[1], rtol=1e-6, atol=1e-6)


@pytest.mark.slow  # the w/o PSG ablation's training and export (about 20 s); `make test-slow`
def test_random_pseudo_source_exports_and_recommends_unseen(examples_root, tmp_path):
    model, popularity = build("i2vae")
    cfg = model_config("i2vae")
    cfg.lightgcn.pseudo_source = "random"
    export_saved_model(model, examples_root, popularity, cfg, str(tmp_path / "saved"))
    recommend = tf.saved_model.load(str(tmp_path / "saved")).signatures["serving_default"]
    out = recommend(history_x=tf.constant([["item0", "item1"]]), history_y=tf.constant([["item2", ""]]))
    top = [t.decode() for t in out["top_ids_x"].numpy()[0]]
    assert len(top) == 10 and "item0" not in top and "item1" not in top


HISTORIES_X = [["item0", "item1", "", ""], ["", "", "", ""], ["", "", "", ""], ["unknown", "", "", ""],
               ["item3", "item4", "item5", "item6"]]
HISTORIES_Y = [["item2", ""], ["item3", ""], ["", ""], ["item1", "item8"], ["", ""]]


def ranked_by_every_item(model, generator, popularity, k):
    """What `serving_default` returned before the top-K layers: every item of a domain
    scored, popularity where the row has no known history, seen items masked, top k."""
    def indices(histories):
        known = [[int(i[len("item"):]) + 1 for i in h if i.startswith("item")] for h in histories]
        return tf.constant(psg.left_pad(known, T))

    hx, hy = indices(HISTORIES_X), indices(HISTORIES_Y)
    user = psg.fold_in(generator["item_emb_x"], generator["item_emb_y"], hx, hy)
    pseudo = [psg.compose_pseudo(h, psg.recall_unseen(user, generator[name], h, TP), TP)
              for h, name in ((hx, "item_emb_x"), (hy, "item_emb_y"))]
    scores = model.score_all({feature_spec.HISTORY_X: hx, feature_spec.HISTORY_Y: hy, feature_spec.PSEUDO_X: pseudo[0],
                              feature_spec.PSEUDO_Y: pseudo[1]})
    no_history = ~tf.reduce_any(tf.concat([hx, hy], 1) > 0, 1)[:, None]
    out = []
    for d, h in ((0, hx), (1, hy)):
        s = tf.where(no_history, tf.broadcast_to(tf.constant(popularity[d], tf.float32), tf.shape(scores[d])), scores[d])
        values, top = tf.math.top_k(psg.mask_seen(s, h), k=min(k, s.shape[1] - 1))
        out.append(np.where(values.numpy() > psg.NEG_INF / 2, top.numpy(), 0))
    return out


# the default suite keeps every kind exact and each approximate path once; the other two i2VAE
# variants (about 20 s each) run in `make test-slow`
@pytest.mark.parametrize("kind, approximate", [(kind, False) for kind in config.MODEL_KINDS]
                         + [pytest.param("i2vae", True, marks=pytest.mark.slow), ("sasrec", True),
                            pytest.param("i2vae+graph", False, marks=pytest.mark.slow), ("i2vae+graph", True)])
def test_the_top_k_layer_recommends_what_ranking_every_item_would(kind, approximate, examples_root, tmp_path):
    """Serving's top-K (TFRS' BruteForce over the item table, then the history's items
    removed, popularity for rows without a query) returns the items, in order, that scoring
    every item and masking would: a normal row, a cold-start row, an empty and an unknown
    history, and a history that leaves fewer than K unseen items of a small domain. Above
    `serving.approximate_above_items` top-K and recall go through `InvertedFile`, which on
    these few items has one cell, so it must agree too. "+graph": the i2VAE with the
    generator's graph blended in (models/graph_blend.py), searched as one dot product."""
    kind, graph = kind.split("+")[0], kind.endswith("+graph")
    model, popularity = build(kind)
    if graph:
        model.attach_graph_blend(psg.graph_item_embeddings(examples_root))
        model.graph_weight.assign(0.3)
    cfg = model_config(kind)
    cfg.serving.approximate_above_items = 1 if approximate else cfg.serving.approximate_above_items
    export_saved_model(model, examples_root, popularity, cfg, str(tmp_path / "saved"))
    recommend = tf.saved_model.load(str(tmp_path / "saved")).signatures["serving_default"]
    out = recommend(history_x=tf.constant(HISTORIES_X), history_y=tf.constant(HISTORIES_Y))
    generator = psg.load_generator(os.path.join(examples_root, psg.GENERATOR_DIR))
    for d, expected in zip("xy", ranked_by_every_item(model, generator, popularity, 10)):
        got = [[int(i.decode()[len("item"):]) + 1 if i else 0 for i in row] for row in out[f"top_ids_{d}"].numpy()]
        np.testing.assert_array_equal(got, expected)
    top_y = out["top_ids_y"].numpy()  # 9 Y items: K is 9, and a row with a seen Y item has fewer left
    assert top_y.shape[1] == 9 and top_y[0, -1] == b"" and list(top_y[3, -2:]) == [b"", b""] and top_y[2, -1] != b""
