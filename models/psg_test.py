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


def clustered(rng, n, dim=16, centres=40):
    """Embeddings around a few centres (LightGCN's item embeddings cluster; pure noise has no cells to find)."""
    c = rng.normal(size=(centres, dim))
    return (c[rng.integers(0, centres, n)] + 0.5 * rng.normal(size=(n, dim))).astype(np.float32)


def test_approximate_recall_matches_exact_and_excludes_seen():
    rng = np.random.default_rng(2)
    items = np.concatenate([np.zeros((1, 16), np.float32), clustered(rng, 4000)])
    seen = rng.integers(0, 4001, size=(64, 30))
    users = np.stack([items[s[s > 0]].mean(0) for s in seen])  # fold-in: the mean of the seen items
    users[-1] = 0  # no known history: recalls nothing, as exact recall does
    index = psg.approximate_index(items, above_items=1000, nprobe=16)
    assert isinstance(index, psg.ApproximateIndex) and index.nlist == 4000 // 39  # 4 x sqrt(N), capped at N / 39
    approx = psg.recall(users, items, seen, 20, index).numpy()
    exact = psg.recall_unseen(users, items, seen, 20).numpy()
    assert approx.shape == exact.shape == (64, 20) and approx.dtype == exact.dtype
    for row in range(63):
        assert not set(approx[row]) & set(seen[row]), row
        assert 0 not in approx[row] and len(set(approx[row])) == 20
    assert not approx[-1].any()
    hits = sum(len(set(a) & set(e)) for a, e in zip(approx[:63], exact[:63]))
    assert hits / (63 * 20) >= 0.95


def test_approximate_recall_falls_back_when_probed_cells_are_short():
    """One probed cell of few items: rows short of k are recalled exactly, zeros only past the catalogue."""
    rng = np.random.default_rng(3)
    items = np.concatenate([np.zeros((1, 8), np.float32), clustered(rng, 400, dim=8)])
    index = psg.ApproximateIndex(items, nprobe=1, nlist=10)
    users = rng.normal(size=(4, 8)).astype(np.float32)
    seen = rng.integers(0, 401, size=(4, 50))
    approx = psg.recall(users, items, seen, 60, index).numpy()
    exact = psg.recall_unseen(users, items, seen, 60).numpy()
    assert approx.shape == (4, 60)
    for row in range(4):
        assert not set(approx[row]) & set(seen[row]) and 0 not in approx[row]
    small = psg.recall(users[:1], items[:6], np.array([[1, 2, 3]]), 4,
                       psg.ApproximateIndex(items[:6], nprobe=1, nlist=1)).numpy()
    assert small.tolist()[0][2:] == [0, 0] and sorted(small[0][:2].tolist()) == [4, 5]
    assert exact.shape == approx.shape


def test_exact_recall_below_threshold():
    items = np.zeros((1001, 4), np.float32)
    assert psg.approximate_index(items, above_items=1000, nprobe=8) is None  # 1000 items: not above
    assert psg.approximate_index(items, above_items=0, nprobe=8) is None  # 0: always exact
    rng = np.random.default_rng(4)
    items = rng.normal(size=(301, 4)).astype(np.float32)
    users, seen = rng.normal(size=(3, 4)).astype(np.float32), rng.integers(0, 301, size=(3, 5))
    np.testing.assert_array_equal(psg.recall(users, items, seen, 7).numpy(),
                                  psg.recall_unseen(users, items, seen, 7).numpy())
