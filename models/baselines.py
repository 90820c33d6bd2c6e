"""The paper's comparison models, run in the same pipeline as i2VAE (`model.kind`).

Each is a Keras model with `score_all(features) -> (scores_x, scores_y)` over every item of
each domain (column 0 is padding), so the trainer, the validation callback, the export and
the evaluator treat them exactly like i2VAE.

- `SASRec`: single-domain SASRec, one per domain, trained next-item on the domain's own
  history (causal self-attention, every position predicts its next item). It cannot see
  the other domain, so a row with no history in the target domain gets popularity scores:
  the usual production fallback, and what makes it a fair cold-start reference.
- `LightGCNRanker`: ranks by a LightGCN's item embeddings (fold-in user from both
  histories); the trainer trains that LightGCN as a recommender on every train edge
  (`trainer.train_lightgcn_recommender`), the graph baseline.
- `PopularityRanker`: train interaction counts.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from models import feature_spec, psg
from models.loss_terms_model import LossTermsModel, batch_mean, selected_full_softmax_nll
from models.sasrec_encoder import SASRecEncoder


def _constant_weight(layer, name, value):
    """A non-trainable variable holding `value`, so the SavedModel carries it."""
    value = np.asarray(value, np.float32)
    return layer.add_weight(name=name, shape=value.shape, trainable=False,
                            initializer=tf.keras.initializers.Constant(value))


class PopularityRanker(tf.keras.Model):
    """Every user gets the train interaction counts of each domain as scores."""

    def __init__(self, popularity, **kwargs):
        super().__init__(**kwargs)
        self.popularity_x = _constant_weight(self, "popularity_x", popularity[0])
        self.popularity_y = _constant_weight(self, "popularity_y", popularity[1])

    def score_all(self, features):
        b = tf.shape(features[feature_spec.HISTORY_X])[0]
        return (tf.tile(self.popularity_x[None], [b, 1]), tf.tile(self.popularity_y[None], [b, 1]))

    def query_embeddings(self, features):
        """No row has a query: serving ranks every row by popularity."""
        none = tf.zeros_like(features[feature_spec.HISTORY_X][:, :1], tf.float32)
        return (none, none[:, 0] > 0), (none, none[:, 0] > 0)

    def item_tables(self):
        return tf.zeros_like(self.popularity_x[:, None]), tf.zeros_like(self.popularity_y[:, None])


class LightGCNRanker(tf.keras.Model):
    """Scores items by the dot product of the fold-in user embedding (mean of the LightGCN
    embeddings of both histories) with the domain's LightGCN item embeddings."""

    def __init__(self, item_emb_x, item_emb_y, **kwargs):
        super().__init__(**kwargs)
        self.item_emb_x = _constant_weight(self, "item_emb_x", item_emb_x)
        self.item_emb_y = _constant_weight(self, "item_emb_y", item_emb_y)

    def score_all(self, features):
        (user, _), _ = self.query_embeddings(features)
        return (tf.matmul(user, self.item_emb_x, transpose_b=True), tf.matmul(user, self.item_emb_y, transpose_b=True))

    def query_embeddings(self, features):
        """The fold-in user, the query of both domains."""
        user = psg.fold_in(self.item_emb_x, self.item_emb_y, features[feature_spec.HISTORY_X],
                           features[feature_spec.HISTORY_Y])
        every = tf.ones_like(user[:, 0], tf.bool)
        return (user, every), (user, every)

    def item_tables(self):
        return self.item_emb_x, self.item_emb_y


class SASRec(LossTermsModel):
    """Two independent single-domain SASRec models (X and Y) trained in one `fit`.

    Training row of target domain d: input = the d history (T items), labels = the same
    history shifted by one with the target at the end, so every real position predicts
    its next item. The loss is a sampled softmax against `num_negatives` uniform items
    shared by the batch (accidental hits masked), because a full softmax at every position
    is B x T x N; `sasrec_negatives=0` is that full softmax, over the real positions only
    (above `train.full_softmax_max_items` items, the sampled retrieval loss instead).
    Scoring uses the output at the last (most recent) position.

    Args:
      num_items_x / num_items_y: vocabulary sizes.
      model_cfg: `ModelConfig` (d, heads, blocks, dropout, sasrec_negatives).
      popularity: train counts per domain ([N+1] each), the no-history fallback.
      max_len: T.
      sampled_retrieval: per domain, the `models.retrieval.SampledRetrieval` that replaces the
        full softmax on a large catalogue, or None.
    """

    LOSS_TERMS = ("rec_x", "rec_y")

    def __init__(self, num_items_x, num_items_y, model_cfg, popularity, max_len, sampled_retrieval=(None, None),
                 **kwargs):
        super().__init__(**kwargs)
        self.sampled_retrieval = tuple(sampled_retrieval)
        d = model_cfg.embedding_dim
        self.num_items, self.max_len, self.num_negatives = (num_items_x, num_items_y), max_len, model_cfg.sasrec_negatives
        enc = dict(dim=d, num_heads=model_cfg.num_heads, num_blocks=model_cfg.num_blocks, dropout=model_cfg.dropout,
                   causal=True, packed=model_cfg.pack_sequences)
        self.item_emb, self.encoders, self.popularity = [], [], []
        for name, n, pop in (("x", num_items_x, popularity[0]), ("y", num_items_y, popularity[1])):
            init = tf.keras.initializers.TruncatedNormal(stddev=0.02)  # one per table, or both start equal
            emb = tf.keras.layers.Embedding(n + 1, d, embeddings_initializer=init, name=f"item_emb_{name}")
            self.item_emb.append(emb)
            self.encoders.append(SASRecEncoder(emb, max_len, name=f"sasrec_{name}", **enc))
            self.popularity.append(_constant_weight(self, f"popularity_{name}", pop))
        self._make_trackers(self.LOSS_TERMS)

    def _last_state(self, d, history, training):
        states, mask = self.encoders[d](history, training=training)
        return states[:, -1], tf.reduce_any(mask, axis=1)

    def score_all(self, features):
        out = []
        for d, (h, has) in enumerate(self.query_embeddings(features)):
            scores = tf.matmul(h, self.item_emb[d].embeddings, transpose_b=True)
            b = tf.shape(scores)[0]
            out.append(tf.where(has[:, None], scores, tf.tile(self.popularity[d][None], [b, 1])))
        return tuple(out)

    def query_embeddings(self, features):
        """Per domain (the last position's state, whether the domain has history): a row
        without one is ranked by popularity."""
        return tuple(self._last_state(d, features[name], training=False)
                     for d, name in enumerate((feature_spec.HISTORY_X, feature_spec.HISTORY_Y)))

    def item_embeddings(self):
        """The trained item table of each domain: what warm start carries over by raw id."""
        return self.item_emb[0].embeddings, self.item_emb[1].embeddings

    def item_tables(self):
        return self.item_embeddings()

    def call(self, features, training=False):
        return self.score_all(features)

    def _next_item_loss(self, d, features, training):
        history = features[feature_spec.HISTORY_X if d == 0 else feature_spec.HISTORY_Y]
        rows = tf.equal(features[feature_spec.TARGET_DOMAIN], d)
        target = tf.where(rows, features[feature_spec.TARGET_ITEM],
                          tf.zeros_like(features[feature_spec.TARGET_ITEM]))  # other domain's id
        labels = tf.concat([history[:, 1:], target[:, None]], axis=1)
        states, mask = self.encoders[d](history, training=training)
        valid = tf.logical_and(mask, rows[:, None])
        emb = self.item_emb[d]
        if self.num_negatives == 0 and self.sampled_retrieval[d] is not None:  # a large catalogue
            return self.sampled_retrieval[d](states, emb, labels, valid)
        if self.num_negatives == 0:  # full softmax over the domain's items, at the real positions only
            return selected_full_softmax_nll(states, emb, labels, valid)
        negatives = tf.random.uniform([self.num_negatives], 1, self.num_items[d] + 1, dtype=tf.int64)
        pos = tf.reduce_sum(states * emb(labels), axis=-1, keepdims=True)
        neg = tf.einsum("btd,sd->bts", states, emb(negatives))
        neg = tf.where(tf.equal(labels[..., None], negatives[None, None]), -1e9, neg)
        nll = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.zeros_like(labels), tf.concat([pos, neg], axis=-1))
        return batch_mean(nll, valid)

    def losses_and_terms(self, features, training=True):
        terms = {"rec_x": self._next_item_loss(0, features, training),
                 "rec_y": self._next_item_loss(1, features, training)}
        return terms["rec_x"] + terms["rec_y"], terms
