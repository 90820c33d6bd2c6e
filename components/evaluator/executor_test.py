"""Blessing: the model is pushed only when its validation NDCG@K beats the baseline's."""
import pytest

from components.evaluator.executor import is_blessed
from models.config import load_config


def report(ours, popularity, kind="i2vae"):
    """A report whose eval split has the model's and popularity's full-ranking NDCG@10 per domain."""
    def result(x, y):
        return {"full": {"x": {"all": {"NDCG@10": x}}, "y": {"all": {"NDCG@10": y}}}}
    return {"splits": {"eval": {kind: result(*ours), "popularity": result(*popularity)},
                       "test": {kind: result(1.0, 1.0), "popularity": result(0.0, 0.0)}}}


def test_blessed_only_when_the_mean_of_both_domains_beats_popularity_on_validation():
    cfg = load_config()
    assert is_blessed(report((0.05, 0.03), (0.02, 0.03)), cfg)
    # below popularity on validation is not blessed, whatever test says
    assert not is_blessed(report((0.01, 0.03), (0.02, 0.03)), cfg)
    assert not is_blessed(report((0.02, 0.03), (0.02, 0.03)), cfg)  # a tie is not better


def test_without_a_baseline_any_finite_positive_score_is_blessed():
    cfg = load_config(overrides=['eval.bless_against="none"'])
    assert is_blessed(report((0.01, 0.0), (0.5, 0.5)), cfg)
    assert not is_blessed(report((0.0, 0.0), (0.0, 0.0)), cfg)
    assert not is_blessed(report((float("nan"), float("nan")), (0.0, 0.0)), cfg)


def test_a_baseline_that_was_not_evaluated_is_an_error():
    cfg = load_config(overrides=['model.kind="sasrec"'])
    with pytest.raises(ValueError, match="is not an evaluated model"):
        is_blessed({"splits": {"eval": {"sasrec": report((0.1, 0.1), (0, 0))["splits"]["eval"]["i2vae"]}}}, cfg)
