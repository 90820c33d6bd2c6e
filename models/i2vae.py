"""i2VAE: interest information augmentation with variational regularizers (arXiv 2405.20710).

A Keras subclassed model. Inputs are dicts of left-padded item-index tensors
(`history_x` [B, T], `history_y` [B, T], `pseudo_x` [B, T'], `pseudo_y` [B, T']; 0 is
padding). Six Gaussian latents are TFP distributions; `losses` computes every term of
the paper's objective (section 3.4.5, docs/method.md) through `models.objective`, which
the model composes, so each term is computed once for both encoders and logged.

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
from models.graph_blend import GraphBlend
from models.latent_heads import CrossDomainAttention, CrossDomainMLP, GaussianHead, LearnablePrior
from models.loss_terms_model import LossTermsModel
from models.objective import DomainOutputs, I2VAEObjective, Posteriors, Targets
from models.sasrec_encoder import SASRecEncoder, masked_mean, pool_history

tfd = tfp.distributions


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
    """The i2VAE model: encoders, latent heads and decoders, composed with `I2VAEObjective`.

    Two encoders (`model_cfg.encoder`) give the objective the same thing, `Posteriors` and
    `Targets` per domain at its prediction points:
      "bidirectional" (the paper): bidirectional self-attention, mean-pooled; one set of
        six latents per row, and one target per row (its last item).
      "causal" (an extension beyond the paper): causal self-attention, and the latents of
        every history position, so every position predicts the item that follows it, as
        SASRec trains: one encoder pass per row gives every target of its history. The
        augmented sequence puts the recalled items before the history (recalled, then
        h_1..h_T); its latent is read at the last position only, because recall used the
        whole history and so knows about every earlier position's next item. Only the
        positions that have a target are decoded (histories are mostly short, so most of
        the padded T columns are not), and only in the rows' target domain. Inference reads
        each domain's last position.

    Both train the cold-start path on every row with both domains (`train_cfg.cold_start_loss`):
    the row's target is also predicted from the transferred interest alone (z_t from r,
    the domain-specific latents masked), as a cold-start row is scored (docs/method.md).

    Args:
      num_items_x / num_items_y: vocabulary sizes (item indices 1..N; 0 is padding).
      model_cfg: `models.config.ModelConfig` (d, latent size, heads, blocks, dropout,
        encoder, cross-domain encoder variant, decoder hidden sizes).
      train_cfg: `models.config.TrainConfig` (the objective's weights and reconstruction).
      max_len / pseudo_len: T and T' (`data.max_len`, `data.pseudo_len`).
    """

    LOSS_TERMS = I2VAEObjective.TERMS

    def __init__(self, num_items_x, num_items_y, model_cfg, train_cfg, max_len, pseudo_len,
                 sampled_retrieval=(None, None), **kwargs):
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
        self.r_y = GaussianHead(k, s, hidden=[d], name="r_zt_y")  # r^y(z_t^y | y)
        self.r_x = GaussianHead(k, s, hidden=[d], name="r_zt_x")  # r^x(z_t^x | x)
        self.prior_z_x = LearnablePrior(k, s, name="prior_z_x")
        self.prior_z_y = LearnablePrior(k, s, name="prior_z_y")
        self.prior_za_x = LearnablePrior(k, s, name="prior_za_x")
        self.prior_za_y = LearnablePrior(k, s, name="prior_za_y")
        self.dec_x = self._decoder(model_cfg.decoder_hidden, d, "decoder_x")
        self.dec_y = self._decoder(model_cfg.decoder_hidden, d, "decoder_y")
        self.objective = I2VAEObjective(train_cfg, self.num_items, max_len, model_cfg.encoder, model_cfg.variational,
                                        sampled_retrieval, name="objective")
        # beta multiplies the six prior KL terms; KLAnnealing can raise it from 0 to train_cfg.kl_weight
        self.kl_beta = tf.Variable(float(train_cfg.kl_weight), trainable=False, dtype=tf.float32, name="kl_beta")
        # w in h = w * dec([z, z_t, z_a]) + state at inference (`model.residual_state`); training
        # always uses 1. The trainer sets it after training from `train.decoder_weight_grid`
        # on validation; it is saved with the weights, so serving scores the same way
        self.decoder_weight = tf.Variable(1.0, trainable=False, dtype=tf.float32, name="decoder_weight")
        # the generator graph's weight at inference (`train.graph_blend_grid`, models/graph_blend.py):
        # set with `attach_graph_blend` after training, on validation; saved with the weights
        self.graph_weight = tf.Variable(0.0, trainable=False, dtype=tf.float32, name="graph_weight")
        self.graph_blend = None
        self._make_trackers(I2VAEObjective.LOGGED)

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

    def _draw(self, dist, training):
        """A sample in training, the mean otherwise and always without `model.variational`."""
        return _sample(dist, training and self.model_cfg.variational)

    # ----- posteriors at the prediction points -----
    def posteriors(self, features, training=False):
        """Each domain's `Posteriors` where inference reads them: per row (bidirectional) or
        at each domain's last position (causal)."""
        if not self.causal:
            return self._row_posteriors(features, training)
        states = self._causal_states(features, training)
        return tuple(self._causal_posteriors(d, features, *self._last_positions(features, d), states, training)
                     for d in (0, 1))

    def encode(self, features, training=False):
        """The eight posteriors by name (TensorBoard's histograms): z_t^y is Y's interest used in X."""
        px, py = self.posteriors(features, training)
        return {"q_z_x": px.q_z, "q_za_x": px.q_za, "q_zt_y": px.q_zt, "r_zt_y": px.r,
                "q_z_y": py.q_z, "q_za_y": py.q_za, "q_zt_x": py.q_zt, "r_zt_x": py.r}

    def _row_posteriors(self, features, training):
        """The paper's encoder: one set of latents per row, both domains."""
        xs, mx = self.enc_x(features[feature_spec.HISTORY_X], training=training)
        ys, my = self.enc_y(features[feature_spec.HISTORY_Y], training=training)
        axs, max_ = self.enc_ax(features[feature_spec.PSEUDO_X], training=training)
        ays, may = self.enc_ay(features[feature_spec.PSEUDO_Y], training=training)
        # pooling applies to the real histories only: a pseudo-sequence ends in recalled
        # items, so its last position carries no recency
        state_x, state_y = pool_history(xs, mx, self.model_cfg.pooling), pool_history(ys, my, self.model_cfg.pooling)
        xs, ys, X, Y = self._for_latents(xs, ys, state_x, state_y)
        if isinstance(self.q_zt_y, CrossDomainAttention):
            q_zt_y = self.q_zt_y(xs, mx, ys, my, training=training)  # Y's interest transferred to X
            q_zt_x = self.q_zt_x(ys, my, xs, mx, training=training)
        else:
            q_zt_y, q_zt_x = self.q_zt_y(X, Y), self.q_zt_x(Y, X)
        has_x, has_y = tf.reduce_any(mx, axis=1), tf.reduce_any(my, axis=1)
        return (Posteriors(self.q_z_x(X), self.q_za_x(masked_mean(axs, max_)), q_zt_y, self.r_y(Y), own=has_x,
                           other=has_y, augmented=tf.reduce_any(max_, axis=1),
                           length=tf.reduce_sum(tf.cast(mx, tf.int32), 1), state=state_x),
                Posteriors(self.q_z_y(Y), self.q_za_y(masked_mean(ays, may)), q_zt_x, self.r_x(X), own=has_y,
                           other=has_x, augmented=tf.reduce_any(may, axis=1),
                           length=tf.reduce_sum(tf.cast(my, tf.int32), 1), state=state_y))

    def _for_latents(self, *states):
        """The encoder states as the posterior heads read them: `model.detach_latents` stops
        their gradient, so only the next-item losses train the history encoders."""
        return tuple(tf.stop_gradient(s) for s in states) if self.model_cfg.detach_latents else states

    def _causal_states(self, features, training):
        return (self.enc_x(features[feature_spec.HISTORY_X], training=training),
                self.enc_y(features[feature_spec.HISTORY_Y], training=training))

    def _last_positions(self, features, d):
        b = tf.shape(features[feature_spec.HISTORY_X])[0]
        t = tf.shape(features[self._domain(d).history])[1]
        return tf.range(b), tf.stack([tf.range(b), tf.fill([b], t - 1)], axis=1)

    def _causal_posteriors(self, d, features, rows, positions, states, training) -> Posteriors:
        """Domain d's posteriors at `positions` ([P, 2]: index into `rows`, column) of the
        batch rows `rows` ([R]); `states` holds both histories' encoder outputs for the batch.
        `own` is a real history position; the augmented latent is read at the last position only."""
        layers = self._domain(d)
        (own, own_mask), (other, other_mask) = states[d], states[1 - d]
        own_state, own_mask = tf.gather(own, rows), tf.gather(own_mask, rows)
        other, other_mask = tf.gather(other, rows), tf.gather(other_mask, rows)
        own, other = self._for_latents(own_state, other)
        history = tf.gather(features[layers.history], rows)
        t = tf.shape(history)[1]
        # the augmented sequence's last position, the one place its latent is read (below)
        augmented, _ = layers.augmented_encoder(augmented_sequence(tf.gather(features[layers.pseudo], rows), history),
                                                training=training, last_only=True)
        other_summary = pool_history(other, other_mask, "last")  # the causal last position has read it all
        row = positions[:, 0]
        q_zt = layers.q_zt
        if isinstance(q_zt, CrossDomainAttention):
            cross = q_zt.head(tf.gather_nd(q_zt.attend(own, own_mask, other, other_mask, training), positions))
        else:
            cross = q_zt(tf.gather_nd(own, positions), tf.gather(other_summary, row))
        keep = tf.gather_nd(own_mask, positions)
        # the recalled items were chosen with the whole history's fold-in, so they carry
        # information about the items after an earlier position: the augmented latent is
        # read at the last position only, where the next item (the row's target) is not
        # among what recall saw, as at serving time
        return Posteriors(q_z=layers.q_z(tf.gather_nd(own, positions)),
                          q_za=layers.q_za(tf.gather(augmented, row)),  # the row's last position; masked elsewhere
                          q_zt=cross, r=layers.r(tf.gather(other_summary, row)), own=keep,
                          other=tf.gather(tf.reduce_any(other_mask, axis=1), row),
                          augmented=keep & tf.equal(positions[:, 1], t - 1),
                          length=tf.gather_nd(tf.cumsum(tf.cast(own_mask, tf.int32), axis=1), positions),
                          state=tf.gather_nd(own_state, positions))  # zero at padding (a cold-start row's last position)

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

    def _training_points(self, features, training):
        """Per domain, the `Posteriors` and `Targets` the objective reads in training."""
        if not self.causal:
            items, domain = features[feature_spec.TARGET_ITEM], features[feature_spec.TARGET_DOMAIN]
            every_row = tf.ones_like(items, tf.bool)
            return [(p, Targets(items, tf.equal(domain, d), every_row))
                    for d, p in enumerate(self._row_posteriors(features, training))]
        states = self._causal_states(features, training)
        points = []
        for d in (0, 1):
            rows, positions, items, is_last = self._causal_targets(features, d, states[d][1])
            points.append((self._causal_posteriors(d, features, rows, positions, states, training),
                           Targets(items, tf.ones_like(items, tf.bool), is_last)))
        return points

    # ----- decoding -----
    def decode(self, d, p: Posteriors, training=False):
        """h = dec([z, z_t, z_a]) (+ the state, `model.residual_state`) at the points of `p`:
        a latent is zero where it is absent, z_t routed as `Posteriors.transferred` says.
        `model.cold_start_augmented` keeps z_a where the domain has no history."""
        z = _masked(self._draw(p.q_z, training), p.own)
        z_t = _masked(self._draw(p.transferred, training), p.other)
        z_a = _masked(self._draw(p.q_za, training),
                      p.augmented if self.model_cfg.cold_start_augmented else p.augmented & p.own)
        return self._with_state(self._domain(d).decoder(tf.concat([z, z_t, z_a], axis=-1)), p.state, training)

    def _cold_start_decode(self, d, p: Posteriors, training):
        """h as a cold-start point would have it: from r's transferred latent alone."""
        z_t = self._draw(p.r, training)
        zeros = tf.zeros_like(z_t)
        return self._domain(d).decoder(tf.concat([zeros, z_t, zeros], axis=-1))

    def _with_state(self, h, state, training):
        """`model.residual_state`: the decoder's output plus the history's own state; at
        inference the decoder's part weighs `decoder_weight` (a cold-start row has no state,
        so its ranking does not depend on it)."""
        if not self.model_cfg.residual_state:
            return h
        return (h if training else self.decoder_weight * h) + state

    def call(self, features, training=False):
        """User representations (h_u^X, h_u^Y), each [B, d], and the posteriors; score items
        with `score_all`."""
        px, py = self.posteriors(features, training)
        return self.decode(0, px, training), self.decode(1, py, training), (px, py)

    def score_all(self, features):
        """Scores of every item of each domain (column 0 is padding), at inference (means)."""
        (h_x, _), (h_y, _) = self.query_embeddings(features)
        table_x, table_y = self.item_tables()
        return tf.matmul(h_x, table_x, transpose_b=True), tf.matmul(h_y, table_y, transpose_b=True)

    def query_embeddings(self, features):
        """Per domain (h_u [B, d], whether the row has one): the query that `item_tables`
        are scored against (serving's top-K layers). Every row has one. With the generator
        graph attached, [h / sd(h), w u / sd(u)] (models/graph_blend.py)."""
        h_x, h_y, _ = self(features, training=False)
        if self.graph_blend is not None:
            h_x, h_y = self.graph_blend.queries((h_x, h_y), features[feature_spec.HISTORY_X],
                                                features[feature_spec.HISTORY_Y], self.graph_weight)
        every = tf.ones_like(h_x[:, 0], tf.bool)
        return (h_x, every), (h_y, every)

    def item_embeddings(self):
        """The trained item table of each domain ([N + 1, d] variables, row 0 padding): what
        warm start carries over by raw id."""
        return self.item_emb_x.embeddings, self.item_emb_y.embeddings

    def item_tables(self):
        """The table each domain's queries score ([N + 1, d], row 0 padding): the item
        embeddings, with the generator graph attached each row followed by its graph embedding."""
        tables = self.item_embeddings()
        return tables if self.graph_blend is None else self.graph_blend.tables(tables)

    def attach_graph_blend(self, graph_items) -> None:
        """Scores at inference blend the generator graph's (`graph_items`: its item embeddings
        per domain, row 0 padding) at `graph_weight`. Call once the item tables are trained:
        the standardising covariances are taken from them now."""
        self.graph_blend = GraphBlend(graph_items, [table.numpy() for table in self.item_embeddings()])

    def detach_graph_blend(self) -> None:
        self.graph_blend = None
        self.graph_weight.assign(0.0)

    def losses_and_terms(self, features, training=True):
        """Returns (total loss, dict of every term) for a batch with targets."""
        domains = []
        for d, (p, targets) in enumerate(self._training_points(features, training)):
            layers = self._domain(d)
            domains.append(DomainOutputs(
                p, targets, self.decode(d, p, training),
                self._cold_start_decode(d, p, training) if self.train_cfg.cold_start_loss else None,
                layers.item_embedding, layers.prior_z.distribution(), layers.prior_za.distribution()))
        return self.objective(domains, self.kl_beta)
