"""i2VAE: KL closed forms, the noise-adaptive weight, padding invariance, cold-start routing."""
import math

import numpy as np
import pytest
import tensorflow as tf

from models import feature_spec
from models.config import ModelConfig, TrainConfig
from models.i2vae import I2VAE, tfd
from models.objective import noise_adaptive_weight
from models.sasrec_encoder import masked_mean, pool_history

T, TP = 5, 8


def small_model(pooling="mean", encoder="bidirectional", residual_state=False, detach_latents=False, **train):
    tf.keras.utils.set_random_seed(0)
    return I2VAE(30, 20, ModelConfig(embedding_dim=16, latent_dim=8, num_heads=2, num_blocks=1, dropout=0.0,
                                     pooling=pooling, encoder=encoder, residual_state=residual_state,
                                     detach_latents=detach_latents),
                 TrainConfig(**train), max_len=T, pseudo_len=TP)


def batch():
    hx = np.array([[0, 0, 1, 2, 3], [0, 0, 0, 0, 0], [0, 0, 0, 4, 5], [0, 0, 0, 0, 6]])
    hy = np.array([[0, 0, 0, 1, 2], [0, 0, 3, 4, 5], [0, 0, 0, 0, 0], [0, 0, 0, 7, 8]])
    px = np.array([[1, 2, 3, 9, 10, 11, 12, 13], [14, 15, 16, 17, 18, 19, 20, 21], [4, 5, 9, 8, 7, 6, 1, 2],
                   [6, 1, 2, 3, 4, 5, 7, 8]])
    py = np.array([[1, 2, 3, 4, 5, 6, 7, 8], [3, 4, 5, 6, 7, 8, 9, 10], [11, 12, 13, 14, 15, 16, 17, 18],
                   [7, 8, 1, 2, 3, 4, 5, 6]])
    return {feature_spec.HISTORY_X: tf.constant(hx, tf.int64), feature_spec.HISTORY_Y: tf.constant(hy, tf.int64),
            feature_spec.PSEUDO_X: tf.constant(px, tf.int64), feature_spec.PSEUDO_Y: tf.constant(py, tf.int64),
            feature_spec.TARGET_ITEM: tf.constant([4, 7, 6, 9], tf.int64),
            feature_spec.TARGET_DOMAIN: tf.constant([0, 0, 1, 1], tf.int64)}


def gaussian_kl(mu1, s1, mu2, s2):
    return np.sum(np.log(s2 / s1) + (s1 ** 2 + (mu1 - mu2) ** 2) / (2 * s2 ** 2) - 0.5, axis=-1)


def test_kl_terms_match_closed_form():
    m = small_model()
    enc = m.encode(batch())
    m.prior_z_x.loc.assign(np.linspace(-1, 1, 8).astype(np.float32))
    for q, p in [(enc["q_z_x"], m.prior_z_x.distribution()), (enc["q_zt_y"], enc["r_zt_y"]),
                 (enc["q_z_y"], enc["q_za_y"])]:
        ours = tfd.kl_divergence(q, p).numpy()
        ref = gaussian_kl(q.mean().numpy(), q.stddev().numpy(), p.mean().numpy(), p.stddev().numpy())
        np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-5)
    std = tfd.MultivariateNormalDiag(loc=tf.zeros([1, 3]))
    q = tfd.MultivariateNormalDiag(loc=[[1.0, 0.0, -2.0]], scale_diag=[[0.5, 1.0, 2.0]])
    expected = sum(-math.log(s) + (s * s + m_ * m_) / 2 - 0.5 for m_, s in [(1, 0.5), (0, 1), (-2, 2)])
    assert tfd.kl_divergence(q, std).numpy()[0] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("length,expected", [(0, 1 - 0.8), (1, math.exp(0.8 / 20) - 0.8),
                                             (20, math.exp(0.8) - 0.8), (35, math.exp(0.8) - 0.8)])
def test_noise_adaptive_weight(length, expected):
    assert float(noise_adaptive_weight(tf.constant([length]), 20, 0.8, 0.8)[0]) == pytest.approx(expected, rel=1e-6)


def test_masked_mean_of_empty_row_is_zero():
    x = tf.ones([2, 3, 4])
    out = masked_mean(x, tf.constant([[False] * 3, [True, False, False]])).numpy()
    assert np.all(out[0] == 0) and np.all(out[1] == 1)


def test_pool_history_modes():
    # rows: [pad, 1, 3] and all padding; the encoder zeroes padded positions
    x = tf.constant([[[0.0, 0.0], [1.0, 2.0], [3.0, 6.0]], [[0.0, 0.0]] * 3])
    mask = tf.constant([[False, True, True], [False] * 3])
    np.testing.assert_allclose(pool_history(x, mask, "mean").numpy(), [[2, 4], [0, 0]])
    np.testing.assert_allclose(pool_history(x, mask, "last").numpy(), [[3, 6], [0, 0]])
    np.testing.assert_allclose(pool_history(x, mask, "mean_last").numpy(), [[2.5, 5], [0, 0]])


def test_pooling_mode_changes_scores():
    b = batch()
    mean_x, _ = small_model("mean").score_all(b)
    last_x, _ = small_model("last").score_all(b)
    # same initial weights, so any difference comes from how the histories are pooled
    assert not np.allclose(mean_x.numpy(), last_x.numpy())


def test_config_rejects_unknown_pooling():
    with pytest.raises(ValueError, match="model.pooling"):
        ModelConfig(pooling="max")


def assert_padding_invariant(m, b):
    """Less left padding (the two leading columns, padding in every row) changes no score."""
    sx, sy = m.score_all(b)
    trimmed = {k: (v[:, 2:] if k in (feature_spec.HISTORY_X, feature_spec.HISTORY_Y) else v) for k, v in b.items()}
    tx, ty = m.score_all(trimmed)
    np.testing.assert_allclose(sx.numpy(), tx.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(sy.numpy(), ty.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pooling", ["mean", "last", "mean_last"])
def test_padding_invariance(pooling):
    assert_padding_invariant(small_model(pooling), batch())


def test_losses_finite_on_mixed_batch_and_every_term_present():
    m = small_model(kl_weight=1.0)
    total, terms = m.losses_and_terms(batch(), training=True)
    assert np.isfinite(total.numpy())
    for name in I2VAE.LOSS_TERMS:
        assert np.isfinite(terms[name].numpy()), name
    assert terms["kl_z_x"].numpy() > 0 and terms["informative_y"].numpy() > 0


def test_cold_start_row_ignores_empty_domain_input_and_uses_r():
    m = small_model()
    b = batch()  # row 1 has no X history: cold-start in X
    px, _ = m.posteriors(b)
    assert not px.own.numpy()[1] and px.own.numpy()[0]  # its domain-specific latent is masked
    np.testing.assert_allclose(px.transferred.mean().numpy()[1], px.r.mean().numpy()[1], rtol=1e-6)  # r^y used
    np.testing.assert_allclose(px.transferred.mean().numpy()[0], px.q_zt.mean().numpy()[0], rtol=1e-6)
    with tf.GradientTape(persistent=True) as tape:
        h_x, _, _ = m(b, training=False)
        out = tf.reduce_sum(h_x[1])
    grads = tape.gradient(out, m.r_y.trainable_variables)
    # the X history's q(z_t^y | x, y) is not used for the cold-start row
    assert all(g is None or float(tf.norm(g)) == 0 for g in tape.gradient(out, m.q_zt_y.trainable_variables))
    assert all(g is not None and float(tf.norm(g)) > 0 for g in grads)
    # nothing that reads the (empty) X history can change the cold-start row's X prediction:
    # perturb the X sequence encoder, q(z^x|x) and q(z_t^y|x,y); only the overlapping row moves
    shared = {id(v) for v in m.item_emb_x.variables}  # item embeddings also feed the pseudo-sequence encoder
    for layer in (m.enc_x, m.q_z_x, m.q_zt_y):
        for v in (v for v in layer.trainable_variables if id(v) not in shared):
            v.assign(v + tf.random.normal(v.shape, stddev=0.5, seed=1))
    moved = m(b)[0].numpy()
    np.testing.assert_allclose(moved[1], h_x.numpy()[1], rtol=1e-5, atol=1e-6)
    assert not np.allclose(moved[0], h_x.numpy()[0], atol=1e-3)


def test_bce_reconstruction_is_the_target_term_plus_one_term_per_negative():
    """The BCE of docs/method.md: softplus(-h.e_target) + sum over sampled negatives of softplus(h.e_neg),
    averaged over the rows of the domain."""
    m = small_model(reconstruction="bce", num_train_negatives=0)
    m(batch())
    h = tf.constant(np.random.default_rng(0).normal(size=(4, 16)), tf.float32)
    targets, in_domain = tf.constant([4, 7, 6, 9], tf.int64), tf.constant([True, True, False, True])
    emb = m.item_emb_x.embeddings.numpy()
    pos = np.sum(h.numpy() * emb[targets.numpy()], axis=-1)
    expected = np.sum(np.logaddexp(0, -pos) * in_domain.numpy()) / in_domain.numpy().sum()
    np.testing.assert_allclose(m.objective.reconstruction(0, h, m.item_emb_x, targets, in_domain).numpy(), expected,
                               rtol=1e-5)
    m.train_cfg.num_train_negatives = 16  # every negative adds a positive term
    assert m.objective.reconstruction(0, h, m.item_emb_x, targets, in_domain).numpy() > expected + 1e-3


@pytest.mark.parametrize("encoder", ["causal", "bidirectional"])  # rows gathered / masked after scoring
def test_full_softmax_reconstruction_is_the_mean_over_the_valid_rows_in_value_and_gradient(encoder):
    """The full softmax over the valid rows: the mean cross-entropy over every item (padding
    excluded) of those rows, by hand, and no gradient reaches an invalid row's h."""
    m = small_model(encoder=encoder, reconstruction="softmax")
    m(batch())
    h = tf.constant(np.random.default_rng(0).normal(size=(4, 16)), tf.float32)
    targets, valid = tf.constant([4, 7, 6, 9], tf.int64), tf.constant([True, False, True, True])
    logits = h.numpy() @ m.item_emb_x.embeddings.numpy()[1:].T
    nll = np.logaddexp.reduce(logits, axis=-1) - logits[np.arange(4), targets.numpy() - 1]
    with tf.GradientTape() as tape:
        tape.watch(h)
        value = m.objective.reconstruction(0, h, m.item_emb_x, targets, valid)
    np.testing.assert_allclose(value.numpy(), nll[valid.numpy()].mean(), rtol=1e-5)
    gradient = tf.convert_to_tensor(tape.gradient(value, h)).numpy()
    assert not np.any(gradient[1]) and np.all(np.abs(gradient[[0, 2, 3]]).sum(axis=-1) > 0)
    assert float(m.objective.reconstruction(0, h, m.item_emb_x, targets, tf.zeros([4], tf.bool))) == 0.0


SLOW = pytest.mark.slow  # about 10 s each (a train-step trace); the default's case stays in `make test`


@pytest.mark.parametrize("encoder, reconstruction", [
    pytest.param("bidirectional", "softmax", marks=SLOW), pytest.param("bidirectional", "bce", marks=SLOW),
    pytest.param("causal", "sampled_softmax", marks=SLOW), ("causal", "softmax")])
def test_train_step_reduces_loss(encoder, reconstruction):
    m = small_model(encoder=encoder, learning_rate=0.01, reconstruction=reconstruction, softmax_negatives=8)
    m.compile(optimizer=tf.keras.optimizers.Adam(0.01))
    b = batch()
    first = float(m.losses_and_terms(b, training=False)[0])
    for _ in range(8):  # eager: one step costs less than tracing the graph
        m.train_step(b)
    assert float(m.losses_and_terms(b, training=False)[0]) < first


def test_kl_annealing_ramps_beta_linearly():
    from types import SimpleNamespace

    from models.callbacks import KLAnnealing

    holder = SimpleNamespace(optimizer=SimpleNamespace(iterations=tf.Variable(0, dtype=tf.int64)),
                             kl_beta=tf.Variable(0.0))
    callback = KLAnnealing(kl_weight=0.5, steps=10)
    callback.set_model(holder)
    for step, expected in [(0, 0.0), (5, 0.25), (10, 0.5), (40, 0.5)]:
        holder.optimizer.iterations.assign(step)
        callback.on_train_batch_begin(0)
        assert float(holder.kl_beta.numpy()) == pytest.approx(expected)


@pytest.mark.slow  # about 10 s of training steps; `make test-slow`
def test_without_informative_regularizer_r_learns_only_as_cold_start_fallback():
    """The w/o IF-R & DS-R ablation (lambda_t = 0): r gets gradients only from rows with one
    domain, where it is the cold-start path; on overlapping rows it is unused unless the
    cold-start loss scores their targets through it (the default)."""
    m = small_model(lambda_t=0.0, kl_weight=0.0, cold_start_loss=False)
    b = batch()
    overlapping = {k: tf.gather(v, [0, 3]) for k, v in b.items()}  # rows 0 and 3 have both histories
    single = {k: tf.gather(v, [1, 2]) for k, v in b.items()}
    m(b)  # builds the variables
    r_vars = m.r_x.trainable_variables + m.r_y.trainable_variables
    assert len(r_vars) == 8
    with tf.GradientTape(persistent=True) as tape:
        loss_overlap = m.losses_and_terms(overlapping)[0]
        loss_single = m.losses_and_terms(single)[0]
    assert all(g is None or float(tf.norm(g)) == 0 for g in tape.gradient(loss_overlap, r_vars))
    assert any(g is not None and float(tf.norm(g)) > 0 for g in tape.gradient(loss_single, r_vars))
    # the default cold-start loss trains r on overlapping rows, and lambda_t changes what it learns
    grads = {}
    for lambda_t in (0.0, 0.001):
        m3 = small_model(lambda_t=lambda_t, kl_weight=0.0)
        m3(b)
        with tf.GradientTape() as tape:
            loss = m3.losses_and_terms(overlapping)[0]
        grads[lambda_t] = tape.gradient(loss, m3.r_x.trainable_variables + m3.r_y.trainable_variables)
        assert all(g is not None and float(tf.norm(g)) > 0 for g in grads[lambda_t])
    assert not all(np.allclose(a.numpy(), b_.numpy()) for a, b_ in zip(grads[0.0], grads[0.001]))
    # with the paper's lambda_t the informative term reaches r on overlapping rows too
    m2 = small_model(kl_weight=0.0, cold_start_loss=False)
    m2(b)
    with tf.GradientTape() as tape:
        loss = m2.losses_and_terms(overlapping)[0]
    grads = tape.gradient(loss, m2.r_x.trainable_variables + m2.r_y.trainable_variables)
    assert all(g is not None and float(tf.norm(g)) > 0 for g in grads)


@pytest.mark.slow  # XLA compiles the train step; `make test-slow`
def test_jit_compiled_training_matches_eager_loss():
    """`train.jit_compile`: the XLA-compiled train step runs and computes the same objective."""
    b = batch()
    ds = tf.data.Dataset.from_tensors(b).repeat(2)
    m = small_model(kl_weight=1.0, reconstruction="softmax")  # no sampled negatives: XLA draws other ones
    m.compile(optimizer=tf.keras.optimizers.SGD(0.0), jit_compile=True)  # lr 0: weights stay put
    eager = float(m.losses_and_terms(b, training=False)[0])
    out = m.evaluate(ds, return_dict=True, verbose=0)
    assert out["loss"] == pytest.approx(eager, rel=1e-4)
    history = m.fit(ds, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][0])


def causal_model(**train):
    return small_model(encoder="causal", **train)


def test_causal_padding_invariance_and_losses():
    m = causal_model(kl_weight=1.0)
    b = batch()
    assert_padding_invariant(m, b)
    total, terms = m.losses_and_terms(b, training=True)
    assert np.isfinite(total.numpy()) and all(np.isfinite(terms[n].numpy()) for n in I2VAE.LOSS_TERMS)
    assert terms["rec_cold_x"].numpy() > 0 and terms["informative_y"].numpy() > 0


def all_positions_h(m, b, d=0):
    """h of domain d at every (row, position) of the batch, [B, T, dim] (inference)."""
    rows = tf.range(tf.shape(b[feature_spec.HISTORY_X])[0])
    t = int(b[feature_spec.HISTORY_X].shape[1])
    grid = tf.reshape(tf.stack(tf.meshgrid(rows, tf.range(t), indexing="ij"), axis=-1), [-1, 2])
    states = m._causal_states(b, False)
    h = m.decode(d, m._causal_posteriors(d, b, rows, grid, states, False), False)
    return tf.reshape(h, [-1, t, h.shape[-1]]).numpy()


def test_causal_position_never_sees_a_later_history_item():
    """Position t predicts history item t+1 in training: nothing at t may depend on it,
    neither through the history encoder, the cross-domain attention nor the augmented one."""
    m = causal_model()
    b = batch()
    h_x = all_positions_h(m, b)
    history, pseudo = b[feature_spec.HISTORY_X].numpy().copy(), b[feature_spec.PSEUDO_X].numpy().copy()
    history[0, 4], pseudo[0, 2] = 7, 7  # the pseudo-sequence starts with the history: it changes with it
    changed = dict(b, **{feature_spec.HISTORY_X: tf.constant(history), feature_spec.PSEUDO_X: tf.constant(pseudo)})
    h_changed = all_positions_h(m, changed)
    np.testing.assert_allclose(h_changed[0, :4], h_x[0, :4], rtol=1e-5, atol=1e-6)  # positions before the change
    assert not np.allclose(h_changed[0, 4], h_x[0, 4], atol=1e-4)
    np.testing.assert_allclose(h_x[:, -1], m(b)[0].numpy(), rtol=1e-5, atol=1e-6)  # inference reads the last


def test_causal_targets_are_every_next_item_of_the_rows_domain():
    m = causal_model()
    b = batch()
    rows, positions, labels, is_last = m._causal_targets(b, 0, b[feature_spec.HISTORY_X] > 0)
    # X rows 0 and 1. Row 0, [0, 0, 1, 2, 3], predicts 2, 3 and its target 4 at columns 2..4;
    # row 1 has no X history (cold-start-shaped): its last position only
    assert rows.numpy().tolist() == [0, 1]
    assert positions.numpy().tolist() == [[0, 2], [0, 3], [0, 4], [1, 4]]
    assert labels.numpy().tolist() == [2, 3, 4, 7] and is_last.numpy().tolist() == [False, False, True, True]


def test_causal_cold_start_row_is_scored_from_r_alone():
    m = causal_model()
    b = batch()  # row 1 has no X history
    h_x = m(b)[0].numpy()
    perturbed = dict(b, **{feature_spec.PSEUDO_X: tf.constant(np.roll(b[feature_spec.PSEUDO_X].numpy(), 1, axis=1))})
    np.testing.assert_allclose(m(perturbed)[0].numpy()[1], h_x[1], rtol=1e-5, atol=1e-6)
    assert not np.allclose(m(perturbed)[0].numpy()[0], h_x[0], atol=1e-4)  # a row with X history reads it


@pytest.mark.slow  # traces the causal train step as a graph; `make test-slow`
def test_causal_batch_with_rows_of_one_domain_only():
    """A batch (or a replica's share of one) may hold no row of a domain: its terms are 0."""
    m = causal_model(kl_weight=1.0)
    only_x = {k: tf.gather(v, [0, 1]) for k, v in batch().items()}
    total, terms = m.losses_and_terms(only_x, training=True)
    assert np.isfinite(total.numpy()) and terms["rec_y"].numpy() == 0 and terms["rec_x"].numpy() > 0
    # in a graph too (TFP's sample() of an empty batch fails there; `_sample` draws loc + scale * noise)
    m.compile(optimizer=tf.keras.optimizers.Adam(1e-3))
    logs = tf.function(m.train_step, autograph=False)(only_x)
    assert np.isfinite(float(logs["loss"]))


@pytest.mark.parametrize("encoder", ["bidirectional", "causal"])
def test_residual_state_adds_the_histories_own_state_and_nothing_for_a_cold_start_row(encoder):
    """`model.residual_state`: the same weights give h + the history's state (pooled, or the
    last position's); a row with no history in the domain (row 1 in X, row 2 in Y) adds zero."""
    features = batch()
    plain = small_model(encoder=encoder)
    residual = small_model(encoder=encoder, residual_state=True)
    plain(features)
    residual(features)
    residual.set_weights(plain.get_weights())
    h_plain, h_residual = plain(features)[:2], residual(features)[:2]
    for d, name in enumerate((feature_spec.HISTORY_X, feature_spec.HISTORY_Y)):
        states, mask = (plain.enc_x if d == 0 else plain.enc_y)(features[name])
        state = masked_mean(states, mask) if encoder == "bidirectional" else states[:, -1]
        np.testing.assert_allclose(h_residual[d].numpy(), (h_plain[d] + state).numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(h_residual[0][1].numpy(), h_plain[0][1].numpy(), atol=1e-6)
    np.testing.assert_allclose(h_residual[1][2].numpy(), h_plain[1][2].numpy(), atol=1e-6)


@pytest.mark.parametrize("encoder", ["bidirectional", "causal"])
def test_state_loss_scores_each_target_from_the_encoder_state_alone(encoder):
    """`train.state_loss`: the state's own next-item cross-entropy (the causal encoder: every
    real history position of the target domain's rows; a row without history there adds
    nothing), added to the objective with its weight; 0 leaves the objective as it was."""
    features = batch()
    off = small_model(encoder=encoder, residual_state=True, reconstruction="softmax", state_loss=0.0)
    on = small_model(encoder=encoder, residual_state=True, reconstruction="softmax", state_loss=0.5)
    total_off, terms_off = off.losses_and_terms(features, training=False)
    on(features)
    on.set_weights(off.get_weights())
    total_on, terms = on.losses_and_terms(features, training=False)
    assert float(terms_off["state_x"]) == 0.0 and float(terms_off["state_y"]) == 0.0
    assert float(total_on) == pytest.approx(float(total_off) + 0.5 * float(terms["state_x"] + terms["state_y"]),
                                            rel=1e-5)
    states, mask = off.enc_x(features[feature_spec.HISTORY_X])
    emb = off.item_emb_x.embeddings[1:].numpy()
    if encoder == "causal":  # row 0 (X history 1, 2, 3; target 4): positions 2..4 predict 2, 3, 4
        h, labels = states[0, 2:].numpy(), np.array([2, 3, 4])
    else:  # row 0's pooled history predicts its target 4; row 1 has no X history
        h, labels = masked_mean(states, mask)[:1].numpy(), np.array([4])
    logits = h @ emb.T
    expected = np.mean(np.log(np.exp(logits).sum(-1)) - logits[np.arange(len(labels)), labels - 1])
    assert float(terms["state_x"]) == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("encoder", ["bidirectional", "causal"])
def test_detached_latents_leave_the_history_encoders_to_the_next_item_losses(encoder):
    """`model.detach_latents`: the same weights give the same objective, but the latents'
    terms (KL, informative, denoising, cold-start) no longer reach the history encoders,
    while the reconstruction through the residual state and the state loss still do."""
    features = batch()
    models = {detach: small_model(encoder=encoder, residual_state=True, detach_latents=detach,
                                  reconstruction="softmax", state_loss=1.0)
              for detach in (False, True)}
    for m in models.values():
        m.losses_and_terms(features, training=False)  # builds every layer, the cold-start path's too
    models[True].set_weights(models[False].get_weights())

    def gradient_norm(m, names):
        with tf.GradientTape() as tape:
            _, terms = m.losses_and_terms(features, training=False)
            loss = tf.add_n([terms[n] for n in names])
        # the encoders' own layers: the item embeddings they read are shared with the output layer
        shared = {id(v) for v in m.item_emb_x.trainable_variables + m.item_emb_y.trainable_variables}
        grads = tape.gradient(loss, [v for v in m.enc_x.trainable_variables + m.enc_y.trainable_variables
                                     if id(v) not in shared])
        return float(sum(tf.norm(g) for g in grads if g is not None)), float(loss)

    latent_terms = ["kl_z_x", "kl_z_y", "kl_zt_x", "kl_zt_y", "informative_x", "informative_y", "rec_cold_x",
                    "rec_cold_y"]
    attached, attached_loss = gradient_norm(models[False], latent_terms)
    detached, detached_loss = gradient_norm(models[True], latent_terms)
    assert attached > 0 and detached == 0.0
    assert detached_loss == pytest.approx(attached_loss, rel=1e-5)  # forward unchanged
    assert gradient_norm(models[True], ["state_x", "state_y", "rec_x", "rec_y"])[0] > 0


def test_decoder_weight_scales_the_decoders_part_of_h_at_inference_only():
    m = causal_model()
    m.model_cfg.residual_state = True
    b = batch()
    h = {}
    for w in (1.0, 0.0, 0.5):
        m.decoder_weight.assign(w)
        h[w] = m(b, training=False)[0].numpy()
    np.testing.assert_allclose(h[0.5], 0.5 * h[1.0] + 0.5 * h[0.0], rtol=1e-5, atol=1e-6)  # w * dec + state
    assert not np.allclose(h[1.0], h[0.0])
    losses = []
    for w in (1.0, 0.25):  # training: the weight plays no part
        m.decoder_weight.assign(w)
        tf.keras.utils.set_random_seed(5)
        losses.append(m.losses_and_terms(b, training=True)[0].numpy())
    assert losses[0] == losses[1]


@pytest.mark.parametrize("encoder", ["bidirectional", "causal"])
def test_without_the_vae_the_latents_are_means_and_no_kl_term_weighs(encoder):
    """`model.variational=false` (the no-VAE ablation): training draws no sample, so two
    training passes give the same objective, and the total is the next-item terms alone."""
    tf.keras.utils.set_random_seed(0)
    m = I2VAE(30, 20, ModelConfig(embedding_dim=16, latent_dim=8, num_heads=2, num_blocks=1, dropout=0.0,
                                  encoder=encoder, variational=False),
              TrainConfig(kl_weight=1.0), max_len=T, pseudo_len=TP)
    total, terms = m.losses_and_terms(batch(), training=True)
    again, _ = m.losses_and_terms(batch(), training=True)
    assert float(total) == pytest.approx(float(again), rel=1e-6)
    next_items = sum(float(terms[f"weighted_{n}_{d}"]) for n in ("rec", "rec_cold", "state") for d in "xy")
    assert float(total) == pytest.approx(next_items, rel=1e-5)
    assert float(terms["kl_z_x"]) > 0  # still logged, weighing nothing
    assert all(float(terms[f"weighted_{n}"]) == 0.0 for n in I2VAE.LOSS_TERMS if n.startswith(("kl_", "inform", "deno")))
