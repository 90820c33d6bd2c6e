"""SavedModel export with the serving contract of docs/deployment.md.

Signatures:
- `serving_default` (recommend): `history_x`, `history_y` — [B, L] string tensors of raw
  item ids, padded with "" — -> top-K item ids and scores per domain, plus the number of
  unknown ids per row. Pseudo-sequences are computed in the graph with the LightGCN
  fold-in (the same `models.psg` functions the batch pipeline uses; random unseen items
  for a model trained with `lightgcn.pseudo_source="random"`). Unknown ids are
  ignored. A row with no history in one domain takes the cold-start path; a row with no
  known history at all gets the most popular train items (documented fallback).
  Items already in the request's history are not recommended again; when fewer than K
  items are left, the remaining slots hold id "" and score -inf. The top K come from
  TensorFlow Recommenders' exact `BruteForce` layer over each domain's item table (the
  model's `query_embeddings` against its `item_tables`), asked for K + T so that K remain
  once the history's T items are removed.
- `score_items`: left-padded item-index tensors (history and pseudo) -> scores of every
  item of each domain; used by the evaluator.
The graph uses only stock TF ops and loads with plain `tf.saved_model.load`.
`assets.extra/tf_serving_warmup_requests` holds requests TF Serving (and `serving/server.py`)
replays when it loads the version, so its first real request is not slow.
"""
from __future__ import annotations

import os
from typing import List, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from models import feature_spec, psg
from models.top_k import InvertedFile


class ServingModule(tf.Module):
    def __init__(self, model, vocab_x, vocab_y, generator, popularity, max_len, pseudo_len, top_k,
                 pseudo_source="lightgcn", domain_names=("x", "y"), serving_cfg=None):
        super().__init__()
        self.pseudo_source = pseudo_source
        self.domain_name_values = [tf.constant(name, tf.string) for name in domain_names]
        # The Keras model is kept out of object tracking so the SavedModel holds only these
        # signatures and the variables they read, not Keras/TFP-typed functions that would
        # need project code (and TFP's type specs) to load.
        self.__dict__["_model"] = model
        self.model_variables = list(model.variables)
        self.max_len, self.pseudo_len, self.top_k = max_len, pseudo_len, top_k
        self.tables, self.ids, self.gen, self.top_items, self.popular, self.recall = [], [], [], [], [], []
        for vocab, emb, pop, table in ((vocab_x, generator["item_emb_x"], popularity[0], model.item_tables()[0]),
                                       (vocab_y, generator["item_emb_y"], popularity[1], model.item_tables()[1])):
            init = tf.lookup.KeyValueTensorInitializer(tf.constant(vocab, tf.string),
                                                       tf.range(1, len(vocab) + 1, dtype=tf.int64))
            self.tables.append(tf.lookup.StaticHashTable(init, default_value=0))
            self.ids.append(tf.constant([""] + list(vocab), tf.string))
            self.gen.append(tf.constant(emb, tf.float32))
            # the K + T most popular items: enough for K unseen after any history of T items
            order = np.argsort(-np.asarray(pop, np.float64)[1:], kind="stable")[: top_k + max_len] + 1
            self.popular.append((tf.constant(np.asarray(pop, np.float32)[order][None]), tf.constant(order[None])))
            # top-K over the item table through a TFRS layer (exact, or approximate above
            # `serving.approximate_above_items`); stock ops only, so stock TF Serving loads it
            ids = tf.range(1, len(vocab) + 1, dtype=tf.int64)
            approximate = is_approximate(len(vocab), serving_cfg)
            top = (InvertedFile(min(top_k, len(vocab)), serving_cfg.approximate_nprobe, serving_cfg.approximate_nlist)
                   if approximate else tfrs.layers.factorized_top_k.BruteForce(k=min(top_k, len(vocab))))
            self.top_items.append(top.index(tf.convert_to_tensor(table)[1:], ids))
            # the in-graph pseudo-sequence recall: over every item, or the same approximate search
            # (none without a trained generator: a baseline or the w/o PSG ablation recalls nothing)
            self.recall.append(InvertedFile(pseudo_len, serving_cfg.approximate_nprobe, serving_cfg.approximate_nlist
                                            ).index(emb[1:], ids) if approximate and pseudo_source == "lightgcn"
                               else None)

    @tf.function(input_signature=[])
    def domain_names(self):
        """What `_x` and `_y` stand for in the other signatures' names (the data's own names)."""
        return {"domain_x": self.domain_name_values[0], "domain_y": self.domain_name_values[1]}

    def _lookup(self, history, domain):
        """Raw ids -> left-padded [B, T] indices with unknown ids dropped; also the unknown count."""
        idx = self.tables[domain].lookup(history)
        unknown = tf.reduce_sum(tf.cast(tf.logical_and(tf.not_equal(history, ""), tf.equal(idx, 0)), tf.int32), 1)
        width = tf.shape(idx)[1]
        pos = tf.range(width)[None, :]
        order = tf.argsort(tf.where(idx > 0, pos + width, pos), axis=1, stable=True)  # known ids last, in order
        compact = tf.gather(idx, order, batch_dims=1)
        padded = tf.concat([tf.zeros([tf.shape(idx)[0], self.max_len], tf.int64), compact], axis=1)
        return padded[:, -self.max_len:], unknown

    def _scores(self, history_x, history_y, pseudo_x, pseudo_y):
        features = {feature_spec.HISTORY_X: history_x, feature_spec.HISTORY_Y: history_y,
                    feature_spec.PSEUDO_X: pseudo_x, feature_spec.PSEUDO_Y: pseudo_y}
        return self._model.score_all(features)

    # autograph=False: every branch and loop here is over Python values, and autograph's
    # conversion of the model code below would only double the export's trace time
    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int64, name=feature_spec.HISTORY_X),
                                  tf.TensorSpec([None, None], tf.int64, name=feature_spec.HISTORY_Y),
                                  tf.TensorSpec([None, None], tf.int64, name=feature_spec.PSEUDO_X),
                                  tf.TensorSpec([None, None], tf.int64, name=feature_spec.PSEUDO_Y)], autograph=False)
    def score_items(self, history_x, history_y, pseudo_x, pseudo_y):
        scores_x, scores_y = self._scores(history_x, history_y, pseudo_x, pseudo_y)
        return {"scores_x": scores_x, "scores_y": scores_y}

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.string, name=feature_spec.HISTORY_X),
                                  tf.TensorSpec([None, None], tf.string, name=feature_spec.HISTORY_Y)], autograph=False)
    def recommend(self, history_x, history_y):
        hx, unknown_x = self._lookup(history_x, 0)
        hy, unknown_y = self._lookup(history_y, 1)
        user = psg.fold_in(self.gen[0], self.gen[1], hx, hy)
        pseudo = []
        for d, hist in ((0, hx), (1, hy)):
            k = min(self.pseudo_len, int(self.gen[d].shape[0]))
            if self.pseudo_source == "none":  # a baseline: the histories alone
                recalled = tf.zeros([tf.shape(hist)[0], k], tf.int64)
            elif self.pseudo_source == "random":  # the w/o PSG ablation: random unseen items
                recalled = psg.top_unseen(psg.random_scores(tf.shape(hist)[0], tf.shape(self.gen[d])[0]), hist, k)
            elif self.recall[d] is not None:
                values, recalled = _unseen_top_k(*self.recall[d](user, k=k + self.max_len), hist, k)
                recalled = tf.where(values > psg.NEG_INF / 2, recalled, 0)
            else:
                recalled = psg.recall_unseen(user, self.gen[d], hist, k)
            recalled = tf.pad(recalled, [[0, 0], [0, self.pseudo_len - k]])
            pseudo.append(psg.compose_pseudo(hist, recalled, self.pseudo_len))
        features = {feature_spec.HISTORY_X: hx, feature_spec.HISTORY_Y: hy, feature_spec.PSEUDO_X: pseudo[0],
                    feature_spec.PSEUDO_Y: pseudo[1]}
        queries = self._model.query_embeddings(features)
        any_history = tf.reduce_any(tf.concat([hx, hy], axis=1) > 0, axis=1)
        out = {"unknown_ids_x": unknown_x, "unknown_ids_y": unknown_y}
        for d, name, hist in ((0, "x", hx), (1, "y", hy)):
            num_items = int(self.ids[d].shape[0]) - 1
            k = min(self.top_k, num_items)
            query, has_query = queries[d]
            # K + T candidates from the top-K layer, so K remain after removing the history's T
            values, indices = _unseen_top_k(*self.top_items[d](query, k=min(num_items, k + self.max_len)), hist, k)
            popular_values, popular = _unseen_top_k(*(tf.tile(t, [tf.shape(hist)[0], 1]) for t in self.popular[d]),
                                                    hist, k)
            # a row without a query (no known history at all; SASRec: none in the domain) gets popularity
            use_query = tf.logical_and(any_history, has_query)[:, None]
            values, indices = tf.where(use_query, values, popular_values), tf.where(use_query, indices, popular)
            valid = values > psg.NEG_INF / 2  # fewer unseen items than K: the rest are "" with score -inf
            out[f"top_ids_{name}"] = tf.where(valid, tf.gather(self.ids[d], indices), "")
            out[f"top_scores_{name}"] = tf.where(valid, values, float("-inf"))
        return out


def is_approximate(num_items: int, serving_cfg) -> bool:
    """Whether a domain of `num_items` is searched approximately (`models.top_k.InvertedFile`)
    rather than exactly: above `serving.approximate_above_items` (0 = never)."""
    return serving_cfg is not None and 0 < serving_cfg.approximate_above_items < num_items


def _unseen_top_k(values: tf.Tensor, ids: tf.Tensor, history: tf.Tensor, k: int):
    """The k best of each row's candidates (values, item ids [B, M]) that are not in its
    history ([B, T] ids, 0 = padding); fewer than k left: the rest score NEG_INF."""
    seen = tf.reduce_any(tf.equal(ids[:, :, None], history[:, None, :]), axis=-1)
    values, order = tf.math.top_k(tf.where(seen, psg.NEG_INF, values), k=k)
    return values, tf.gather(ids, order, batch_dims=1)


WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")


def _padded(histories: Sequence[Sequence[str]]) -> np.ndarray:
    width = max([len(h) for h in histories] + [1])
    return np.array([[i.encode() for i in h] + [b""] * (width - len(h)) for h in histories], dtype=object)


def warmup_requests(vocab_x: Sequence[str], vocab_y: Sequence[str], model_name: str) -> List[predict_pb2.PredictRequest]:
    """Requests TF Serving replays when it loads a version (`assets.extra`), so the first real
    request does not pay for the graph's first run: a normal row, a cold-start row, unknown
    ids, an empty history, and a batch of 64."""
    def ids(vocab, start, n):
        return [vocab[(start + j) % len(vocab)] for j in range(n)]

    cases = [([ids(vocab_x, 0, 2)], [ids(vocab_y, 0, 1)]), ([ids(vocab_x, 1, 3)], [[]]),
             ([["<an id in no vocabulary>"]], [[""]]), ([[]], [[]]),
             ([ids(vocab_x, i, 1 + i % 5) for i in range(64)], [ids(vocab_y, i, i % 3) for i in range(64)])]
    requests = []
    for history_x, history_y in cases:
        request = predict_pb2.PredictRequest()
        request.model_spec.name, request.model_spec.signature_name = model_name, "serving_default"
        request.inputs[feature_spec.HISTORY_X].CopyFrom(tf.make_tensor_proto(_padded(history_x)))
        request.inputs[feature_spec.HISTORY_Y].CopyFrom(tf.make_tensor_proto(_padded(history_y)))
        requests.append(request)
    return requests


def write_warmup_requests(export_dir: str, requests: Sequence[predict_pb2.PredictRequest]) -> str:
    """The requests as TF Serving's warmup file: PredictionLog records in a TFRecord file."""
    path = os.path.join(export_dir, WARMUP_FILE)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.TFRecordWriter(path) as writer:
        for request in requests:
            writer.write(prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)).SerializeToString())
    return path


def export_saved_model(model, examples_root: str, popularity, cfg, export_dir: str, top_k: int = 10) -> str:
    """Writes the SavedModel (signatures above) to export_dir; `model` is any model with
    `score_all` (i2VAE or a baseline of `models.baselines`)."""
    vocab_x, vocab_y = feature_spec.read_vocabs(examples_root)
    generator = psg.load_generator(os.path.join(examples_root, psg.GENERATOR_DIR))
    module = ServingModule(model, vocab_x, vocab_y, generator, popularity, cfg.data.max_len, cfg.data.pseudo_len,
                           top_k, cfg.pseudo_sequences(), feature_spec.read_domain_names(examples_root),
                           cfg.serving)
    signatures = {"serving_default": module.recommend, "score_items": module.score_items,
                  "domain_names": module.domain_names}
    tf.saved_model.save(module, export_dir, signatures=signatures)
    write_warmup_requests(export_dir, warmup_requests(vocab_x, vocab_y, cfg.serving_name))
    return export_dir
