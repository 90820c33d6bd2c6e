"""Pseudo-sequence recall: fold-in, top-K unseen items, and the augmented sequence.

These TF functions are used both by the Beam transform of PseudoSequenceGen and inside
the exported serving graph, so a request gets exactly the pseudo-sequences the model
was trained with (docs/method.md). Item matrices carry a zero padding row 0, so item
index i (1-based) is row i. `ApproximateIndex` and `recall` (faiss, numpy) are for the
Beam transform only, above `lightgcn.approximate_above_items` items per domain.
"""
from __future__ import annotations

import io
import os
from typing import Dict, List, Sequence

import numpy as np
import tensorflow as tf

NEG_INF = -1e30
GENERATOR_DIR = "pseudo_sequence_generator"  # inside the augmented Examples artifact


def fold_in(item_emb_x: tf.Tensor, item_emb_y: tf.Tensor, history_x: tf.Tensor, history_y: tf.Tensor) -> tf.Tensor:
    """A user embedding for a user outside the graph: the mean embedding of their history items.

    history_* are [B, L] item indices with 0 as padding; a user with no items gets zeros.
    """
    sx = tf.reduce_sum(tf.gather(item_emb_x, history_x), axis=1)
    sy = tf.reduce_sum(tf.gather(item_emb_y, history_y), axis=1)
    count = tf.reduce_sum(tf.cast(history_x > 0, tf.float32), 1) + tf.reduce_sum(tf.cast(history_y > 0, tf.float32), 1)
    return (sx + sy) / tf.maximum(count, 1.0)[:, None]


def mask_seen(scores: tf.Tensor, seen: tf.Tensor, offset: int = 0) -> tf.Tensor:
    """Sets the padding item 0 and each row's `seen` items ([B, S] indices, 0 = padding) to NEG_INF.

    Column j of `scores` is item `offset + j`, so a chunk of the catalogue can be masked;
    seen items outside the chunk are ignored (scattered into a column that is dropped).
    """
    seen = tf.cast(seen, tf.int64)
    seen = tf.concat([tf.zeros_like(seen[:, :1]), seen], axis=1)
    width = tf.shape(scores, out_type=tf.int64)[1]
    col = seen - offset
    col = tf.where((col >= 0) & (col < width), col, width)
    rows = tf.broadcast_to(tf.range(tf.shape(col, out_type=tf.int64)[0])[:, None], tf.shape(col, out_type=tf.int64))
    where = tf.reshape(tf.stack([rows, col], axis=-1), [-1, 2])
    padded = tf.concat([scores, tf.zeros_like(scores[:, :1])], axis=1)
    masked = tf.tensor_scatter_nd_update(padded, where, tf.fill([tf.shape(where)[0]], tf.cast(NEG_INF, scores.dtype)))
    return masked[:, :-1]


def recall_unseen(user_emb: tf.Tensor, item_emb: tf.Tensor, seen: tf.Tensor, k: int,
                  item_chunk: int = 16384) -> tf.Tensor:
    """Top-k item indices of one domain by dot product, excluding padding and `seen` items.

    user_emb [B, D], item_emb [N+1, D], seen [B, S] indices (0 = padding). Returns [B, k]
    indices, 0 where fewer than k unseen items exist. Items are scored `item_chunk` at a
    time with a running top-k, so memory is B x min(N+1, item_chunk + k) whatever the
    catalogue size; callers bound B. The full users x items matrix never exists.

    A user with no known history has a zero fold-in, whose scores all tie: such a row
    recalls nothing (zeros), not the catalogue's first k items.
    """
    n = int(item_emb.shape[0])
    best_scores = best_items = None
    for lo in range(0, n, item_chunk):
        chunk = item_emb[lo: lo + item_chunk]
        scores = mask_seen(tf.matmul(user_emb, chunk, transpose_b=True), seen, lo)
        values, idx = tf.math.top_k(scores, k=min(k, int(chunk.shape[0])))
        idx = tf.cast(idx, tf.int64) + lo
        if best_scores is not None:  # merge with the running top-k of the earlier chunks
            values, idx = tf.concat([best_scores, values], 1), tf.concat([best_items, idx], 1)
            values, pos = tf.math.top_k(values, k=min(k, int(values.shape[1])))
            idx = tf.gather(idx, pos, batch_dims=1)
        best_scores, best_items = values, idx
    known = tf.reduce_any(tf.not_equal(user_emb, 0.0), axis=1, keepdims=True)
    out = tf.where((best_scores > NEG_INF / 2) & known, best_items, tf.zeros_like(best_items))
    return tf.pad(out, [[0, 0], [0, k - int(out.shape[1])]])


def top_unseen(scores: tf.Tensor, seen: tf.Tensor, k: int) -> tf.Tensor:
    """Top-k item indices of [B, N+1] scores, excluding padding and `seen`; 0 where none is left."""
    values, indices = tf.math.top_k(mask_seen(scores, seen), k=k)
    return tf.cast(tf.where(values > NEG_INF / 2, indices, tf.zeros_like(indices)), tf.int64)


def random_scores(batch_size, num_items_plus_pad: int) -> tf.Tensor:
    """Uniform scores, so `top_unseen` draws random unseen items (the w/o PSG ablation, serving side;
    the Beam transform draws per-user seeded scores instead, see `pseudo_sequences.psg`)."""
    return tf.random.uniform(tf.stack([batch_size, num_items_plus_pad]))


def compose_pseudo(history: tf.Tensor, recalled: tf.Tensor, pseudo_len: int) -> tf.Tensor:
    """S~ = the real history (left-padded [B, T], T <= T') followed by recalled items, length T'.

    Position j < n (n = real history length) holds history item j, the rest hold recalled
    items in score order. `recalled` must have at least T' columns.
    """
    history = tf.cast(history, tf.int64)
    recalled = tf.cast(recalled, tf.int64)
    t = tf.shape(history)[1]
    n = tf.reduce_sum(tf.cast(history > 0, tf.int32), axis=1, keepdims=True)
    j = tf.range(pseudo_len)[None, :]
    hist_idx = tf.clip_by_value(t - n + j, 0, t - 1)
    rec_idx = tf.clip_by_value(j - n, 0, tf.shape(recalled)[1] - 1)
    from_hist = tf.gather(history, hist_idx, batch_dims=1)
    from_rec = tf.gather(recalled, rec_idx, batch_dims=1)
    return tf.where(j < n, from_hist, from_rec)


def left_pad(sequences, length: int):
    """Python lists -> [B, length] int64 array, keeping the last `length` items, left-padded."""
    out = np.zeros((len(sequences), length), dtype=np.int64)
    for row, seq in enumerate(sequences):
        tail = list(seq)[-length:] if length > 0 else []
        if tail:
            out[row, length - len(tail):] = tail
    return out


def save_generator(out_dir: str, emb_x, emb_y, user_ids: Sequence[str], neighbours: List, user_emb,
                   layer0=None) -> None:
    """Saves the generator: per-domain item embeddings (row 0 = padding), the graph users'
    embeddings and ids, each graph user's (X items, Y items) as values + offsets, and the
    LightGCN's layer-0 embeddings a later run warm-starts from (models/warm_start.py)."""
    tf.io.gfile.makedirs(out_dir)
    arrays = {"item_emb_x": emb_x, "item_emb_y": emb_y, "user_emb": user_emb,
              "user_ids": np.asarray(list(user_ids), dtype=str)}
    if layer0 is not None:
        arrays["layer0"] = np.asarray(layer0, np.float32)
    for d, name in enumerate(("seen_x", "seen_y")):
        lists = [n[d] for n in neighbours]
        arrays[name + "_values"] = np.asarray([i for items in lists for i in items], np.int64)
        arrays[name + "_offsets"] = np.cumsum([0] + [len(items) for items in lists]).astype(np.int64)
    buffer = io.BytesIO()  # np.savez wants a seekable file; GFile (gs://) is not
    np.savez(buffer, **arrays)
    with tf.io.gfile.GFile(os.path.join(out_dir, "generator.npz"), "wb") as f:
        f.write(buffer.getvalue())


def graph_item_embeddings(examples_root: str):
    """The generator graph's item embeddings per domain (row 0 padding), for the i2VAE's
    `attach_graph_blend`: the graph the pseudo-sequences came from also scores at inference."""
    generator = load_generator(os.path.join(examples_root, GENERATOR_DIR))
    return generator["item_emb_x"], generator["item_emb_y"]


def load_generator(out_dir: str) -> Dict:
    with tf.io.gfile.GFile(os.path.join(out_dir, "generator.npz"), "rb") as f:
        buffer = io.BytesIO(f.read())
    with np.load(buffer) as z:
        g = {k: z[k] for k in z.files}
    for name in ("seen_x", "seen_y"):
        values, offsets = g.pop(name + "_values"), g.pop(name + "_offsets")
        g[name] = [values[offsets[i]: offsets[i + 1]] for i in range(len(offsets) - 1)]
    return g


class ApproximateIndex:
    """An approximate top-k inner-product index over one domain's items (faiss IVF, flat lists).

    Built on the rows 1..N of `item_emb` (row 0 is padding and never returned). The
    catalogue is split into `nlist` k-means cells (default 4 x sqrt(N)); a query scores
    only the items of its `nprobe` nearest cells, so a query costs about
    nlist + N x nprobe / nlist dot products instead of N. Build once per worker: training
    and adding cost about nlist x N dot products.
    """

    def __init__(self, item_emb, nprobe: int = 128, nlist: int = 0, seed: int = 1234):
        import faiss

        items = np.ascontiguousarray(np.asarray(item_emb, np.float32)[1:])
        self.num_items, dim = items.shape
        # at least 39 training points per cell (faiss warns below that)
        self.nlist = max(1, min(nlist or int(4 * np.sqrt(self.num_items)), self.num_items // 39))
        self.index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, self.nlist, faiss.METRIC_INNER_PRODUCT)
        # k-means on at most 64 items per cell, 10 iterations (faiss: 256 and 25), so 1M items
        # train in about a minute on two cores
        self.index.cp.seed, self.index.cp.niter, self.index.cp.max_points_per_centroid = seed, 10, 64
        self.index.train(items)
        self.index.add(items)
        self.index.nprobe = min(nprobe, self.nlist)

    def search(self, user_emb, fetch: int):
        """The `fetch` best (1-based item indices, 0 = no result) of each row of user_emb [B, D]."""
        _, ids = self.index.search(np.ascontiguousarray(np.asarray(user_emb, np.float32)), fetch)
        return ids.astype(np.int64) + 1  # faiss marks a missing result -1, which becomes padding 0


def recall(user_emb, item_emb, seen, k: int, index: "ApproximateIndex | None" = None) -> tf.Tensor:
    """`recall_unseen`, or the same through an approximate `index` of item_emb when one is given.

    The approximate path keeps recall_unseen's contract: [B, k] int64 indices in score
    order, never padding or a seen item, zeros only where fewer than k unseen items exist,
    a zero user recalls nothing. It over-fetches k + (the row's seen items) candidates and
    drops the seen ones; a row left with fewer than k candidates (its probed cells were
    small) is recalled exactly.
    """
    if index is None:
        return recall_unseen(user_emb, item_emb, seen, k)
    user = np.asarray(user_emb, np.float32)
    seen = np.asarray(seen, np.int64).reshape(len(user), -1)
    width = seen.shape[1]
    fetch = min(k + width, index.num_items)
    cand = index.search(user, fetch)
    out = np.zeros((len(user), k), np.int64)
    short = []
    for row in range(len(user)):
        seen_row = seen[row][seen[row] > 0]
        keep = cand[row][(cand[row] > 0) & ~np.isin(cand[row], seen_row)][:k]
        out[row, :len(keep)] = keep
        if len(keep) < k and index.num_items - len(np.unique(seen_row[seen_row <= index.num_items])) > len(keep):
            short.append(row)  # the catalogue has more unseen items than the probed cells held
    if short:
        out[short] = recall_unseen(user[short], item_emb, seen[short], k).numpy()
    out[~np.any(user != 0.0, axis=1)] = 0
    return tf.constant(out)


def approximate_index(item_emb, above_items: int, nprobe: int, nlist: int = 0) -> "ApproximateIndex | None":
    """An ApproximateIndex when the domain has more than `above_items` items (0 or less:
    never), else None (exact recall)."""
    if above_items <= 0 or int(np.shape(item_emb)[0]) - 1 <= above_items:
        return None
    return ApproximateIndex(item_emb, nprobe=nprobe, nlist=nlist)
