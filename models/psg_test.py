"""Pseudo-sequence recall: fold-in, seen-item exclusion and the augmented sequence layout."""
import numpy as np
import pytest

from components.pseudo_sequences import psg as component_psg
from models import psg as P

EMB_X = np.array([[0, 0], [1, 0], [0.9, 0.1], [0, 1], [0.5, 0.5], [-1, 0]], np.float32)  # row 0 = padding
EMB_Y = np.array([[0, 0], [1, 0], [0, 1], [0.7, 0.7]], np.float32)


def test_fold_in_is_mean_of_history_embeddings():
    hx = np.array([[0, 1, 3], [0, 0, 0]])
    hy = np.array([[0, 0, 2], [0, 0, 0]])
    u = P.fold_in(EMB_X, EMB_Y, hx, hy).numpy()
    np.testing.assert_allclose(u[0], (EMB_X[1] + EMB_X[3] + EMB_Y[2]) / 3, rtol=1e-6)
    np.testing.assert_allclose(u[1], [0, 0])


def test_recall_excludes_seen_and_padding():
    user = np.array([[1.0, 0.0]], np.float32)
    top = P.recall_unseen(user, EMB_X, np.array([[0, 1]]), k=3).numpy()
    assert top.tolist() == [[2, 4, 3]]  # item 1 is seen, padding row 0 never returned
    top = P.recall_unseen(user, EMB_X, np.array([[1, 2, 3, 4]]), k=3).numpy()
    assert top.tolist() == [[5, 0, 0]]  # fewer unseen items than k: zeros


def test_compose_pseudo_history_then_recalled():
    history = np.array([[0, 0, 4, 7], [0, 0, 0, 0]])
    recalled = np.array([[11, 12, 13, 14, 15, 16], [21, 22, 23, 24, 25, 26]])
    out = P.compose_pseudo(history, recalled, 6).numpy()
    assert out.tolist() == [[4, 7, 11, 12, 13, 14], [21, 22, 23, 24, 25, 26]]


def test_left_pad_keeps_tail():
    assert P.left_pad([[1, 2, 3], [], [4]], 2).tolist() == [[2, 3], [0, 0], [0, 4]]


class _Gen:
    max_len, pseudo_len = 3, 4
    emb_x, emb_y = EMB_X, EMB_Y
    source, seed = "lightgcn", 42


def test_add_pseudo_folds_in_every_row_and_excludes_its_history():
    """Every split's rows get their pseudo-sequences the same way: the fold-in of their own
    histories, recall excluding those histories (no graph embedding of the user)."""
    rows = [
        {"user_id": "u1", "history_x": [1], "history_y": [], "target_item": 2, "target_domain": 0},
        {"user_id": "u2", "history_x": [], "history_y": [2], "target_item": 1, "target_domain": 0},
    ]
    first, second = component_psg.add_pseudo(rows, _Gen())
    assert first["pseudo_x"][0] == 1 and 1 not in first["pseudo_x"][1:]  # real history first, never recalled
    assert len(first["pseudo_x"]) == 4
    # the fold-in user (Y history item 2 = [0, 1]) gets X items closest to [0, 1] first
    assert second["pseudo_x"][0] == 3 and 2 not in second["pseudo_y"][1:] and second["pseudo_y"][0] == 2
    # the same row in another batch, or named as another user, gets the same pseudo-sequences
    again = component_psg.add_pseudo([dict(rows[1], user_id="someone_else")], _Gen())[0]
    assert again["pseudo_x"] == second["pseudo_x"] and again["pseudo_y"] == second["pseudo_y"]


def test_a_row_with_no_known_history_recalls_nothing():
    """A zero fold-in ties every score: it must not recall the catalogue's first items."""
    rows = [{"user_id": "u", "history_x": [], "history_y": [], "target_item": 1, "target_domain": 0}]
    out = component_psg.add_pseudo(rows, _Gen())[0]
    assert out["pseudo_x"] == [] and out["pseudo_y"] == []


def test_random_pseudo_items_are_unseen_and_repeatable_per_user():
    """The w/o PSG ablation: history first, then random unseen items, the same in any batch."""
    big_x = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)
    gen = _Gen()
    gen.emb_x, gen.source, gen.pseudo_len = big_x, "random", 10
    rows = [{"user_id": f"u{i}", "history_x": [1, 2], "history_y": [], "target_item": 3, "target_domain": 0}
            for i in range(6)]
    out = component_psg.add_pseudo(rows, gen)
    for r in out:
        assert r["pseudo_x"][:2] == [1, 2] and len(r["pseudo_x"]) == 10
        assert len(set(r["pseudo_x"])) == 10 and all(0 < i < 50 for i in r["pseudo_x"])
    assert len({tuple(r["pseudo_x"]) for r in out}) == 6  # different users, different draws
    again = component_psg.add_pseudo(rows[3:4], gen)  # same user in another batch
    assert again[0]["pseudo_x"] == out[3]["pseudo_x"]
    # random items are not the LightGCN ranking
    gen.source = "lightgcn"
    assert component_psg.add_pseudo(rows, gen)[0]["pseudo_x"] != out[0]["pseudo_x"]


@pytest.mark.parametrize("split_items", [[1, 2, 3]])
def test_validation_recall_counts_hits(split_items):
    rows = [{"history_x": [1], "history_y": [], "target_item": 2, "target_domain": 0},
            {"history_x": [1], "history_y": [], "target_item": 5, "target_domain": 0}]
    assert component_psg.validation_recall(rows, EMB_X, EMB_Y, max_len=3, k=1) == 0.5


def test_chunked_recall_equals_one_pass():
    """Scoring the catalogue in chunks with a running top-k gives the same items."""
    rng = np.random.default_rng(1)
    items = rng.normal(size=(1001, 8)).astype(np.float32)
    items[0] = 0
    users = rng.normal(size=(5, 8)).astype(np.float32)
    seen = rng.integers(0, 1001, size=(5, 30))
    one = P.recall_unseen(users, items, seen, k=40).numpy()
    chunked = P.recall_unseen(users, items, seen, k=40, item_chunk=97).numpy()
    np.testing.assert_array_equal(one, chunked)
    assert not set(one[0]) & set(seen[0]) - {0}
    few = P.recall_unseen(users[:1], items[:6], np.array([[1, 2, 3]]), k=4, item_chunk=2).numpy()
    assert sorted(few[0].tolist()) == [0, 0, 4, 5]  # only items 4 and 5 are unseen
