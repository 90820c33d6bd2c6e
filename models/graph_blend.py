"""The pseudo-sequence generator's graph as a second scorer at inference (an extension
beyond the paper, `train.graph_blend_grid`, docs/method.md).

The generator's LightGCN already folds every user in (the mean of their history items'
embeddings, `models.psg.fold_in`) to recall the pseudo-sequences; its item scores are a
second opinion beside the i2VAE's own, strongest where the i2VAE has least to go on
(cold-start and long-tailed users). Per row both scores are standardised over the domain's
items and added, the graph's weighing w: s_i = z(h . e_i) + w z(u . g_i).

Kept as one dot product, so serving's top-K layers (TensorFlow Recommenders) search it
unchanged: the query is [h / sd(h), w u / sd(u)] against the table [e_i, g_i], where
sd(q) = sqrt(q' C q) is the standard deviation over items of q's scores, C the covariance
of the table's rows. A row's shift by its mean score changes no ranking, so it is left out.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf

from models import psg


def covariance(table: np.ndarray) -> np.ndarray:
    """The covariance [d, d] of a table's item rows [N, d] (padding row left out by the caller)."""
    table = np.asarray(table, np.float64)
    centred = table - table.mean(axis=0, keepdims=True)
    return (centred.T @ centred / max(len(table), 1)).astype(np.float32)


def standardized(queries: tf.Tensor, table_covariance: tf.Tensor) -> tf.Tensor:
    """Each query [B, d] divided by the standard deviation of its scores over the table's items."""
    variance = tf.reduce_sum(tf.matmul(queries, table_covariance) * queries, axis=-1, keepdims=True)
    return queries * tf.math.rsqrt(tf.maximum(variance, 1e-12))


class GraphBlend:
    """The generator's item embeddings per domain and the covariances that standardise both
    scores, fixed when it is made: attach it once the item tables are trained.

    Args:
      graph_items: (G_x, G_y), the generator LightGCN's item embeddings [N + 1, g], row 0 padding.
      item_tables: (E_x, E_y), the model's trained item tables [N + 1, d], row 0 padding.
    """

    def __init__(self, graph_items: Sequence[np.ndarray], item_tables: Sequence[np.ndarray]):
        self.graph = tuple(tf.constant(np.asarray(g, np.float32)) for g in graph_items)
        self.graph_covariance = tuple(tf.constant(covariance(np.asarray(g)[1:])) for g in graph_items)
        self.item_covariance = tuple(tf.constant(covariance(np.asarray(e)[1:])) for e in item_tables)

    def queries(self, user_vectors: Sequence[tf.Tensor], history_x: tf.Tensor, history_y: tf.Tensor,
                weight: tf.Tensor):
        """Per domain, [h / sd(h), w u / sd(u)] with u the graph's fold-in of both histories."""
        user = psg.fold_in(self.graph[0], self.graph[1], history_x, history_y)
        return tuple(tf.concat([standardized(h, self.item_covariance[d]),
                                weight * standardized(user, self.graph_covariance[d])], axis=-1)
                     for d, h in enumerate(user_vectors))

    def tables(self, item_tables: Sequence[tf.Tensor]):
        """Per domain, [e_i, g_i] ([N + 1, d + g]), the table the blended queries score."""
        return tuple(tf.concat([tf.convert_to_tensor(table), graph], axis=-1)
                     for table, graph in zip(item_tables, self.graph))
