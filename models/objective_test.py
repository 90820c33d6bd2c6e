"""The objective: each weight once, the total the weighted sum of the logged terms, the
cold-start routing, and how each encoder's regularizers average."""
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from models.config import TrainConfig
from models.objective import DomainOutputs, I2VAEObjective, Posteriors, Targets

tfd = tfp.distributions
K, D, N = 3, 4, 6  # latent size, h size, items


def gaussian(loc, scale=1.0):
    loc = tf.constant(loc, tf.float32)
    return tfd.MultivariateNormalDiag(loc=loc, scale_diag=tf.fill(tf.shape(loc), scale))


def domain(seed, own, other, augmented=None):
    """Three points: own / other history as given; targets 1..3, every point scored and last."""
    rng = np.random.default_rng(seed)
    own, other = tf.constant(own), tf.constant(other)
    posteriors = Posteriors(q_z=gaussian(rng.normal(size=(3, K))), q_za=gaussian(rng.normal(size=(3, K)), 0.5),
                            q_zt=gaussian(rng.normal(size=(3, K))), r=gaussian(rng.normal(size=(3, K)), 2.0),
                            own=own, other=other, augmented=own if augmented is None else tf.constant(augmented),
                            length=tf.constant([1, 5, 0]), state=tf.constant(rng.normal(size=(3, D)), tf.float32))
    embedding = tf.keras.layers.Embedding(N + 1, D)
    embedding.build(None)
    ones = tf.ones([3], tf.bool)
    return DomainOutputs(posteriors, Targets(tf.constant([1, 2, 3], tf.int64), ones, ones),
                         h=tf.constant(rng.normal(size=(3, D)), tf.float32),
                         h_cold=tf.constant(rng.normal(size=(3, D)), tf.float32), item_embedding=embedding,
                         prior_z=gaussian(np.zeros(K)), prior_za=gaussian(np.ones(K)))


def objective(encoder="causal", variational=True, **train):
    cfg = TrainConfig(lambda_t=0.1, lambda_a=0.2, state_loss=0.5, reconstruction="softmax", **train)
    return I2VAEObjective(cfg, (N, N), max_len=5, encoder=encoder, variational=variational)


def test_each_weight_is_the_papers_and_the_total_is_the_weighted_sum_of_the_logged_terms():
    domains = [domain(0, [True, True, False], [True, False, True]), domain(1, [True, False, True], [True, True, False])]
    total, terms = objective()(domains, tf.constant(0.3))
    lt, la, beta = 0.1, 0.2, 0.3
    by_hand = {"rec": 1 + lt, "rec_cold": 1.0, "state": 0.5, "kl_z": (1 + lt) * beta, "kl_zt": beta, "kl_za": beta,
               "informative": lt, "denoising": la}
    expected = 0.0
    for name in I2VAEObjective.TERMS:
        weight = by_hand[name.rsplit("_", 1)[0]]
        assert float(terms[f"weighted_{name}"]) == pytest.approx(weight * float(terms[name]), rel=1e-5), name
        assert float(terms[name]) > 0, name
        expected += weight * float(terms[name])
    assert float(total) == pytest.approx(expected, rel=1e-5)
    assert set(I2VAEObjective.LOGGED) == set(terms)


def test_the_transferred_latent_is_q_zt_where_both_domains_have_history_and_r_elsewhere():
    p = domain(0, [True, False, True], [True, True, False]).posteriors
    routed = p.transferred
    np.testing.assert_allclose(routed.mean().numpy()[0], p.q_zt.mean().numpy()[0])
    np.testing.assert_allclose(routed.mean().numpy()[1:], p.r.mean().numpy()[1:])  # cold-start, then no other
    np.testing.assert_allclose(routed.stddev().numpy()[1], p.r.stddev().numpy()[1])
    # its KL to N(0, I) is the KL of the posterior it routes to
    standard = tfd.MultivariateNormalDiag(loc=tf.zeros([1, K]))
    expected = np.where([True, False, False], tfd.kl_divergence(p.q_zt, standard), tfd.kl_divergence(p.r, standard))
    np.testing.assert_allclose(tfd.kl_divergence(routed, standard).numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("encoder", ["bidirectional", "causal"])
def test_the_paper_encoder_averages_regularizers_over_every_row_the_causal_one_where_they_apply(encoder):
    own, other = [True, False, True], [True, True, False]
    domains = [domain(0, own, other), domain(1, other, own)]
    _, terms = objective(encoder)(domains, tf.constant(1.0))
    p = domains[0].posteriors
    kl_z = tfd.kl_divergence(p.q_z, domains[0].prior_z).numpy()
    informative = tfd.kl_divergence(p.q_zt, p.r).numpy()  # informative_y: Y's interest used in X
    divisor = {"bidirectional": 3, "causal": 2}[encoder]
    assert float(terms["kl_z_x"]) == pytest.approx((kl_z[0] + kl_z[2]) / divisor, rel=1e-5)
    assert float(terms["informative_y"]) == pytest.approx(informative[0] / {"bidirectional": 3, "causal": 1}[encoder],
                                                          rel=1e-5)


def test_without_the_vae_no_kl_term_weighs_and_without_the_cold_start_loss_it_is_zero():
    domains = [domain(0, [True, True, False], [True, False, True]), domain(1, [True, False, True], [True, True, False])]
    total, terms = objective(variational=False)(domains, tf.constant(0.3))
    next_items = sum(float(terms[f"weighted_{n}_{d}"]) for n in ("rec", "rec_cold", "state") for d in "xy")
    assert float(total) == pytest.approx(next_items, rel=1e-5) and float(terms["kl_z_x"]) > 0
    _, terms = objective()([d._replace(h_cold=None) for d in domains], tf.constant(0.3))
    assert float(terms["rec_cold_x"]) == 0.0 and float(terms["rec_cold_y"]) == 0.0
