"""Approximate top-K for serving a large catalogue, in stock TensorFlow ops.

TensorFlow Recommenders' `BruteForce` scores every item per request: at 1,000,000 items a
domain that is a pass over the whole table per request, far above a 25 ms budget on two
cores (docs/performance.md). Its approximate layer, `ScaNN`, needs ScaNN's custom ops,
which stock TF Serving does not have (tensorflow/recommenders issue 182). `InvertedFile` is
a TFRS top-K layer (the same `index` / `call` / `query_with_exclusions` interface) that
keeps to stock ops: the items are split into k-means cells (faiss, at export), stored cell
by cell, and a query scores the cells' centroids and then only the items of its `nprobe`
best cells, gathered with a ragged range. The SavedModel still loads in stock TF Serving.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs


class InvertedFile(tfrs.layers.factorized_top_k.TopK):
    """Approximate top-k by inner product over k-means cells of the candidates.

    Args:
      k: default k.
      nprobe: cells scored per query (more: closer to exact, slower).
      nlist: k-means cells; 0 = 4 x sqrt(candidates), as the pipeline's faiss recall.
      seed: k-means seed.
    """

    def __init__(self, k: int = 10, nprobe: int = 64, nlist: int = 0, seed: int = 1234, name: Optional[str] = None):
        super().__init__(k=k, name=name)
        self.nprobe, self.nlist, self.seed = nprobe, nlist, seed

    def index(self, candidates: tf.Tensor, identifiers: Optional[tf.Tensor] = None) -> "InvertedFile":
        import faiss

        items = np.ascontiguousarray(np.asarray(candidates, np.float32))
        ids = np.arange(len(items)) if identifiers is None else np.asarray(identifiers)
        nlist = max(1, min(self.nlist or int(4 * np.sqrt(len(items))), len(items) // 39))
        kmeans = faiss.Kmeans(items.shape[1], nlist, niter=10, seed=self.seed, max_points_per_centroid=64,
                              spherical=False)
        kmeans.train(items)
        _, cell = kmeans.index.search(items, 1)
        order = np.argsort(cell[:, 0], kind="stable")  # the candidates stored cell by cell
        sizes = np.bincount(cell[:, 0], minlength=nlist)
        self.nprobe = min(self.nprobe, nlist)
        for name, value in (("centroids", kmeans.centroids.astype(np.float32)), ("candidates", items[order]),
                            ("identifiers", ids[order]), ("cell_starts", np.cumsum(sizes) - sizes),
                            ("cell_sizes", sizes)):
            setattr(self, f"_{name}", self.add_weight(name=name, shape=value.shape, dtype=tf.as_dtype(value.dtype),
                                                      trainable=False,
                                                      initializer=tf.keras.initializers.Constant(value)))
        return self

    def call(self, queries: tf.Tensor, k: Optional[int] = None):
        k = k if k is not None else self._k
        cells = tf.math.top_k(tf.matmul(queries, self._centroids, transpose_b=True), k=self.nprobe).indices
        starts = tf.cast(tf.gather(self._cell_starts, cells), tf.int64)
        rows = tf.ragged.range(tf.reshape(starts, [-1]),
                               tf.reshape(starts + tf.cast(tf.gather(self._cell_sizes, cells), tf.int64), [-1]))
        members = tf.RaggedTensor.from_uniform_row_length(rows, self.nprobe).merge_dims(1, 2).to_tensor(-1)
        scores = tf.einsum("bd,bmd->bm", queries, tf.gather(self._candidates, tf.maximum(members, 0)))
        scores = tf.where(members >= 0, scores, -np.inf)
        # fewer than k candidates in the probed cells: pad, so the rest come back with score -inf
        scores = tf.pad(scores, [[0, 0], [0, k]], constant_values=-np.inf)
        members = tf.pad(members, [[0, 0], [0, k]], constant_values=0)
        values, top = tf.math.top_k(scores, k=k)
        return values, tf.gather(self._identifiers, tf.gather(tf.maximum(members, 0), top, batch_dims=1))

    def is_exact(self) -> bool:
        return False
