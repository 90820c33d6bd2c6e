"""Pseudo-sequence recall: fold-in, seen-item exclusion and the augmented sequence layout."""
import numpy as np

from models import psg
from tests.tiny_models import EMB_X, EMB_Y


def test_fold_in_is_mean_of_history_embeddings():
    hx = np.array([[0, 1, 3], [0, 0, 0]])
    hy = np.array([[0, 0, 2], [0, 0, 0]])
    u = psg.fold_in(EMB_X, EMB_Y, hx, hy).numpy()
    np.testing.assert_allclose(u[0], (EMB_X[1] + EMB_X[3] + EMB_Y[2]) / 3, rtol=1e-6)
    np.testing.assert_allclose(u[1], [0, 0])


def test_recall_excludes_seen_and_padding():
    user = np.array([[1.0, 0.0]], np.float32)
    top = psg.recall_unseen(user, EMB_X, np.array([[0, 1]]), k=3).numpy()
    assert top.tolist() == [[2, 4, 3]]  # item 1 is seen, padding row 0 never returned
    top = psg.recall_unseen(user, EMB_X, np.array([[1, 2, 3, 4]]), k=3).numpy()
    assert top.tolist() == [[5, 0, 0]]  # fewer unseen items than k: zeros


def test_compose_pseudo_history_then_recalled():
    history = np.array([[0, 0, 4, 7], [0, 0, 0, 0]])
    recalled = np.array([[11, 12, 13, 14, 15, 16], [21, 22, 23, 24, 25, 26]])
    out = psg.compose_pseudo(history, recalled, 6).numpy()
    assert out.tolist() == [[4, 7, 11, 12, 13, 14], [21, 22, 23, 24, 25, 26]]


def test_left_pad_keeps_tail():
    assert psg.left_pad([[1, 2, 3], [], [4]], 2).tolist() == [[2, 3], [0, 0], [0, 4]]


def test_chunked_recall_equals_one_pass():
    """Scoring the catalogue in chunks with a running top-k gives the same items."""
    rng = np.random.default_rng(1)
    items = rng.normal(size=(1001, 8)).astype(np.float32)
    items[0] = 0
    users = rng.normal(size=(5, 8)).astype(np.float32)
    seen = rng.integers(0, 1001, size=(5, 30))
    one = psg.recall_unseen(users, items, seen, k=40).numpy()
    chunked = psg.recall_unseen(users, items, seen, k=40, item_chunk=97).numpy()
    np.testing.assert_array_equal(one, chunked)
    assert not set(one[0]) & set(seen[0]) - {0}
    few = psg.recall_unseen(users[:1], items[:6], np.array([[1, 2, 3]]), k=4, item_chunk=2).numpy()
    assert sorted(few[0].tolist()) == [0, 0, 4, 5]  # only items 4 and 5 are unseen
