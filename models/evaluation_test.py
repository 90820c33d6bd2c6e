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
