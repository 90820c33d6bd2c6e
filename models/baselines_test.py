"""Baselines: causal single-domain SASRec, the LightGCN ranker and popularity."""
import numpy as np
import tensorflow as tf

from models import baselines, feature_spec, psg
from models.config import ModelConfig

T = 5
POP = (np.arange(31, dtype=np.float32), np.arange(21, dtype=np.float32)[::-1].copy())


def sasrec(sasrec_negatives=8):
    tf.keras.utils.set_random_seed(0)
    cfg = ModelConfig(kind="sasrec", embedding_dim=16, num_heads=2, num_blocks=1, dropout=0.0,
                      sasrec_negatives=sasrec_negatives)
    return baselines.SASRec(30, 20, cfg, POP, T)


def batch():
    return {feature_spec.HISTORY_X: tf.constant([[0, 0, 1, 2, 3], [0, 0, 0, 0, 0], [0, 4, 5, 6, 7]], tf.int64),
            feature_spec.HISTORY_Y: tf.constant([[0, 0, 0, 1, 2], [0, 0, 3, 4, 5], [0, 0, 0, 0, 0]], tf.int64),
            feature_spec.TARGET_ITEM: tf.constant([4, 6, 25], tf.int64),
            feature_spec.TARGET_DOMAIN: tf.constant([0, 1, 0], tf.int64)}


def test_sasrec_is_causal():
    m = sasrec()
    seq = tf.constant([[0, 1, 2, 3, 4]], tf.int64)
    changed = tf.constant([[0, 1, 2, 3, 9]], tf.int64)
    a, _ = m.encoders[0](seq)
    b, _ = m.encoders[0](changed)
    np.testing.assert_allclose(a.numpy()[0, :4], b.numpy()[0, :4], rtol=1e-5, atol=1e-6)  # earlier positions
    assert not np.allclose(a.numpy()[0, 4], b.numpy()[0, 4])


def test_sasrec_padding_invariant_and_popularity_without_history():
    m = sasrec()
    sx, sy = m.score_all(batch())
    trimmed = {k: (v[:, 1:] if k in (feature_spec.HISTORY_X, feature_spec.HISTORY_Y) else v)
               for k, v in batch().items()}
    tx, ty = m.score_all(trimmed)
    np.testing.assert_allclose(sx.numpy(), tx.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sy.numpy(), ty.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(sx.numpy()[1], POP[0])  # no X history: popularity fallback
    np.testing.assert_array_equal(sy.numpy()[2], POP[1])
    assert not np.allclose(sx.numpy()[0], POP[0])


def test_sasrec_trains_each_domain_on_its_own_rows():
    # row 2's target (25) is an X index beyond Y's 20 items: Y's loss must never look it up
    m = sasrec()
    m.compile(optimizer=tf.keras.optimizers.Adam(0.01))
    total, terms = m.losses_and_terms(batch())
    assert np.isfinite(total.numpy()) and terms["rec_x"].numpy() > 0 and terms["rec_y"].numpy() > 0
    only_x = dict(batch(), **{feature_spec.TARGET_DOMAIN: tf.constant([0, 0, 0], tf.int64)})
    assert float(m.losses_and_terms(only_x)[1]["rec_y"]) == 0.0
    with tf.GradientTape() as tape:
        loss = m.losses_and_terms(only_x)[0]
    grads = tape.gradient(loss, m.encoders[1].trainable_variables)
    assert all(g is None or float(tf.norm(g)) == 0 for g in grads)  # Y's SASRec is untouched by X rows
    first = float(m.losses_and_terms(batch(), training=False)[0])
    for _ in range(30):
        m.train_step(batch())
    assert float(m.losses_and_terms(batch(), training=False)[0]) < first


def test_sasrec_full_softmax_is_the_cross_entropy_over_every_item_at_each_real_position():
    m = sasrec(sasrec_negatives=0)
    _, terms = m.losses_and_terms(batch(), training=False)
    # X rows 0 and 2: every real history position predicts the next item, the last the target
    expected = []
    for row, labels in ((0, [2, 3, 4]), (2, [5, 6, 7, 25])):
        history = batch()[feature_spec.HISTORY_X][row:row + 1]
        states = m.encoders[0](history)[0].numpy()[0, -len(labels):]
        logits = states @ m.item_emb[0].embeddings.numpy()[1:].T
        log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        expected += [-log_softmax[i, label - 1] for i, label in enumerate(labels)]
    np.testing.assert_allclose(terms["rec_x"].numpy(), np.mean(expected), rtol=1e-5)
    assert np.isfinite(terms["rec_y"].numpy()) and terms["rec_y"].numpy() > 0


def test_lightgcn_ranker_scores_fold_in_user():
    rng = np.random.default_rng(0)
    ex, ey = rng.normal(size=(31, 4)).astype(np.float32), rng.normal(size=(21, 4)).astype(np.float32)
    m = baselines.LightGCNRanker(ex, ey)
    sx, sy = m.score_all(batch())
    user = psg.fold_in(ex, ey, batch()[feature_spec.HISTORY_X], batch()[feature_spec.HISTORY_Y]).numpy()
    np.testing.assert_allclose(sx.numpy(), user @ ex.T, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(sy.numpy(), user @ ey.T, rtol=1e-5, atol=1e-5)
    assert not m.trainable_variables


def test_popularity_ranker_broadcasts_counts():
    sx, sy = baselines.PopularityRanker(POP).score_all(batch())
    assert sx.shape == (3, 31) and np.all(sx.numpy() == POP[0]) and np.all(sy.numpy() == POP[1])
