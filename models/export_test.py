"""Save and restore: checkpoints and the SavedModel give the trained model's exact scores,
for i2VAE and for every baseline kind."""
import numpy as np
import pytest
import tensorflow as tf

from models import config
from models.export import export_saved_model
from tests.tiny_models import build, features, model_config


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
