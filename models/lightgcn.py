"""LightGCN (He et al., 2020) in Keras: the graph model behind the pseudo-sequence generator,
and the graph baseline trained as a recommender (`model.kind="lightgcn"`, models/trainer.py).

One bipartite graph joins the train users with the items of both domains, so
propagation carries a user's interest from one domain to the other. Item nodes are
numbered X items first, then Y items (`item_offset_y`).
"""
from __future__ import annotations

import logging
import time
from typing import Callable, Dict, List, Optional

import numpy as np
import tensorflow as tf

from models import feature_spec

logger = logging.getLogger(__name__)


class Graph:
    """The train split's user-item graph: user index, item nodes (X first, then Y), edges.

    With `hold_out_targets` (the pseudo-sequence generator's graph) a user's edges are the
    items of their train rows except those rows' targets: a train row's pseudo-sequence then
    comes from embeddings never fitted on its own target, as an eval or test row's does
    (docs/method.md, data, split and leakage). The user's other row may list a target as
    history (the paper's files do), so the targets are collected per user first. Without it
    (LightGCN as a recommender) every train interaction, targets included, is an edge.
    """

    def __init__(self, rows: List[Dict], num_items_x: int, num_items_y: int, hold_out_targets: bool):
        self.num_items_x, self.num_items_y = num_items_x, num_items_y
        self.user_index: Dict[str, int] = {}
        targets: Dict[str, set] = {}
        for row in rows:
            targets.setdefault(row[feature_spec.USER_ID], set()).add(
                (row[feature_spec.TARGET_DOMAIN], row[feature_spec.TARGET_ITEM]))
        users, items = [], []
        for row in sorted(rows, key=lambda r: r[feature_spec.USER_ID]):  # user indices independent of Beam's file order
            held_out = targets[row[feature_spec.USER_ID]] if hold_out_targets else set()
            u = self.user_index.setdefault(row[feature_spec.USER_ID], len(self.user_index))
            for i in row[feature_spec.HISTORY_X]:
                if (0, i) not in held_out:
                    users.append(u)
                    items.append(i - 1)
            for j in row[feature_spec.HISTORY_Y]:
                if (1, j) not in held_out:
                    users.append(u)
                    items.append(num_items_x + j - 1)
            if not hold_out_targets:
                users.append(u)
                items.append(row[feature_spec.TARGET_ITEM] - 1 + (num_items_x if row[feature_spec.TARGET_DOMAIN] else 0))
        pairs = np.unique(np.stack([np.asarray(users, np.int64), np.asarray(items, np.int64)], 1).reshape(-1, 2), axis=0)
        self.users, self.items = pairs[:, 0], pairs[:, 1]

    @property
    def num_users(self) -> int:
        return len(self.user_index)

    @property
    def item_ranges(self):
        return [(0, self.num_items_x), (self.num_items_x, self.num_items_x + self.num_items_y)]

    def neighbours(self):
        """Per user: (X item indices, Y item indices), 1-based per domain."""
        out = [([], []) for _ in range(self.num_users)]
        for u, i in zip(self.users, self.items):
            if i < self.num_items_x:
                out[u][0].append(int(i) + 1)
            else:
                out[u][1].append(int(i - self.num_items_x) + 1)
        return out


def padded_item_embeddings(item_emb: np.ndarray, num_items_x: int):
    """Splits LightGCN item embeddings into per-domain matrices with a zero padding row 0."""
    zero = np.zeros((1, item_emb.shape[1]), np.float32)
    return (np.concatenate([zero, item_emb[:num_items_x]]).astype(np.float32),
            np.concatenate([zero, item_emb[num_items_x:]]).astype(np.float32))


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
                   validate: Optional[Callable[[LightGCN], float]] = None, log_dir: Optional[str] = None,
                   metric: str = ""):
    """Trains with BPR until the validation score stops improving or `cfg.max_epochs` is reached.

    `validate(model) -> score` (named `metric` in the log and TensorBoard: the generator's
    recall@K of eval targets, or the recommender's NDCG@K) runs every `cfg.eval_every` epochs;
    the best weights are kept. Returns a history dict with per-epoch loss and the scores.
    """
    metric = metric or f"recall@{cfg.recall_k}"
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

    history = {"metric": metric, "loss": [], "validation": [], "best_epoch": 0, "best_validation": -1.0, "epochs": 0,
               "seconds": 0.0}
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
            score = float(validate(model))
            history["validation"].append((epoch, score))
            if writer:
                with writer.as_default():
                    tf.summary.scalar(f"lightgcn/val_{metric}", score, step=epoch)
            logger.info(f"[lightgcn] epoch {epoch}/{cfg.max_epochs} bpr {history['loss'][-1]:.4f} "
                        f"val {metric} {score:.4f} ({time.time() - start:.0f}s)")
            if score > history["best_validation"]:
                history["best_validation"], history["best_epoch"] = score, epoch
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
