"""i2VAE: interest information augmentation with variational regularizers (arXiv 2405.20710).

A Keras subclassed model. Inputs are dicts of left-padded item-index tensors
(`history_x` [B, T], `history_y` [B, T], `pseudo_x` [B, T'], `pseudo_y` [B, T']; 0 is
padding). Six Gaussian latents are TFP distributions; `losses` computes every term of
the paper's objective (section 3.4.5, DESIGN.md step 6) so each one can be logged.

Choices that differ from the authors' code, following the paper instead: sequences
keep their order; scoring is a dot product h_u . e_i; scales are softplus + min_scale
without clamps. A cold-start row (no history in a domain) takes its transferred latent
from the auxiliary encoder r and has its domain-specific latents z and z_a masked to
zero, as the paper does.
"""
from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf
import tensorflow_probability as tfp

from models import feature_spec
from models.layers import (
    CrossDomainAttention,
    CrossDomainMLP,
    GaussianHead,
    LearnablePrior,
    SASRecEncoder,
    masked_mean,
    pool_history,
)
from models.loss_terms_model import LossTermsModel, batch_mean, full_softmax_nll, selected_full_softmax_nll

tfd = tfp.distributions


def noise_adaptive_weight(length: tf.Tensor, max_len: int, a: float = 0.8, b: float = 0.8) -> tf.Tensor:
    """w = exp(a * L / T) - b with L the real history length capped at T (paper eq. for DN-R)."""
    capped = tf.minimum(tf.cast(length, tf.float32), float(max_len))
    return tf.exp(a * capped / float(max_len)) - b


def _kl(q, p):
    return tfd.kl_divergence(q, p)


def _sample(dist, training):
    """A reparameterised sample (training) or the mean. Drawn as loc + scale * noise rather
    than `dist.sample()`, whose graph fails on an empty batch (a batch with no row of a domain)."""
    if not training:
        return dist.mean()
    loc = dist.mean()
    return loc + dist.stddev() * tf.random.normal(tf.shape(loc), dtype=loc.dtype)


class DomainLayers(NamedTuple):
    history: str
    pseudo: str
    encoder: tf.keras.layers.Layer
    augmented_encoder: tf.keras.layers.Layer
    q_z: tf.keras.layers.Layer
    q_za: tf.keras.layers.Layer
    q_zt: tf.keras.layers.Layer
    r: tf.keras.layers.Layer
    decoder: tf.keras.layers.Layer
    item_embedding: tf.keras.layers.Layer
    prior_z: tf.keras.layers.Layer
    prior_za: tf.keras.layers.Layer


def _masked(z, keep):
    """z where `keep` ([B] or [P]) holds, zeros elsewhere."""
    return z * tf.cast(keep, z.dtype)[:, None]


def recalled_part(pseudo: tf.Tensor, history: tf.Tensor) -> tf.Tensor:
    """The recalled items of a pseudo-sequence [B, T'] (its history items set to padding 0).

    Recall never returns a seen item, so an item that is in the row's history is part of
    the copied history tail.
    """
    in_history = tf.reduce_any(tf.equal(pseudo[:, :, None], tf.cast(history, pseudo.dtype)[:, None, :]), axis=2)
    return tf.where(in_history, tf.zeros_like(pseudo), pseudo)


def augmented_sequence(pseudo: tf.Tensor, history: tf.Tensor) -> tf.Tensor:
    """The causal encoder's augmented input [B, T' + T]: the recalled items, then the real
    history, right-aligned with all padding on the left (so the history's left padding
    leaves no gap and any padding width gives the same positions)."""
    sequence = tf.concat([recalled_part(pseudo, history), tf.cast(history, pseudo.dtype)], axis=1)
    real = tf.cast(sequence > 0, tf.int32)
    order = tf.argsort(real, axis=1, stable=True)  # padding first, order kept
    width = tf.maximum(tf.reduce_max(tf.reduce_sum(real, axis=1)), tf.shape(history)[1])
    # the columns that are padding in every row cost attention work and change nothing
    return tf.gather(sequence, order, batch_dims=1)[:, tf.shape(sequence)[1] - width:]


def next_item_labels(history: tf.Tensor, last: tf.Tensor) -> tf.Tensor:
    """Per position of a left-padded history [B, T], the item that follows it: the next
    history item, and `last` [B] (the row's target, or 0 for none) after the last one."""
    return tf.concat([history[:, 1:], tf.cast(last, history.dtype)[:, None]], axis=1)


class I2VAE(LossTermsModel):
    """The i2VAE model.

    Two encoders (`model_cfg.encoder`):
      "bidirectional" (the paper): bidirectional self-attention, mean-pooled; one set of
        six latents per row, and one target per row (its last item).
      "causal" (an extension beyond the paper): causal self-attention, and the latents of
        every history position, so every position predicts the item that follows it, as
        SASRec trains: one encoder pass per row gives every target of its history. The
        augmented sequence puts the recalled items before the history (recalled, then
        h_1..h_T); its latent is read at the last position only, because recall used the
        whole history and so knows about every earlier position's next item. Only the positions that have a target are decoded
        (histories are mostly short, so most of the padded T columns are not), and only in
        the rows' target domain. Inference reads each domain's last position.

    Both train the cold-start path on every row with both domains (`train_cfg.cold_start_loss`):
    the row's target is also predicted from the transferred interest alone (z_t from r,
    the domain-specific latents masked), as a cold-start row is scored (DESIGN.md step 7).

    Args:
      num_items_x / num_items_y: vocabulary sizes (item indices 1..N; 0 is padding).
      model_cfg: `models.config.ModelConfig` (d, latent size, heads, blocks, dropout,
        encoder, cross-domain encoder variant, decoder hidden sizes).
      train_cfg: `models.config.TrainConfig` (lambda_t, lambda_a, a, b, negatives).
      max_len / pseudo_len: T and T'.
    """

    LOSS_TERMS = ("rec_x", "rec_y", "rec_cold_x", "rec_cold_y", "state_x", "state_y", "kl_z_x", "kl_z_y", "kl_zt_x", "kl_zt_y",
                  "kl_za_x", "kl_za_y", "informative_x", "informative_y", "denoising_x", "denoising_y")

    def __init__(self, num_items_x, num_items_y, model_cfg, train_cfg, max_len=20, pseudo_len=40, **kwargs):
        super().__init__(**kwargs)
        d, k, s = model_cfg.embedding_dim, model_cfg.latent_dim, model_cfg.min_scale
        self.num_items = (num_items_x, num_items_y)
        self.model_cfg, self.train_cfg = model_cfg, train_cfg
        self.max_len, self.pseudo_len = max_len, pseudo_len
        self.causal = model_cfg.encoder == "causal"
        # one initializer per table: a shared unseeded instance gives both tables the same first rows
        self.item_emb_x = tf.keras.layers.Embedding(num_items_x + 1, d, name="item_emb_x",
                                                    embeddings_initializer=tf.keras.initializers.TruncatedNormal(stddev=0.02))
        self.item_emb_y = tf.keras.layers.Embedding(num_items_y + 1, d, name="item_emb_y",
                                                    embeddings_initializer=tf.keras.initializers.TruncatedNormal(stddev=0.02))
        enc = dict(dim=d, num_heads=model_cfg.num_heads, num_blocks=model_cfg.num_blocks, dropout=model_cfg.dropout,
                   causal=self.causal, packed=model_cfg.pack_sequences)
        augmented_len = pseudo_len + max_len if self.causal else pseudo_len  # causal: recalled items, then history
        self.enc_x = SASRecEncoder(self.item_emb_x, max_len, name="encoder_x", **enc)
        self.enc_y = SASRecEncoder(self.item_emb_y, max_len, name="encoder_y", **enc)
        self.enc_ax = SASRecEncoder(self.item_emb_x, augmented_len, name="encoder_pseudo_x", **enc)
        self.enc_ay = SASRecEncoder(self.item_emb_y, augmented_len, name="encoder_pseudo_y", **enc)
        self.q_z_x = GaussianHead(k, min_scale=s, name="q_z_x")
        self.q_z_y = GaussianHead(k, min_scale=s, name="q_z_y")
        self.q_za_x = GaussianHead(k, min_scale=s, name="q_za_x")
        self.q_za_y = GaussianHead(k, min_scale=s, name="q_za_y")
        if model_cfg.cross_encoder == "attention":
            packed = model_cfg.pack_sequences
            self.q_zt_y = CrossDomainAttention(d, k, model_cfg.num_heads, s, packed=packed, name="q_zt_y")
            self.q_zt_x = CrossDomainAttention(d, k, model_cfg.num_heads, s, packed=packed, name="q_zt_x")
        elif model_cfg.cross_encoder == "mlp":
            self.q_zt_y = CrossDomainMLP(d, k, s, name="q_zt_y")
            self.q_zt_x = CrossDomainMLP(d, k, s, name="q_zt_x")
        else:
            raise ValueError(f"model.cross_encoder must be 'attention' or 'mlp', found {model_cfg.cross_encoder!r}")
        self.r_y = GaussianHead(k, hidden=[d], min_scale=s, name="r_zt_y")  # r^y(z_t^y | y)
        self.r_x = GaussianHead(k, hidden=[d], min_scale=s, name="r_zt_x")  # r^x(z_t^x | x)
        self.prior_z_x = LearnablePrior(k, s, name="prior_z_x")
        self.prior_z_y = LearnablePrior(k, s, name="prior_z_y")
        self.prior_za_x = LearnablePrior(k, s, name="prior_za_x")
        self.prior_za_y = LearnablePrior(k, s, name="prior_za_y")
        self.dec_x = self._decoder(model_cfg.decoder_hidden, d, "decoder_x")
        self.dec_y = self._decoder(model_cfg.decoder_hidden, d, "decoder_y")
        # beta multiplies the six prior KL terms; KLAnnealing can raise it from 0 to train_cfg.kl_weight
        self.kl_beta = tf.Variable(float(train_cfg.kl_weight), trainable=False, dtype=tf.float32, name="kl_beta")
        # w in h = w * dec([z, z_t, z_a]) + state at inference (`model.residual_state`); training
        # always uses 1. The trainer sets it after training from `train.decoder_weight_grid`
        # on validation; it is saved with the weights, so serving scores the same way
        self.decoder_weight = tf.Variable(1.0, trainable=False, dtype=tf.float32, name="decoder_weight")
        self._make_trackers(self.LOSS_TERMS + tuple(f"weighted_{n}" for n in self.LOSS_TERMS)
                            + ("noise_weight_x", "noise_weight_y", "kl_beta"))

    def _draw(self, dist, training):
        """A sample in training, the mean otherwise and always without `model.variational`."""
        return _sample(dist, training and self.model_cfg.variational)

    @staticmethod
    def _decoder(hidden, dim, name):
        layers = [tf.keras.layers.Dense(h, activation="relu") for h in hidden] + [tf.keras.layers.Dense(dim)]
        return tf.keras.Sequential(layers, name=name)

    def _domain(self, d) -> "DomainLayers":
        """Domain d's own inputs and layers; q_zt and r carry the other domain's interest here."""
        if d == 0:
            return DomainLayers(feature_spec.HISTORY_X, feature_spec.PSEUDO_X, self.enc_x, self.enc_ax, self.q_z_x,
                                self.q_za_x, self.q_zt_y, self.r_y, self.dec_x, self.item_emb_x, self.prior_z_x,
                                self.prior_za_x)
        return DomainLayers(feature_spec.HISTORY_Y, feature_spec.PSEUDO_Y, self.enc_y, self.enc_ay, self.q_z_y,
                            self.q_za_y, self.q_zt_x, self.r_x, self.dec_y, self.item_emb_y, self.prior_z_y,
                            self.prior_za_y)

    # ----- the paper's encoder: one set of latents per row -----
    def encode(self, features, training=False):
        """All posteriors and masks of a batch, one per row (the causal encoder: at each
        domain's last position, what inference reads)."""
        if self.causal:
            return self._causal_encode_last(features, training)
        xs, mx = self.enc_x(features[feature_spec.HISTORY_X], training=training)
        ys, my = self.enc_y(features[feature_spec.HISTORY_Y], training=training)
        axs, max_ = self.enc_ax(features[feature_spec.PSEUDO_X], training=training)
        ays, may = self.enc_ay(features[feature_spec.PSEUDO_Y], training=training)
        # pooling applies to the real histories only: a pseudo-sequence ends in recalled
        # items, so its last position carries no recency
        state_x, state_y = pool_history(xs, mx, self.model_cfg.pooling), pool_history(ys, my, self.model_cfg.pooling)
        xs, ys, X, Y = self._for_latents(xs, ys, state_x, state_y)
        Xa, Ya = masked_mean(axs, max_), masked_mean(ays, may)
        has_x, has_y = tf.reduce_any(mx, axis=1), tf.reduce_any(my, axis=1)
        out = dict(has_x=has_x, has_y=has_y, has_ax=tf.reduce_any(max_, axis=1), has_ay=tf.reduce_any(may, axis=1),
                   len_x=tf.reduce_sum(tf.cast(mx, tf.int32), 1), len_y=tf.reduce_sum(tf.cast(my, tf.int32), 1))
        out["q_z_x"], out["q_z_y"] = self.q_z_x(X), self.q_z_y(Y)
        out["q_za_x"], out["q_za_y"] = self.q_za_x(Xa), self.q_za_y(Ya)
        if isinstance(self.q_zt_y, CrossDomainAttention):
            out["q_zt_y"] = self.q_zt_y(xs, mx, ys, my, training=training)  # Y's interest transferred to X
            out["q_zt_x"] = self.q_zt_x(ys, my, xs, mx, training=training)
        else:
            out["q_zt_y"] = self.q_zt_y(X, Y)
            out["q_zt_x"] = self.q_zt_x(Y, X)
        out["r_zt_y"], out["r_zt_x"] = self.r_y(Y), self.r_x(X)
        out["state_x"], out["state_y"] = state_x, state_y
        return out

    def _for_latents(self, *states):
        """The encoder states as the posterior heads read them: `model.detach_latents` stops
        their gradient, so only the next-item losses train the history encoders."""
        return tuple(tf.stop_gradient(s) for s in states) if self.model_cfg.detach_latents else states

    def latents(self, enc, training=False):
        """Samples (training) or means (inference), with cold-start routing and masks.

        A row with no history in a domain is cold-start there: its transferred latent comes
        from r, and its domain-specific and augmented latents are masked, so it is scored
        from the transferred interest alone (the paper). `model.cold_start_augmented` keeps
        the augmented latent (a switch, off by default; bidirectional encoder only).
        """
        both = tf.logical_and(enc["has_x"], enc["has_y"])[:, None]

        z_x = _masked(self._draw(enc["q_z_x"], training), enc["has_x"])
        z_y = _masked(self._draw(enc["q_z_y"], training), enc["has_y"])
        # cold-start in X (no X history): the transferred interest comes from r^y(z_t^y | y)
        z_ty = _masked(tf.where(both, self._draw(enc["q_zt_y"], training), self._draw(enc["r_zt_y"], training)), enc["has_y"])
        z_tx = _masked(tf.where(both, self._draw(enc["q_zt_x"], training), self._draw(enc["r_zt_x"], training)), enc["has_x"])
        augmented = self.model_cfg.cold_start_augmented
        z_ax = _masked(self._draw(enc["q_za_x"], training), enc["has_ax"] if augmented else enc["has_x"])
        z_ay = _masked(self._draw(enc["q_za_y"], training), enc["has_ay"] if augmented else enc["has_y"])
        return z_x, z_y, z_tx, z_ty, z_ax, z_ay

    def call(self, features, training=False):
        """User representations (h_u^X, h_u^Y), each [B, d]; score items with `score_all`."""
        enc = self.encode(features, training=training)
        if self.causal:
            return (self._causal_decode(0, enc["_at_x"], training), self._causal_decode(1, enc["_at_y"], training),
                    enc)
        z_x, z_y, z_tx, z_ty, z_ax, z_ay = self.latents(enc, training=training)
        h_x = self._with_state(self.dec_x(tf.concat([z_x, z_ty, z_ax], axis=-1)), enc["state_x"], training)
        h_y = self._with_state(self.dec_y(tf.concat([z_y, z_tx, z_ay], axis=-1)), enc["state_y"], training)
        return h_x, h_y, enc

    def _with_state(self, h, state, training):
        """`model.residual_state`: the decoder's output plus the history's own state; at
        inference the decoder's part weighs `decoder_weight` (a cold-start row has no state,
        so its ranking does not depend on it)."""
        if not self.model_cfg.residual_state:
            return h
        return (h if training else self.decoder_weight * h) + state

    def score_all(self, features):
        """Scores of every item of each domain (column 0 is padding), at inference (means)."""
        h_x, h_y, _ = self(features, training=False)
        return (tf.matmul(h_x, self.item_emb_x.embeddings, transpose_b=True),
                tf.matmul(h_y, self.item_emb_y.embeddings, transpose_b=True))

    # ----- the causal encoder: latents at chosen positions -----
    def _causal_positions(self, d, features, rows, positions, states, training):
        """Domain d's posteriors at `positions` ([P, 2]: index into `rows`, column) of the
        batch rows `rows` ([R]); `states` holds both histories' encoder outputs for the batch.

        Returns a dict of [P]-batched posteriors (q_z, q_za, q_zt, r) and masks: `keep`
        (a real history position: its own latents are used), `has_other` and `both`
        (the transferred latent comes from q_zt, else from r), `length` (items up to it).
        """
        layers = self._domain(d)
        history_name, pseudo_name, enc_a, q_z, q_za, q_zt, r = (
            layers.history, layers.pseudo, layers.augmented_encoder, layers.q_z, layers.q_za, layers.q_zt, layers.r)
        (own, own_mask), (other, other_mask) = states[d], states[1 - d]
        own_state, own_mask = tf.gather(own, rows), tf.gather(own_mask, rows)
        other, other_mask = tf.gather(other, rows), tf.gather(other_mask, rows)
        own, other = self._for_latents(own_state, other)
        history = tf.gather(features[history_name], rows)
        t = tf.shape(history)[1]
        # the augmented sequence's last position, the one place its latent is read (below)
        augmented, _ = enc_a(augmented_sequence(tf.gather(features[pseudo_name], rows), history), training=training,
                             last_only=True)
        other_summary = pool_history(other, other_mask, "last")  # the causal last position has read it all
        row = positions[:, 0]
        if isinstance(q_zt, CrossDomainAttention):
            cross = q_zt.head(tf.gather_nd(q_zt.attend(own, own_mask, other, other_mask, training), positions))
        else:
            cross = q_zt(tf.gather_nd(own, positions), tf.gather(other_summary, row))
        keep = tf.gather_nd(own_mask, positions)
        has_other = tf.gather(tf.reduce_any(other_mask, axis=1), row)
        # the recalled items were chosen with the whole history's fold-in, so they carry
        # information about the items after an earlier position: the augmented latent is
        # read at the last position only, where the next item (the row's target) is not
        # among what recall saw, as at serving time
        keep_augmented = keep & tf.equal(positions[:, 1], t - 1)
        return dict(q_z=q_z(tf.gather_nd(own, positions)), keep_augmented=keep_augmented,
                    q_za=q_za(tf.gather(augmented, row)),  # the row's last position; masked elsewhere
                    q_zt=cross, r=r(tf.gather(other_summary, row)), keep=keep, has_other=has_other,
                    state=tf.gather_nd(own_state, positions),  # zero at padding (a cold-start row's last position)
                    both=keep & has_other,
                    length=tf.gather_nd(tf.cumsum(tf.cast(own_mask, tf.int32), axis=1), positions))

    def _causal_states(self, features, training):
        return (self.enc_x(features[feature_spec.HISTORY_X], training=training),
                self.enc_y(features[feature_spec.HISTORY_Y], training=training))

    def _causal_decode(self, d, at, training):
        """h at the positions of `at` (from `_causal_positions`), cold-start routing and masks
        as in `latents`."""
        z = _masked(self._draw(at["q_z"], training), at["keep"])
        z_t = _masked(tf.where(at["both"][:, None], self._draw(at["q_zt"], training), self._draw(at["r"], training)),
                   at["has_other"])
        z_a = _masked(self._draw(at["q_za"], training), at["keep_augmented"])
        return self._with_state(self._domain(d).decoder(tf.concat([z, z_t, z_a], axis=-1)), at["state"], training)

    def _last_positions(self, features, d):
        b = tf.shape(features[feature_spec.HISTORY_X])[0]
        t = tf.shape(features[self._domain(d).history])[1]
        return tf.range(b), tf.stack([tf.range(b), tf.fill([b], t - 1)], axis=1)

    def _causal_encode_last(self, features, training):
        states = self._causal_states(features, training)
        out = {}
        for d, name in enumerate(("x", "y")):
            rows, positions = self._last_positions(features, d)
            at = self._causal_positions(d, features, rows, positions, states, training)
            other = "y" if name == "x" else "x"
            out.update({f"q_z_{name}": at["q_z"], f"q_za_{name}": at["q_za"], f"q_zt_{other}": at["q_zt"],
                        f"r_zt_{other}": at["r"], f"has_{name}": tf.reduce_any(states[d][1], axis=1),
                        f"_at_{name}": at})
        return out

    # ----- objective -----
    def _reconstruction(self, h, emb, targets, valid, num_items):
        """-log p(target | z), averaged over the `valid` rows (or positions) of this domain.

        "softmax": cross-entropy over every item of the domain (padding excluded).
        "sampled_softmax": against `softmax_negatives` uniform items shared by the batch
          (accidental hits masked), as SASRec trains.
        "bce": BCE of the target against `num_train_negatives` uniform negatives (DESIGN.md).
        """
        if self.train_cfg.reconstruction == "softmax" and self.causal:
            # only the valid positions are scored. Not in the bidirectional encoder, which XLA
            # can compile and where the selected rows gave another value under XLA (the slow test)
            return selected_full_softmax_nll(h, emb, targets, valid)
        targets = tf.where(valid, targets, tf.ones_like(targets))
        if self.train_cfg.reconstruction == "softmax":
            nll = full_softmax_nll(h, emb, targets)
        elif self.train_cfg.reconstruction == "sampled_softmax":
            negatives = tf.random.uniform([self.train_cfg.softmax_negatives], 1, num_items + 1, dtype=tf.int64)
            pos = tf.reduce_sum(h * emb(targets), axis=-1, keepdims=True)
            neg = tf.matmul(h, emb(negatives), transpose_b=True)
            neg = tf.where(tf.equal(tf.cast(targets, tf.int64)[:, None], negatives[None]), -1e9, neg)
            nll = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.zeros_like(targets),
                                                                 tf.concat([pos, neg], axis=-1))
        else:
            n = self.train_cfg.num_train_negatives
            negatives = tf.random.uniform([tf.shape(h)[0], n], 1, num_items + 1, dtype=tf.int64)
            pos = tf.reduce_sum(h * emb(targets), axis=-1)
            neg = tf.einsum("bd,bnd->bn", h, emb(negatives))
            nll = tf.nn.softplus(-pos) + tf.reduce_sum(tf.nn.softplus(neg), axis=-1)
        return batch_mean(nll, valid)

    def _state_reconstruction(self, d, state, targets, valid):
        """`train.state_loss`: the targets scored from the sequence encoder's state alone
        (SASRec's objective), so the state learns next items at SASRec's pace while the
        latents' terms share the encoder. Zero (not computed) at weight 0."""
        if self.train_cfg.state_loss <= 0:
            return tf.constant(0.0)
        return self._reconstruction(state, self._domain(d).item_embedding, targets, valid, self.num_items[d])

    def _cold_start_reconstruction(self, d, r, targets, valid, training):
        """The targets scored as a cold-start row would be: from r's transferred latent alone
        (rows with both domains), so r and the cold-start decoder input train on every
        overlapping row without extra rows or encoder passes."""
        z_t = self._draw(r, training)
        zeros = tf.zeros_like(z_t)
        layers = self._domain(d)
        emb = layers.item_embedding
        h = layers.decoder(tf.concat([zeros, z_t, zeros], axis=-1))
        return self._reconstruction(h, emb, targets, valid, self.num_items[d])

    def _causal_targets(self, features, d, history_mask):
        """Domain d's training positions: (rows [R] of the batch whose target domain is d,
        positions [P, 2] into those rows, the target of each position [P], is it the row's
        last position [P]). A position's target is the next history item, the row's target
        after the last one; a row with no history there has its last position only."""
        rows = tf.reshape(tf.where(tf.equal(features[feature_spec.TARGET_DOMAIN], d)), [-1])
        history = tf.gather(features[self._domain(d).history], rows)
        labels = next_item_labels(history, tf.gather(features[feature_spec.TARGET_ITEM], rows))
        t = tf.shape(history)[1]
        last = tf.equal(tf.range(t), t - 1)[None]
        positions = tf.cast(tf.where((tf.gather(history_mask, rows) | last) & (labels > 0)), tf.int32)
        labels_at = tf.cast(tf.gather_nd(labels, positions), features[feature_spec.TARGET_ITEM].dtype)
        return rows, positions, labels_at, tf.equal(positions[:, 1], t - 1)

    def _causal_terms(self, features, training):
        """Every term of the objective with the causal encoder: per domain, over the
        positions of that domain's rows that have a target (the next history item, and
        the row's target after the last one; the last position alone for a row with no
        history there)."""
        cfg, terms = self.train_cfg, {}
        states = self._causal_states(features, training)
        std = tfd.MultivariateNormalDiag(loc=tf.zeros([1, self.model_cfg.latent_dim]))  # N(0, I)
        for d, name in enumerate(("x", "y")):
            layers = self._domain(d)
            emb, prior_z, prior_za = layers.item_embedding, layers.prior_z, layers.prior_za
            other = "y" if name == "x" else "x"
            rows, positions, labels_at, is_last = self._causal_targets(features, d, states[d][1])
            at = self._causal_positions(d, features, rows, positions, states, training)
            h = self._causal_decode(d, at, training)
            every = tf.ones_like(labels_at, tf.bool)
            terms[f"rec_{name}"] = self._reconstruction(h, emb, labels_at, every, self.num_items[d])
            terms[f"state_{name}"] = self._state_reconstruction(d, at["state"], labels_at, every & at["keep"])
            if cfg.cold_start_loss:  # at each row's last position: its target, from r alone
                terms[f"rec_cold_{name}"] = self._cold_start_reconstruction(d, at["r"], labels_at,
                                                                            is_last & at["both"], training)
            else:
                terms[f"rec_cold_{name}"] = tf.constant(0.0)
            kl_used_t = tf.where(at["both"], _kl(at["q_zt"], std), _kl(at["r"], std))
            w = noise_adaptive_weight(at["length"], self.max_len, cfg.noise_a, cfg.noise_b)
            keep = at["keep"]
            terms[f"kl_z_{name}"] = batch_mean(_kl(at["q_z"], prior_z.distribution()), keep)
            terms[f"kl_za_{name}"] = batch_mean(_kl(at["q_za"], prior_za.distribution()),
                                                         at["keep_augmented"])
            terms[f"kl_zt_{other}"] = batch_mean(kl_used_t, at["has_other"])  # other's interest, used here
            terms[f"informative_{other}"] = batch_mean(_kl(at["q_zt"], at["r"]), at["both"])
            terms[f"denoising_{name}"] = batch_mean(w * _kl(at["q_z"], at["q_za"]), at["keep_augmented"])
            terms[f"noise_weight_{name}"] = batch_mean(w, keep)
        return terms

    def _bidirectional_terms(self, features, training):
        h_x, h_y, enc = self(features, training=training)
        cfg = self.train_cfg
        targets, domain = features[feature_spec.TARGET_ITEM], features[feature_spec.TARGET_DOMAIN]
        fx, fy = tf.cast(enc["has_x"], tf.float32), tf.cast(enc["has_y"], tf.float32)
        both = fx * fy
        std = tfd.MultivariateNormalDiag(loc=tf.zeros_like(enc["q_z_x"].mean()))  # N(0, I)
        both_b = tf.logical_and(enc["has_x"], enc["has_y"])
        kl_used_ty = tf.where(both_b, _kl(enc["q_zt_y"], std), _kl(enc["r_zt_y"], std))
        kl_used_tx = tf.where(both_b, _kl(enc["q_zt_x"], std), _kl(enc["r_zt_x"], std))
        w_x = noise_adaptive_weight(enc["len_x"], self.max_len, cfg.noise_a, cfg.noise_b)
        w_y = noise_adaptive_weight(enc["len_y"], self.max_len, cfg.noise_a, cfg.noise_b)
        mean = tf.reduce_mean
        in_x, in_y = tf.equal(domain, 0), tf.equal(domain, 1)
        terms = {
            "rec_x": self._reconstruction(h_x, self.item_emb_x, targets, in_x, self.num_items[0]),
            "rec_y": self._reconstruction(h_y, self.item_emb_y, targets, in_y, self.num_items[1]),
            "state_x": self._state_reconstruction(0, enc["state_x"], targets, in_x & enc["has_x"]),
            "state_y": self._state_reconstruction(1, enc["state_y"], targets, in_y & enc["has_y"]),
            "rec_cold_x": (self._cold_start_reconstruction(0, enc["r_zt_y"], targets, in_x & both_b, training)
                           if cfg.cold_start_loss else tf.constant(0.0)),
            "rec_cold_y": (self._cold_start_reconstruction(1, enc["r_zt_x"], targets, in_y & both_b, training)
                           if cfg.cold_start_loss else tf.constant(0.0)),
            "kl_z_x": mean(fx * _kl(enc["q_z_x"], self.prior_z_x.distribution())),
            "kl_z_y": mean(fy * _kl(enc["q_z_y"], self.prior_z_y.distribution())),
            "kl_zt_x": mean(fx * kl_used_tx),
            "kl_zt_y": mean(fy * kl_used_ty),
            "kl_za_x": mean(tf.cast(enc["has_ax"], tf.float32) * _kl(enc["q_za_x"], self.prior_za_x.distribution())),
            "kl_za_y": mean(tf.cast(enc["has_ay"], tf.float32) * _kl(enc["q_za_y"], self.prior_za_y.distribution())),
            # informative + disentangle: the full posterior of the transferred latent vs its one-domain r
            "informative_x": mean(both * _kl(enc["q_zt_x"], enc["r_zt_x"])),
            "informative_y": mean(both * _kl(enc["q_zt_y"], enc["r_zt_y"])),
            # denoising: the domain-specific posterior vs the augmented one, weighted by history length
            "denoising_x": mean(fx * w_x * _kl(enc["q_z_x"], enc["q_za_x"])),
            "denoising_y": mean(fy * w_y * _kl(enc["q_z_y"], enc["q_za_y"])),
            "noise_weight_x": batch_mean(w_x, fx),
            "noise_weight_y": batch_mean(w_y, fy),
        }
        return terms

    def losses_and_terms(self, features, training=True):
        """Returns (total loss, dict of every term) for a batch with targets."""
        terms = (self._causal_terms if self.causal else self._bidirectional_terms)(features, training)
        lt, la, beta = self.train_cfg.lambda_t, self.train_cfg.lambda_a, self.kl_beta
        if not self.model_cfg.variational:  # the no-VAE ablation: no KL term in the objective
            lt, la, beta = 0.0, 0.0, tf.constant(0.0)
        ws = self.train_cfg.state_loss
        total = ((1.0 + lt) * (terms["rec_x"] + terms["rec_y"] + beta * (terms["kl_z_x"] + terms["kl_z_y"]))
                 + terms["rec_cold_x"] + terms["rec_cold_y"] + ws * (terms["state_x"] + terms["state_y"])
                 + beta * (terms["kl_zt_x"] + terms["kl_zt_y"] + terms["kl_za_x"] + terms["kl_za_y"])
                 + lt * (terms["informative_x"] + terms["informative_y"])
                 + la * (terms["denoising_x"] + terms["denoising_y"]))
        # each term's contribution to the total, as the objective weights it
        weights = {"rec_x": 1.0 + lt, "rec_y": 1.0 + lt, "rec_cold_x": 1.0, "rec_cold_y": 1.0,
                   "state_x": ws, "state_y": ws,
                   "kl_z_x": (1.0 + lt) * beta, "kl_z_y": (1.0 + lt) * beta,
                   "kl_zt_x": beta, "kl_zt_y": beta, "kl_za_x": beta, "kl_za_y": beta,
                   "informative_x": lt, "informative_y": lt, "denoising_x": la, "denoising_y": la}
        for name in self.LOSS_TERMS:
            terms[f"weighted_{name}"] = weights[name] * terms[name]
        terms["kl_beta"] = tf.identity(beta)
        return total, terms
