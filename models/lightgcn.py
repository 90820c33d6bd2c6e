"""LightGCN (He et al., 2020) in Keras: the graph model behind the pseudo-sequence generator.

One bipartite graph joins the train users with the items of both domains, so
propagation carries a user's interest from one domain to the other. Item nodes are
numbered X items first, then Y items (`item_offset_y`).
"""
from __future__ import annotations

import logging
import time
from typing import Callable, Optional

import numpy as np
import tensorflow as tf

logger = logging.getLogger(__name__)


def normalized_adjacency(num_users: int, num_items: int, users: np.ndarray, items: np.ndarray) -> tf.SparseTensor:
    """Symmetric D^-1/2 A D^-1/2 of the bipartite graph, users first then items.

    Duplicate (user, item) edges are counted once.
    """
    edges = np.unique(np.stack([users, items], axis=1), axis=0)
    u, i = edges[:, 0], edges[:, 1] + num_users
    n = num_users + num_items
    deg = np.bincount(np.concatenate([u, i]), minlength=n).astype(np.float64)
    inv_sqrt = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1)), 0.0)
    rows = np.concatenate([u, i])
    cols = np.concatenate([i, u])
    vals = (inv_sqrt[rows] * inv_sqrt[cols]).astype(np.float32)
    order = np.lexsort((cols, rows))
    return tf.SparseTensor(indices=np.stack([rows[order], cols[order]], axis=1).astype(np.int64),
                           values=vals[order], dense_shape=[n, n])


class LightGCN(tf.keras.Model):
    """Embeddings propagated over the normalized graph and averaged across layers.

    Args:
      num_users: user nodes.
      num_items: item nodes (both domains).
      adjacency: the normalized adjacency from `normalized_adjacency`.
      embedding_dim: size of the layer-0 embeddings (default 64, the reference setting).
      num_layers: propagation layers (default 3).
      l2_reg: weight of the L2 penalty on the layer-0 embeddings of a batch (default 1e-4).
      seed: initializer seed.
    """

    def __init__(self, num_users, num_items, adjacency, embedding_dim, num_layers, l2_reg, seed):
        super().__init__()
        self.num_users, self.num_items = num_users, num_items
        self.adjacency = adjacency
        self.num_layers, self.l2_reg = num_layers, l2_reg
        init = tf.keras.initializers.RandomNormal(stddev=0.1, seed=seed)
        self.embeddings = self.add_weight(name="layer0", shape=(num_users + num_items, embedding_dim), initializer=init)

    def propagate(self):
        """Returns (user embeddings, item embeddings) after mean-over-layers propagation."""
        layer = self.embeddings
        total = layer
        for _ in range(self.num_layers):
            layer = tf.sparse.sparse_dense_matmul(self.adjacency, layer)
            total = total + layer
        final = total / float(self.num_layers + 1)
        return final[: self.num_users], final[self.num_users:]

    def bpr_loss(self, users, pos, neg):
        """BPR loss of (user, positive, negative) triples plus the L2 penalty."""
        user_emb, item_emb = self.propagate()
        u, p, n = tf.gather(user_emb, users), tf.gather(item_emb, pos), tf.gather(item_emb, neg)
        margin = tf.reduce_sum(u * (p - n), axis=-1)
        bpr = -tf.reduce_mean(tf.math.log_sigmoid(margin))
        e0 = self.embeddings
        reg = (tf.reduce_sum(tf.square(tf.gather(e0, users)))
               + tf.reduce_sum(tf.square(tf.gather(e0, pos + self.num_users)))
               + tf.reduce_sum(tf.square(tf.gather(e0, neg + self.num_users)))) / tf.cast(tf.shape(users)[0], tf.float32)
        return bpr, 0.5 * self.l2_reg * reg


def sample_negatives(rng, pos_items, domain_of_item, item_ranges, edge_keys, users, num_items):
    """One negative per edge, from the positive's own domain, resampled once if it is a known edge."""
    neg = np.empty_like(pos_items)
    for d, (lo, hi) in enumerate(item_ranges):
        mask = domain_of_item[pos_items] == d
        neg[mask] = rng.integers(lo, hi, size=mask.sum())
    clash = np.isin(users.astype(np.int64) * num_items + neg, edge_keys)
    for d, (lo, hi) in enumerate(item_ranges):
        mask = clash & (domain_of_item[pos_items] == d)
        neg[mask] = rng.integers(lo, hi, size=mask.sum())
    return neg


def train_lightgcn(model: LightGCN, users: np.ndarray, items: np.ndarray, item_ranges, cfg,
                   validate: Optional[Callable[[LightGCN], float]] = None, log_dir: Optional[str] = None):
    """Trains with BPR until validation recall stops improving or `cfg.max_epochs` is reached.

    `validate(model) -> recall` runs every `cfg.eval_every` epochs; the best weights are kept.
    Returns a history dict with per-epoch loss and the validation recalls.
    """
    rng = np.random.default_rng(cfg.seed)
    optimizer = tf.keras.optimizers.Adam(cfg.learning_rate)
    domain_of_item = np.zeros(model.num_items, dtype=np.int64)
    for d, (lo, hi) in enumerate(item_ranges):
        domain_of_item[lo:hi] = d
    edge_keys = np.unique(users.astype(np.int64) * model.num_items + items)
    writer = tf.summary.create_file_writer(log_dir) if log_dir else None

    @tf.function
    def step(u, p, n):
        with tf.GradientTape() as tape:
            bpr, reg = model.bpr_loss(u, p, n)
            loss = bpr + reg
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return bpr

    history = {"loss": [], "recall": [], "best_epoch": 0, "best_recall": -1.0, "epochs": 0, "seconds": 0.0}
    best_weights, bad_evals, start = None, 0, time.time()
    for epoch in range(1, cfg.max_epochs + 1):
        neg = sample_negatives(rng, items, domain_of_item, item_ranges, edge_keys, users, model.num_items)
        order = rng.permutation(len(users))
        losses = []
        for lo in range(0, len(order), cfg.batch_size):
            idx = order[lo: lo + cfg.batch_size]
            losses.append(float(step(users[idx], items[idx], neg[idx])))
        history["loss"].append(float(np.mean(losses)))
        history["epochs"] = epoch
        if writer:
            with writer.as_default():
                tf.summary.scalar("lightgcn/bpr_loss", history["loss"][-1], step=epoch)
        if validate is not None and (epoch % cfg.eval_every == 0 or epoch == cfg.max_epochs):
            recall = float(validate(model))
            history["recall"].append((epoch, recall))
            if writer:
                with writer.as_default():
                    tf.summary.scalar(f"lightgcn/val_recall@{cfg.recall_k}", recall, step=epoch)
            logger.info(f"[lightgcn] epoch {epoch}/{cfg.max_epochs} bpr {history['loss'][-1]:.4f} "
                  f"val recall@{cfg.recall_k} {recall:.4f} ({time.time() - start:.0f}s)")
            if recall > history["best_recall"]:
                history["best_recall"], history["best_epoch"] = recall, epoch
                best_weights, bad_evals = model.embeddings.numpy(), 0
            else:
                bad_evals += 1
                if bad_evals >= cfg.patience:
                    logger.info(f"[lightgcn] early stop at epoch {epoch}; best epoch {history['best_epoch']}")
                    break
    if best_weights is not None:
        model.embeddings.assign(best_weights)
    history["seconds"] = time.time() - start
    if writer:
        writer.flush()
    return history
