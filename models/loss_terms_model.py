"""A Keras model whose `fit` logs every term of its objective (i2VAE and the SASRec baseline)."""
from __future__ import annotations

import tensorflow as tf


def batch_mean(value: tf.Tensor, weight: tf.Tensor) -> tf.Tensor:
    """The mean of `value` over the entries of the whole batch that `weight` selects.

    Under a tf.distribute strategy each replica holds part of the batch and the update is
    the mean of the replicas' losses. A replica that divided its sum by its own count
    would weigh its entries by how many it happened to get (a causal encoder's positions,
    one domain's rows); dividing by the replicas' mean count instead makes the mean of the
    replicas' losses the mean over the whole batch. With one replica it is the plain
    weighted mean (0 when nothing is selected)."""
    weight = tf.cast(weight, tf.float32)
    count = tf.reduce_sum(weight)
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync > 1:
        count = context.all_reduce(tf.distribute.ReduceOp.MEAN, count)
    return tf.math.divide_no_nan(tf.reduce_sum(weight * value), count)


def full_softmax_nll(h: tf.Tensor, item_embedding, targets: tf.Tensor) -> tf.Tensor:
    """Cross-entropy of each target (item ids 1..N) over every item of the domain, scored
    by dot product with the item table (row 0, padding, is not a candidate): the full
    softmax reconstruction of i2VAE and SASRec's `sasrec_negatives=0`."""
    logits = tf.matmul(h, item_embedding.embeddings[1:], transpose_b=True)
    return tf.nn.sparse_softmax_cross_entropy_with_logits(targets - 1, logits)


def selected_full_softmax_nll(h: tf.Tensor, item_embedding, targets: tf.Tensor, selected: tf.Tensor) -> tf.Tensor:
    """`full_softmax_nll` averaged over the rows `selected` picks, scoring only those rows
    (the full softmax is most of a step's cost; SASRec's positions and the causal i2VAE's)."""
    nll = full_softmax_nll(tf.boolean_mask(h, selected), item_embedding, tf.boolean_mask(targets, selected))
    return batch_mean(nll, tf.ones_like(nll))


class LossTermsModel(tf.keras.Model):
    """A Keras model whose `fit` logs every term of its objective as its own scalar.

    Subclasses implement `losses_and_terms(batch, training) -> (total, {name: scalar})` and
    list the names in `tracked`; Keras' TensorBoard callback then writes each one.
    """

    def _make_trackers(self, names):
        self.trackers = {name: tf.keras.metrics.Mean(name=name) for name in ("loss",) + tuple(names)}

    @property
    def metrics(self):
        return list(self.trackers.values())

    def _update(self, total, terms):
        self.trackers["loss"].update_state(total)
        for name, value in terms.items():
            self.trackers[name].update_state(value)
        return {name: t.result() for name, t in self.trackers.items()}

    # Our model code has no tensor-dependent Python control flow, so autograph's conversion
    # (of this code and of TFP/Keras below it) buys nothing and doubles the trace time.
    @tf.autograph.experimental.do_not_convert
    def train_step(self, data):
        with tf.GradientTape() as tape:
            total, terms = self.losses_and_terms(data, training=True)
            # under a tf.distribute strategy the replicas' gradients are summed: scale so
            # the update is that of the mean over the global batch
            scaled = total / tf.distribute.get_strategy().num_replicas_in_sync
        grads = tape.gradient(scaled, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        return self._update(total, terms)

    @tf.autograph.experimental.do_not_convert
    def test_step(self, data):
        return self._update(*self.losses_and_terms(data, training=False))
