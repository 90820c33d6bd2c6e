"""Scoring rows with a Keras model (models/evaluation.py)."""
import numpy as np
import pytest

from models import evaluation, feature_spec
from tests.tiny_models import build, features


@pytest.mark.parametrize("kind", ["i2vae", "sasrec"])
def test_keras_scorer_traces_once_for_every_batch_size_and_history_width(kind, examples_root):
    model, _ = build(kind)
    score = evaluation.keras_scorer(model)
    full = features()
    first = score(full)
    narrow = {name: (v[:2, -2:] if name in (feature_spec.HISTORY_X, feature_spec.HISTORY_Y) else v[:2])
              for name, v in full.items()}
    score(narrow)
    assert score.function.experimental_get_tracing_count() == 1
    again = score(full)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))


def test_a_model_of_another_vocabulary_scores_the_rows_by_raw_id():
    """The served model knows a, b, c (indices 1..3); the rows know c, new, a (1..3)."""
    seen = {}

    def served(features):
        seen.update(features)
        batch = len(features[feature_spec.HISTORY_X])
        return np.tile(np.array([0.0, 10.0, 20.0, 30.0]), (batch, 1)), np.zeros((batch, 2))

    scorer = evaluation.vocabulary_mapped_scorer(served, (["a", "b", "c"], ["y"]), (["c", "new", "a"], ["y"]))
    features = {feature_spec.HISTORY_X: np.array([[1, 2, 3]]), feature_spec.HISTORY_Y: np.array([[0, 1, 1]]),
                feature_spec.PSEUDO_X: np.array([[2, 2, 1]]), feature_spec.PSEUDO_Y: np.array([[1, 0, 1]])}
    scores_x, scores_y = scorer(features)
    assert seen[feature_spec.HISTORY_X].tolist() == [[0, 3, 1]]  # c, a; the unknown id dropped, left-padded
    assert seen[feature_spec.PSEUDO_X].tolist() == [[0, 0, 3]]
    assert scores_x.tolist() == [[-np.inf, 30.0, -np.inf, 10.0]]  # c, new (unknown to it), a
    assert scores_y.shape == (1, 2)
