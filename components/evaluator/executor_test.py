"""Blessing: the model is pushed only when its validation NDCG@K beats the baseline's and is not
below the served model's."""
import pytest

from components.evaluator.executor import SERVED, is_blessed
from models.config import load_config


def report(ours, popularity, kind="i2vae", served=None):
    """A report whose eval split has the model's, popularity's and (given) the served model's
    full-ranking NDCG@10 per domain."""
    def result(x, y):
        return {"full": {"x": {"all": {"NDCG@10": x}}, "y": {"all": {"NDCG@10": y}}}}
    val = {kind: result(*ours), "popularity": result(*popularity)}
    if served is not None:
        val[SERVED] = result(*served)
    return {"splits": {"eval": val, "test": {kind: result(1.0, 1.0), "popularity": result(0.0, 0.0)}}}


def blessed(*args, **kwargs):
    return is_blessed(*args, **kwargs)[0]


def test_blessed_only_when_the_mean_of_both_domains_beats_popularity_on_validation():
    cfg = load_config()
    assert blessed(report((0.05, 0.03), (0.02, 0.03)), cfg)
    # below popularity on validation is not blessed, whatever test says
    assert not blessed(report((0.01, 0.03), (0.02, 0.03)), cfg)
    assert not blessed(report((0.02, 0.03), (0.02, 0.03)), cfg)  # a tie is not better


def test_without_a_baseline_any_finite_positive_score_is_blessed():
    cfg = load_config(overrides=['eval.bless_against="none"'])
    assert blessed(report((0.01, 0.0), (0.5, 0.5)), cfg)
    assert not blessed(report((0.0, 0.0), (0.0, 0.0)), cfg)
    assert not blessed(report((float("nan"), float("nan")), (0.0, 0.0)), cfg)


def test_a_baseline_that_was_not_evaluated_is_an_error():
    cfg = load_config(overrides=['model.kind="sasrec"'])
    with pytest.raises(ValueError, match="is not an evaluated model"):
        is_blessed({"splits": {"eval": {"sasrec": report((0.1, 0.1), (0, 0))["splits"]["eval"]["i2vae"]}}}, cfg)


def test_with_a_served_model_the_candidate_may_fall_short_of_it_by_at_most_max_regression():
    cfg = load_config(overrides=["eval.max_regression=0.01"])
    assert blessed(report((0.05, 0.05), (0.01, 0.01), served=(0.055, 0.055)), cfg)  # within 0.01
    ok, line = is_blessed(report((0.05, 0.05), (0.01, 0.01), served=(0.07, 0.07)), cfg)
    assert not ok and "5.00" in line and "7.00" in line  # one line with both figures
    # beating the served model does not excuse losing to popularity
    assert not blessed(report((0.05, 0.05), (0.06, 0.06), served=(0.01, 0.01)), cfg)


def test_a_candidate_that_failed_the_serving_check_is_not_evaluated_nor_blessed(tmp_path):
    import json

    from components.evaluator.executor import VERDICT_FILE, evaluate_and_bless
    from models import config

    cfg_json = json.dumps(config.to_dict(load_config()))
    # the examples and the model do not exist: a model that failed the check is not even loaded
    assert not evaluate_and_bless("/nonexistent/examples", "", "/nonexistent/model", str(tmp_path), cfg_json,
                                  serving_check=(False, "the server exited with status 1 while loading the model"))
    verdict = json.load(open(tmp_path / VERDICT_FILE))
    assert verdict == {"blessed": False, "serving_check_passed": False,
                       "reason": "it failed the serving check: the server exited with status 1 while loading the model"}
