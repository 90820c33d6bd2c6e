"""The i2VAE's objective (paper section 3.4.5): every term once, for either encoder.

The model hands the objective, per domain, what it computed at its prediction points (a row
for the paper's bidirectional encoder, a history position for the causal one): the
`Posteriors` with the masks that say which latents are real there, the `Targets`, and the
decoded user vectors. `I2VAEObjective` turns them into the named terms, weighs each term
once (`term_weights`) and returns the weighted sum with every term and its weighted value
for logging, so the logged weighted terms add up to the loss, as a TensorFlow Recommenders
task does for the model that composes it.
"""
from __future__ import annotations

from typing import Dict, NamedTuple, Optional, Sequence

import tensorflow as tf
import tensorflow_probability as tfp

from models.loss_terms_model import batch_mean, full_softmax_nll, selected_full_softmax_nll

tfd = tfp.distributions

DOMAINS = ("x", "y")


def noise_adaptive_weight(length: tf.Tensor, max_len: int, a: float, b: float) -> tf.Tensor:
    """w = exp(a * L / T) - b with L the real history length capped at T (paper eq. for DN-R)."""
    capped = tf.minimum(tf.cast(length, tf.float32), float(max_len))
    return tf.exp(a * capped / float(max_len)) - b


class Posteriors(NamedTuple):
    """One domain's latents at its prediction points [P] (rows or history positions).

    q_z: q(z | own history); q_za: q(z_a | augmented sequence); q_zt: q(z_t | x, y), the other
    domain's interest transferred here; r: r(z_t | other domain alone), its one-domain
    stand-in. `own`: the domain's own history is present (z is used); `other`: the other
    domain has history (z_t is used); `augmented`: z_a is a real posterior here; `length`:
    own history items up to the point; `state`: the history encoder's state (zero at padding).
    """

    q_z: tfd.Distribution
    q_za: tfd.Distribution
    q_zt: tfd.Distribution
    r: tfd.Distribution
    own: tf.Tensor
    other: tf.Tensor
    augmented: tf.Tensor
    length: tf.Tensor
    state: tf.Tensor

    @property
    def both(self) -> tf.Tensor:
        """Both domains have history: the transferred latent is q_zt's, else r's."""
        return self.own & self.other

    @property
    def transferred(self) -> tfd.Distribution:
        """The cold-start routing (the paper, docs/method.md), its one place: the posterior of
        the transferred latent a point uses, q(z_t | x, y) where both domains have history and
        r(z_t | other) where this domain has none, as a cold-start row is scored."""
        both = self.both[:, None]
        return tfd.MultivariateNormalDiag(loc=tf.where(both, self.q_zt.mean(), self.r.mean()),
                                          scale_diag=tf.where(both, self.q_zt.stddev(), self.r.stddev()))


class Targets(NamedTuple):
    """The next items at one domain's prediction points [P].

    items: the item ids (1..N); scored: the point has a target in this domain; last: the
    row's last point, where the cold-start term is scored (the target a cold-start row has).
    """

    items: tf.Tensor
    scored: tf.Tensor
    last: tf.Tensor


class DomainOutputs(NamedTuple):
    """What the objective reads of one domain: posteriors and targets at its points, the user
    vectors h = dec([z, z_t, z_a]) (+ state), h_cold = dec([0, z_t from r, 0]) (None without
    the cold-start loss), the item table that scores them, and the priors of z and z_a."""

    posteriors: Posteriors
    targets: Targets
    h: tf.Tensor
    h_cold: Optional[tf.Tensor]
    item_embedding: tf.keras.layers.Embedding
    prior_z: tfd.Distribution
    prior_za: tfd.Distribution


class I2VAEObjective(tf.keras.layers.Layer):
    """The negative ELBO with the three regularizers, as logged terms and their weighted sum.

    Terms, per domain (the transferred latent's under the domain it comes from):
      rec: -log p(next item | z, z_t, z_a), the reconstruction;
      rec_cold: the same target from r's transferred latent alone, on points with both
        domains (`train.cold_start_loss`: it trains the path a cold-start row takes);
      state: the history encoder's state alone predicts the next item (`train.state_loss`,
        SASRec's objective beside the VAE's; an extension);
      kl_z, kl_za, kl_zt: each posterior against its prior (learnable for z and z_a, N(0, I)
        for z_t), weighted by beta (`train.kl_weight`);
      informative: KL(q(z_t | x, y) || r(z_t | one domain)), the informative and disentangle
        regularizers, weighted by lambda_t;
      denoising: w KL(q(z | own) || q(z_a | augmented)) with the noise-adaptive weight w,
        weighted by lambda_a.
    The paper's objective multiplies rec and kl_z by (1 + lambda_t). Reconstructions average
    over the points that have a target. The regularizers of the paper's (bidirectional)
    encoder average over every row of the batch, zero where a latent is absent (the paper's
    per-user expectation); the causal encoder's over the positions where they apply.

    Args:
      train_cfg: `models.config.TrainConfig` (weights, reconstruction, negatives, noise a, b).
      num_items: (N_x, N_y), the item ids 1..N of each domain.
      max_len: T, which caps the history length in the noise-adaptive weight.
      encoder: "bidirectional" or "causal" (`model.encoder`): how the regularizers average,
        and whether the full softmax scores only the selected points.
      variational: False (`model.variational`, the no-VAE ablation) weighs every KL term 0.
      sampled_retrieval: per domain, the `models.retrieval.SampledRetrieval` that replaces the
        full softmax on a large catalogue, or None (`retrieval.domain_losses`).
    """

    TERMS = ("rec_x", "rec_y", "rec_cold_x", "rec_cold_y", "state_x", "state_y", "kl_z_x", "kl_z_y", "kl_zt_x",
             "kl_zt_y", "kl_za_x", "kl_za_y", "informative_x", "informative_y", "denoising_x", "denoising_y")
    LOGGED = TERMS + tuple(f"weighted_{n}" for n in TERMS) + ("noise_weight_x", "noise_weight_y", "kl_beta")

    def __init__(self, train_cfg, num_items: Sequence[int], max_len: int, encoder: str, variational: bool,
                 sampled_retrieval=(None, None), **kwargs):
        super().__init__(**kwargs)
        self.train_cfg, self.num_items, self.max_len = train_cfg, tuple(num_items), max_len
        self.per_row = encoder == "bidirectional"
        # the causal encoder's points are gathered, so its full softmax scores only the
        # selected ones; the bidirectional encoder scores every row and masks, which XLA
        # compiles to the same value (the gathered rows gave another value under XLA)
        self.select_rows = encoder == "causal"
        self.variational = variational
        self.sampled_retrieval = tuple(sampled_retrieval)

    def term_weights(self, kl_beta) -> Dict[str, tf.Tensor]:
        """Each term's weight in the total, written once."""
        cfg = self.train_cfg
        lt, la = (cfg.lambda_t, cfg.lambda_a) if self.variational else (0.0, 0.0)
        beta = kl_beta if self.variational else tf.constant(0.0)
        weights = {}
        for n in DOMAINS:
            weights.update({f"rec_{n}": 1.0 + lt, f"rec_cold_{n}": 1.0, f"state_{n}": cfg.state_loss,
                            f"kl_z_{n}": (1.0 + lt) * beta, f"kl_zt_{n}": beta, f"kl_za_{n}": beta,
                            f"informative_{n}": lt, f"denoising_{n}": la})
        return weights

    def call(self, domains: Sequence[DomainOutputs], kl_beta):
        """Returns (total loss, {term: value} with every term, its weighted value, the mean
        noise-adaptive weights and beta)."""
        terms = {}
        for d, (name, outputs) in enumerate(zip(DOMAINS, domains)):
            terms.update(self._domain_terms(d, name, DOMAINS[1 - d], outputs))
        weights = self.term_weights(kl_beta)
        for name in self.TERMS:
            terms[f"weighted_{name}"] = weights[name] * terms[name]
        total = tf.add_n([terms[f"weighted_{name}"] for name in self.TERMS])
        terms["kl_beta"] = tf.identity(kl_beta)
        return total, terms

    def _domain_terms(self, d, name, other, outputs: DomainOutputs):
        p, t = outputs.posteriors, outputs.targets
        cfg, zero = self.train_cfg, tf.constant(0.0)
        w = noise_adaptive_weight(p.length, self.max_len, cfg.noise_a, cfg.noise_b)
        standard = tfd.MultivariateNormalDiag(loc=tf.zeros_like(p.q_zt.mean()[:1]))  # N(0, I)
        rec = self.reconstruction
        return {
            f"rec_{name}": rec(d, outputs.h, outputs.item_embedding, t.items, t.scored),
            f"state_{name}": (rec(d, p.state, outputs.item_embedding, t.items, t.scored & p.own)
                              if cfg.state_loss > 0 else zero),
            f"rec_cold_{name}": (rec(d, outputs.h_cold, outputs.item_embedding, t.items, t.scored & t.last & p.both)
                                 if outputs.h_cold is not None else zero),
            f"kl_z_{name}": self._mean(tfd.kl_divergence(p.q_z, outputs.prior_z), p.own),
            f"kl_za_{name}": self._mean(tfd.kl_divergence(p.q_za, outputs.prior_za), p.augmented),
            f"kl_zt_{other}": self._mean(tfd.kl_divergence(p.transferred, standard), p.other),
            f"informative_{other}": self._mean(tfd.kl_divergence(p.q_zt, p.r), p.both),
            f"denoising_{name}": self._mean(w * tfd.kl_divergence(p.q_z, p.q_za), p.augmented & p.own),
            f"noise_weight_{name}": batch_mean(w, p.own),
        }

    def _mean(self, value, where):
        if self.per_row:
            return batch_mean(value * tf.cast(where, value.dtype), tf.ones_like(where, tf.float32))
        return batch_mean(value, where)

    def reconstruction(self, d, h, item_embedding, targets, valid):
        """-log p(target | h), averaged over the `valid` points of domain d.

        "softmax": cross-entropy over every item of the domain (padding excluded); above
          `train.full_softmax_max_items` items, the sampled retrieval loss instead.
        "sampled_softmax": against `softmax_negatives` uniform items shared by the batch
          (accidental hits masked), as SASRec trains.
        "bce": BCE of the target against `num_train_negatives` uniform negatives (docs/method.md).
        """
        cfg, num_items = self.train_cfg, self.num_items[d]
        if cfg.reconstruction == "softmax" and self.sampled_retrieval[d] is not None:
            return self.sampled_retrieval[d](h, item_embedding, targets, valid)
        if cfg.reconstruction == "softmax" and self.select_rows:
            return selected_full_softmax_nll(h, item_embedding, targets, valid)
        targets = tf.where(valid, targets, tf.ones_like(targets))
        if cfg.reconstruction == "softmax":
            nll = full_softmax_nll(h, item_embedding, targets)
        elif cfg.reconstruction == "sampled_softmax":
            negatives = tf.random.uniform([cfg.softmax_negatives], 1, num_items + 1, dtype=tf.int64)
            pos = tf.reduce_sum(h * item_embedding(targets), axis=-1, keepdims=True)
            neg = tf.matmul(h, item_embedding(negatives), transpose_b=True)
            neg = tf.where(tf.equal(tf.cast(targets, tf.int64)[:, None], negatives[None]), -1e9, neg)
            nll = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.zeros_like(targets),
                                                                 tf.concat([pos, neg], axis=-1))
        else:
            negatives = tf.random.uniform([tf.shape(h)[0], cfg.num_train_negatives], 1, num_items + 1, dtype=tf.int64)
            pos = tf.reduce_sum(h * item_embedding(targets), axis=-1)
            neg = tf.einsum("bd,bnd->bn", h, item_embedding(negatives))
            nll = tf.nn.softplus(-pos) + tf.reduce_sum(tf.nn.softplus(neg), axis=-1)
        return batch_mean(nll, valid)
