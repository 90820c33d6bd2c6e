"""Next-item losses for large catalogues: TensorFlow Recommenders' retrieval task over the
batch's own targets and items sampled by popularity, and an Adam that updates only the
embedding rows a step touched. An extension beyond the paper (docs/method.md).

The full softmax scores every item of the domain at every target point: [points, items]
logits per step, fine at 40,000 items and gigabytes at 1,000,000. Above
`train.full_softmax_max_items` items a domain trains with `SampledRetrieval` instead; below,
the full softmax stays (what validation selected on the Amazon pairs).
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from models.loss_terms_model import batch_mean

# TFRS 0.7.7's `Retrieval.call` takes `len()` of a tensor's shape, which works eagerly and
# under autograph only; the train step runs without autograph (`LossTermsModel.train_step`),
# so the task's call is converted here, once
_retrieval_loss = tf.autograph.to_graph(tfrs.tasks.Retrieval.call)


class SampledRetrieval(tf.keras.layers.Layer):
    """-log p(target | h) against the batch's other targets (in-batch negatives) and
    `num_negatives` items drawn by popularity, through `tfrs.tasks.Retrieval`.

    Every candidate's score is corrected by the log of its sampling probability (logQ: a
    popular item is a negative more often, and would otherwise be pushed down for being
    popular), and a candidate that is the row's own target elsewhere in the batch is not a
    negative (`remove_accidental_hits`). Both kinds of candidate are taken to follow the
    same distribution, the train popularity (plus one, so every item can be drawn): the
    targets of a batch are drawn from the interactions, which is what popularity counts.

    Args:
      popularity: train interaction counts of the domain, [N + 1] with the padding item 0.
      num_negatives: items drawn by popularity per step, shared by the batch.
    """

    def __init__(self, popularity: np.ndarray, num_negatives: int, **kwargs):
        super().__init__(**kwargs)
        counts = np.asarray(popularity, np.float64) + 1.0
        counts[0] = 0.0  # padding is never a candidate
        self.num_negatives = num_negatives
        log_q = np.log(np.maximum(counts / counts.sum(), 1e-30)).astype(np.float32)
        log_q[0] = -np.inf
        self.log_q = self.add_weight(name="log_sampling_probability", shape=log_q.shape, trainable=False,
                                     initializer=tf.keras.initializers.Constant(log_q))
        self.task = tfrs.tasks.Retrieval(
            loss=tf.keras.losses.CategoricalCrossentropy(from_logits=True, reduction=tf.keras.losses.Reduction.NONE),
            remove_accidental_hits=True)

    def call(self, h: tf.Tensor, item_embedding, targets: tf.Tensor, selected: tf.Tensor) -> tf.Tensor:
        """The mean over the `selected` points of h ([..., d]) and their targets (ids 1..N)."""
        # flat points of known rank (the task reads the queries' rank in Python)
        queries = tf.reshape(tf.boolean_mask(h, selected), [-1, h.shape[-1]])
        positives = tf.reshape(tf.cast(tf.boolean_mask(targets, selected), tf.int64), [-1])
        negatives = tf.random.categorical(self.log_q[None], self.num_negatives, dtype=tf.int64)[0]
        candidates = tf.concat([positives, negatives], axis=0)
        nll = _retrieval_loss(self.task, queries, item_embedding(candidates),
                              candidate_sampling_probability=tf.exp(tf.gather(self.log_q, candidates)),
                              candidate_ids=candidates, compute_metrics=False, compute_batch_metrics=False)
        return batch_mean(nll, tf.ones_like(nll))


def domain_losses(num_items: Sequence[int], popularity, train_cfg) -> Tuple[Optional[SampledRetrieval], ...]:
    """Per domain: a `SampledRetrieval` when the domain has more than
    `train.full_softmax_max_items` items, else None (the full softmax). Without popularity
    (a model built for a benchmark or a test) the negatives are drawn uniformly."""
    out = []
    for d, n in enumerate(num_items):
        counts = popularity[d] if popularity is not None else np.zeros(n + 1)
        out.append(SampledRetrieval(counts, train_cfg.retrieval_negatives, name=f"sampled_retrieval_{'xy'[d]}")
                   if n > train_cfg.full_softmax_max_items else None)
    return tuple(out)


class LazyAdam(tf.keras.optimizers.Adam):
    """Adam whose sparse updates (an embedding table's gathered rows) touch those rows only.

    Keras' Adam decays the moments of every row of a table at every step, even for a
    sparse gradient: at 1,000,000 items that is several passes over gigabytes per step, for
    rows the step never saw. Here a row's moments and value change only in the steps that
    gather it (the LazyAdam of TF Addons, which is not available for this TensorFlow);
    dense gradients take Adam's own update.
    """

    def update_step(self, gradient, variable):
        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable)
        step = tf.cast(self.iterations + 1, variable.dtype)
        alpha = (tf.cast(self.learning_rate, variable.dtype) * tf.sqrt(1 - tf.pow(tf.cast(self.beta_2, variable.dtype),
                                                                                   step))
                 / (1 - tf.pow(tf.cast(self.beta_1, variable.dtype), step)))
        key = self._var_key(variable)
        m, v = self._momentums[self._index_dict[key]], self._velocities[self._index_dict[key]]
        rows, position = tf.unique(gradient.indices)  # a row gathered twice gets its summed gradient once
        grad = tf.math.unsorted_segment_sum(gradient.values, position, tf.shape(rows)[0])
        m_rows = self.beta_1 * tf.gather(m, rows) + (1 - self.beta_1) * grad
        v_rows = self.beta_2 * tf.gather(v, rows) + (1 - self.beta_2) * tf.square(grad)
        m.scatter_update(tf.IndexedSlices(m_rows, rows))
        v.scatter_update(tf.IndexedSlices(v_rows, rows))
        variable.scatter_sub(tf.IndexedSlices(alpha * m_rows / (tf.sqrt(v_rows) + self.epsilon), rows))
