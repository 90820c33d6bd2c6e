"""Metric formulas on hand-computed ranks, tie handling and candidate sampling."""
import math

import numpy as np
import pytest

from models import evaluation, metrics


def test_metric_values_by_hand():
    ranks = np.array([0, 1, 9, 10, 50])
    m = metrics.metric_values(ranks, 10)
    assert m["HR@10"] == pytest.approx(3 / 5)
    assert m["NDCG@10"] == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(11)) / 5)
    assert m["MRR"] == pytest.approx((1 + 1 / 2 + 1 / 10 + 1 / 11 + 1 / 51) / 5)
    assert m["rows"] == 5


def test_metric_values_at_every_cutoff():
    ranks = np.array([0, 4, 5, 12, 19, 20])
    m = metrics.metric_values(ranks, (5, 10, 20))
    assert (m["HR@5"], m["HR@10"], m["HR@20"]) == pytest.approx((2 / 6, 3 / 6, 5 / 6))
    assert m["NDCG@5"] == pytest.approx((1 + 1 / math.log2(6)) / 6)
    assert m["NDCG@20"] == pytest.approx((1 + 1 / math.log2(6) + 1 / math.log2(7) + 1 / math.log2(14)
                                          + 1 / math.log2(21)) / 6)
    empty = metrics.metric_values(np.array([], np.int64), (5, 10))
    assert empty["rows"] == 0 and math.isnan(empty["HR@5"]) and math.isnan(empty["MRR"])


def test_sampled_ranks_break_ties_against_the_positive():
    scores = np.array([[0.0, 0.5, 0.5, 0.9, 0.1]])
    assert metrics.sampled_ranks(scores, np.array([1]), np.array([[2, 3, 4]])).tolist() == [2]
    assert metrics.sampled_ranks(scores, np.array([3]), np.array([[1, 2, 4]])).tolist() == [0]
    assert metrics.sampled_ranks(scores, np.array([1]), np.array([[4, -1, -1]])).tolist() == [0]  # -1 = no candidate
    flat = np.zeros((1, 5))
    assert metrics.sampled_ranks(flat, np.array([1]), np.array([[2, 3, 4]])).tolist() == [3]


def test_candidates_exclude_own_items_and_are_deterministic():
    own = list(range(1, 400))
    a = metrics.sample_candidates(1000, 500, own, 100, seed=7)
    b = metrics.sample_candidates(1000, 500, own, 100, seed=7)
    assert np.array_equal(a, b) and len(a) == 100 and len(set(a.tolist())) == 100
    assert not set(a.tolist()) & (set(own) | {500}) and a.min() >= 1 and a.max() <= 1000
    small = metrics.sample_candidates(10, 3, [1, 2], 999, seed=1)
    assert sorted(small.tolist()) == [4, 5, 6, 7, 8, 9, 10]


def test_sampled_negatives_keep_their_draws():
    """Every result file's sampled metrics were ranked against these draws: a change to the
    sampler that changes them makes old and new results incomparable."""
    assert metrics.sample_candidates(1000, 500, list(range(1, 400)), 8, seed=7).tolist() == [
        945, 626, 685, 898, 579, 776, 834, 874]
    assert metrics.sample_candidates(13824, 5, [1, 2, 3], 6, seed=11).tolist() == [1850, 1778, 11019, 6903, 8157, 8316]


def test_candidate_matrix_same_for_every_model():
    rows = [{"user_id": "u", "target_domain": 0, "target_item": 3, "history_x": [1, 2], "history_y": [5]},
            {"user_id": "v", "target_domain": 1, "target_item": 1, "history_x": [], "history_y": [2]}]
    a = metrics.candidate_matrix(rows, (50, 8), 999, seed=3)
    # a row's candidates depend on its user and domain, not on the batch it is ranked in
    assert np.array_equal(a[::-1], metrics.candidate_matrix(rows[::-1], (50, 8), 999, seed=3))
    assert np.array_equal(a[1:], metrics.candidate_matrix(rows[1:], (50, 8), 999, seed=3))
    few = metrics.candidate_matrix(rows, (50, 8), 5, seed=3)  # fewer than the catalogue: the seed picks them
    assert not np.array_equal(few, metrics.candidate_matrix(rows, (50, 8), 5, seed=4))
    assert set(a[1][a[1] > 0].tolist()) == {3, 4, 5, 6, 7, 8}
    assert not set(a[0].tolist()) & {1, 2, 3}


def test_full_rank_ignores_padding_target_and_own_items():
    scores = np.array([[9.0, 0.2, 0.8, 0.5, 0.7]])
    assert evaluation._full_ranks(scores, np.array([3]), [[2]]).tolist() == [1]  # only item 4 (0.7) is above


def test_grouped_metrics_split_domains_and_groups():
    ranks = np.array([0, 20, 0, 0])
    domains = np.array([0, 0, 1, 1])
    cold = np.array([1, 0, 0, 0])
    tail = np.array([0, 1, 0, 1])
    g = metrics.grouped_metrics(ranks, domains, cold, tail, 10)
    assert g["x"]["all"]["HR@10"] == 0.5 and g["x"]["cold_start"]["HR@10"] == 1.0
    assert g["x"]["long_tailed"]["HR@10"] == 0.0 and g["y"]["all"]["rows"] == 2
    assert math.isnan(g["y"]["cold_start"]["HR@10"])


def test_a_nan_score_never_counts_as_a_hit():
    from models.evaluation import _full_ranks

    scores = np.array([[0.0, np.nan, 0.5, 0.2, 0.1], [0.0, 0.9, np.nan, 0.3, 0.2]])
    targets, negatives = np.array([1, 1]), np.array([[2, 3, 4], [2, 3, 4]])
    assert metrics.sampled_ranks(scores, targets, negatives).tolist() == [3, 0]  # NaN positive: last
    assert _full_ranks(scores, targets, [[], []]).tolist() == [3, 0]


def test_paired_difference_by_hand():
    ranks = np.array([0, 3, 12])
    assert metrics.row_values(ranks, "HR", 10).tolist() == [1, 1, 0]
    assert np.allclose(metrics.row_values(ranks, "NDCG", 10), [1, 1 / np.log2(5), 0])
    out = metrics.paired_difference(np.array([1.0, 1.0, 0.0, 0.0]), np.array([1.0, 0.0, 0.0, 0.0]), draws=1000)
    assert out["rows"] == 4 and out["a"] == 0.5 and out["b"] == 0.25 and out["difference"] == 0.25
    assert np.isclose(out["standard_error"], 0.25)  # per row (0, 1, 0, 0): std 0.5 (ddof 1), / sqrt(4)
    assert 0 <= out["low"] <= 0.25 <= out["high"] <= 1
    assert np.isnan(metrics.paired_difference(np.array([1.0]), np.array([0.0]))["standard_error"])
