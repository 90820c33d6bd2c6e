"""Scoring rows with any scorer (Keras model, SavedModel signature, popularity) and ranking them.

A scorer is `fn(features) -> (scores_x [B, Nx+1], scores_y [B, Ny+1])` on a dict of
left-padded numpy arrays, so the validation callback and the evaluator component share
one code path.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import tensorflow as tf

from models import feature_spec, metrics
from models.psg import left_pad

Scorer = Callable[[Dict[str, np.ndarray]], tuple]


def features_from_rows(rows: Sequence[Dict], max_len: int, pseudo_len: int) -> Dict[str, np.ndarray]:
    """Left-padded model inputs; histories are only as wide as the batch's longest (at most
    max_len), which changes no score (right-aligned positions) and saves work."""
    longest = max([len(r[feature_spec.HISTORY_X]) for r in rows] + [len(r[feature_spec.HISTORY_Y]) for r in rows])
    width = max(1, min(max_len, longest))
    return {
        feature_spec.HISTORY_X: left_pad([r[feature_spec.HISTORY_X] for r in rows], width),
        feature_spec.HISTORY_Y: left_pad([r[feature_spec.HISTORY_Y] for r in rows], width),
        feature_spec.PSEUDO_X: left_pad([r.get(feature_spec.PSEUDO_X, []) for r in rows], pseudo_len),
        feature_spec.PSEUDO_Y: left_pad([r.get(feature_spec.PSEUDO_Y, []) for r in rows], pseudo_len),
    }


def keras_scorer(model) -> Scorer:
    """A scorer over a model's `score_all`, traced once for any batch and width: the input
    signature leaves both dimensions open, so a batch of a new width is not a second trace
    inside a timed evaluation (without autograph, as in `LossTermsModel.train_step`)."""
    signature = {name: tf.TensorSpec([None, None], tf.int64, name=name) for name in
                 (feature_spec.HISTORY_X, feature_spec.HISTORY_Y, feature_spec.PSEUDO_X, feature_spec.PSEUDO_Y)}
    fn = tf.function(model.score_all, input_signature=[signature], autograph=False)

    def score(features):
        return [s.numpy() for s in fn({k: tf.constant(v) for k, v in features.items()})]

    score.function = fn  # for its trace count
    return score


def compute_ranks(scorer: Scorer, rows: Sequence[Dict], negatives: np.ndarray, max_len: int, pseudo_len: int,
                  batch_size: int = 1024):
    """Sampled ranks (against `negatives`) and full ranks (against every unseen domain item)."""
    sampled, full = np.zeros(len(rows), np.int64), np.zeros(len(rows), np.int64)
    for lo in range(0, len(rows), batch_size):
        batch = rows[lo: lo + batch_size]
        scores = [np.asarray(s) for s in scorer(features_from_rows(batch, max_len, pseudo_len))]
        domains = np.asarray([r[feature_spec.TARGET_DOMAIN] for r in batch])
        targets = np.asarray([r[feature_spec.TARGET_ITEM] for r in batch])
        for d in (0, 1):
            sel = np.nonzero(domains == d)[0]
            if len(sel) == 0:
                continue
            s = metrics.finite_scores(scores[d][sel])
            sampled[lo + sel] = metrics.sampled_ranks(s, targets[sel], negatives[lo + sel])
            full[lo + sel] = _full_ranks(s, targets[sel],
                                         [batch[i][feature_spec.HISTORY_X if d == 0 else feature_spec.HISTORY_Y]
                                          for i in sel])
    return sampled, full


def _full_ranks(scores: np.ndarray, targets: np.ndarray, own: List[List[int]]) -> np.ndarray:
    """Rank among all items of the domain except padding and the user's own history items."""
    scores = metrics.finite_scores(scores)
    pos = np.take_along_axis(scores, targets[:, None], axis=1)
    above = scores >= pos
    above[:, 0] = False
    above[np.arange(len(targets)), targets] = False
    for r, items in enumerate(own):
        if len(items):
            above[r, np.asarray(items)] = False
    return above.sum(axis=1)


def evaluate_rows(scorer: Scorer, rows: Sequence[Dict], negatives: np.ndarray, max_len: int, pseudo_len: int,
                  ks=(5, 10, 20), extra_groups: Optional[Dict[str, np.ndarray]] = None) -> Dict:
    """{'sampled': grouped metrics, 'full': grouped metrics} plus the per-row ranks."""
    sampled, full = compute_ranks(scorer, rows, negatives, max_len, pseudo_len)
    domains = np.asarray([r[feature_spec.TARGET_DOMAIN] for r in rows])
    cold = np.asarray([r[feature_spec.IS_COLD_START] for r in rows])
    tail = np.asarray([r[feature_spec.IS_LONG_TAILED] for r in rows])
    return {
        "sampled": metrics.grouped_metrics(sampled, domains, cold, tail, ks, extra_groups),
        "full": metrics.grouped_metrics(full, domains, cold, tail, ks, extra_groups),
        "ranks": {"sampled": sampled, "full": full},
    }


def item_popularity(rows: Sequence[Dict], num_items: Sequence[int]):
    """Interaction counts per item and domain over train rows (histories and targets)."""
    counts = [np.zeros(n + 1, np.float64) for n in num_items]
    for r in rows:
        for d, name in ((0, feature_spec.HISTORY_X), (1, feature_spec.HISTORY_Y)):
            np.add.at(counts[d], np.asarray(r[name], np.int64), 1.0)
        counts[r[feature_spec.TARGET_DOMAIN]][r[feature_spec.TARGET_ITEM]] += 1.0
    return counts


def popularity_scorer(counts) -> Scorer:
    """The popularity baseline: every user gets the train interaction counts as scores."""

    def score(features):
        b = len(features[feature_spec.HISTORY_X])
        return tuple(np.broadcast_to(c, (b, len(c))) for c in counts)

    return score


def _left_packed(indices: np.ndarray) -> np.ndarray:
    """Each row's non-zero indices moved right, in order, zeros (padding) on the left."""
    out = np.zeros_like(indices)
    for r, row in enumerate(indices):
        kept = row[row > 0]
        if len(kept):
            out[r, -len(kept):] = kept
    return out


def vocabulary_mapped_scorer(scorer: Scorer, model_vocabs: Sequence[Sequence[str]],
                             row_vocabs: Sequence[Sequence[str]]) -> Scorer:
    """A scorer of a model trained on another vocabulary (the served model, against this
    run's rows), by raw item id: the rows' indices become the model's (ids it does not know
    are dropped from the histories and pseudo-sequences), and its scores come back in the
    rows' item order, -inf for items it does not know (it cannot recommend them)."""
    to_model = []  # per domain: row item index -> the model's index (0: unknown to it)
    for model_vocab, row_vocab in zip(model_vocabs, row_vocabs):
        where = {raw: i + 1 for i, raw in enumerate(model_vocab)}
        to_model.append(np.asarray([0] + [where.get(raw, 0) for raw in row_vocab], np.int64))

    def score(features):
        mapped = {}
        for name, value in features.items():
            domain = 0 if name in (feature_spec.HISTORY_X, feature_spec.PSEUDO_X) else 1
            mapped[name] = _left_packed(to_model[domain][np.asarray(value, np.int64)])
        out = []
        for domain, model_scores in enumerate(scorer(mapped)):
            model_scores = np.asarray(model_scores)
            rows_scores = model_scores[:, to_model[domain]]
            rows_scores[:, to_model[domain] == 0] = -np.inf
            out.append(rows_scores)
        return out

    return score
