"""The sampled retrieval loss (TFRS' task with logQ and accidental hits), the switch at
`train.full_softmax_max_items`, and the lazy Adam's sparse updates."""
import numpy as np
import pytest
import tensorflow as tf

from models import config, feature_spec, retrieval
from models.trainer import build_model
from tests.tiny_models import NX, NY, TP, T, features

NEGATIVES = np.array([3, 5, 2], np.int64)


def test_the_loss_is_the_logq_corrected_softmax_over_in_batch_and_sampled_items_without_accidental_hits(
        monkeypatch):
    popularity = np.array([0, 9, 4, 2, 0, 7], np.float64)  # items 1..5 of a domain, 0 = padding
    layer = retrieval.SampledRetrieval(popularity, num_negatives=len(NEGATIVES))
    monkeypatch.setattr(tf.random, "categorical", lambda logits, n, dtype: tf.constant(NEGATIVES[None]))
    rng = np.random.default_rng(0)
    table = tf.keras.layers.Embedding(6, 4)
    table.build((None,))
    table.embeddings.assign(rng.normal(size=(6, 4)).astype(np.float32))
    h = rng.normal(size=(2, 3, 4)).astype(np.float32)
    targets = np.array([[2, 5, 1], [2, 4, 1]], np.int64)
    selected = np.array([[True, True, False], [True, False, False]])
    got = float(layer(tf.constant(h), table, tf.constant(targets), tf.constant(selected)))

    q = (popularity + 1) / (popularity + 1)[1:].sum()
    queries, positives = h[selected], targets[selected]  # positives 2, 5, 2: item 2 is two points' target
    candidates = np.concatenate([positives, NEGATIVES])
    logits = queries @ table.embeddings.numpy()[candidates].T - np.log(q[candidates])[None]
    nll = []
    for i, target in enumerate(positives):
        hits = (candidates == target) & (np.arange(len(candidates)) != i)  # its own item elsewhere: not a negative
        row = np.where(hits, -np.inf, logits[i])
        nll.append(np.log(np.exp(row - row.max()).sum()) + row.max() - logits[i, i])
    assert got == pytest.approx(float(np.mean(nll)), rel=1e-5)


def test_a_domain_above_the_threshold_trains_sampled_and_the_full_softmax_stays_below():
    cfg = config.load_config(overrides=["train.full_softmax_max_items=10"])
    x, y = retrieval.domain_losses((12, 9), None, cfg.train)
    assert isinstance(x, retrieval.SampledRetrieval) and y is None
    assert all(isinstance(s, retrieval.SampledRetrieval) for s in retrieval.domain_losses(
        (12, 9), None, config.load_config(overrides=["train.full_softmax_max_items=0"]).train))
    assert retrieval.domain_losses((40000, 32000), None, config.TrainConfig()) == (None, None)  # the Amazon pairs
    with pytest.raises(config.ConfigError, match="train.retrieval_negatives must be >= 1"):
        config.load_config(overrides=["train.retrieval_negatives=0"])


def test_lazy_adam_moves_only_the_rows_a_step_gathered():
    """Keras' Adam keeps moving a row its momentum remembers; the lazy one leaves every row a
    step did not gather as it was, and moves a gathered row as Adam would at that step."""
    def run(optimizer):
        table = tf.Variable(np.arange(10, dtype=np.float32).reshape(5, 2))
        for rows, grads in (([1, 3, 1], [[1.0, -1.0], [2.0, 0.5], [0.5, 0.5]]), ([0], [[1.0, 1.0]])):
            optimizer.apply_gradients([(tf.IndexedSlices(tf.constant(grads), tf.constant(rows, tf.int64),
                                                         tf.constant([5, 2], tf.int64)), table)])
        return table.numpy()

    lazy, dense = run(retrieval.LazyAdam(0.1)), run(tf.keras.optimizers.Adam(0.1))
    start = np.arange(10, dtype=np.float32).reshape(5, 2)
    np.testing.assert_array_equal(lazy[[2, 4]], start[[2, 4]])
    np.testing.assert_allclose(lazy[0], dense[0], rtol=1e-6)  # first gathered at step 2: as Adam at step 2
    assert not np.allclose(dense[1], lazy[1])  # Adam moved rows 1 and 3 again at step 2; the lazy one did not
    np.testing.assert_allclose(lazy[1], start[1] - 0.1 * np.sign([1.5, -0.5]), rtol=1e-4)  # Adam's first step
    np.testing.assert_allclose(lazy[3], start[3] - 0.1, rtol=1e-4)


@pytest.mark.parametrize("kind", ["i2vae", "sasrec"])
def test_a_model_forced_onto_the_sampled_loss_trains_with_sparse_item_table_gradients(kind):
    """No step-sized dense op over a catalogue: the item tables' gradients are the gathered
    rows only (what keeps a step at 1,000,000 items near one at 40,000)."""
    model = tiny_model(kind, "train.full_softmax_max_items=0", "train.retrieval_negatives=2")
    assert isinstance(model.optimizer, retrieval.LazyAdam)
    batch = {k: tf.constant(v) for k, v in features().items()}
    batch.update({feature_spec.TARGET_ITEM: tf.constant([3, 1, 7], tf.int64),
                  feature_spec.TARGET_DOMAIN: tf.constant([0, 1, 0], tf.int64),
                  feature_spec.IS_COLD_START: tf.constant([0, 0, 1], tf.int64)})
    model.score_all(batch)
    with tf.GradientTape() as tape:
        total, _ = model.losses_and_terms(batch, training=True)
    grads = dict(zip([v.name for v in model.trainable_variables], tape.gradient(total, model.trainable_variables)))
    tables = [name for name in grads if "item_emb" in name]
    assert len(tables) == 2 and all(isinstance(grads[name], tf.IndexedSlices) for name in tables)
    assert np.isfinite(float(tf.function(model.train_step, autograph=False)(batch)["loss"]))  # as fit runs it
    # below the threshold: the validated recipe as it was
    assert type(tiny_model(kind).optimizer) is tf.keras.optimizers.Adam


def tiny_model(kind, *overrides):
    cfg = config.load_config(overrides=[f"model.kind=\"{kind}\"", "model.embedding_dim=8", "model.latent_dim=4",
                                        "model.num_heads=2", "model.num_blocks=1", f"data.max_len={T}",
                                        f"data.pseudo_len={TP}", *overrides])
    return build_model((NX, NY), cfg, [np.ones(NX + 1), np.ones(NY + 1)])
