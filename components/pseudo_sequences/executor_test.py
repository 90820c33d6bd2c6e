"""The Beam transform's batch computation: every row's pseudo-sequences from its own fold-in."""
import numpy as np
import pytest

from components.pseudo_sequences import executor
from tests.tiny_models import EMB_X, EMB_Y


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
    first, second = executor.add_pseudo(rows, _Gen())
    assert first["pseudo_x"][0] == 1 and 1 not in first["pseudo_x"][1:]  # real history first, never recalled
    assert len(first["pseudo_x"]) == 4
    # the fold-in user (Y history item 2 = [0, 1]) gets X items closest to [0, 1] first
    assert second["pseudo_x"][0] == 3 and 2 not in second["pseudo_y"][1:] and second["pseudo_y"][0] == 2
    # the same row in another batch, or named as another user, gets the same pseudo-sequences
    again = executor.add_pseudo([dict(rows[1], user_id="someone_else")], _Gen())[0]
    assert again["pseudo_x"] == second["pseudo_x"] and again["pseudo_y"] == second["pseudo_y"]


def test_a_row_with_no_known_history_recalls_nothing():
    """A zero fold-in ties every score: it must not recall the catalogue's first items."""
    rows = [{"user_id": "u", "history_x": [], "history_y": [], "target_item": 1, "target_domain": 0}]
    out = executor.add_pseudo(rows, _Gen())[0]
    assert out["pseudo_x"] == [] and out["pseudo_y"] == []


def test_random_pseudo_items_are_unseen_and_repeatable_per_user():
    """The w/o PSG ablation: history first, then random unseen items, the same in any batch."""
    big_x = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)
    gen = _Gen()
    gen.emb_x, gen.source, gen.pseudo_len = big_x, "random", 10
    rows = [{"user_id": f"u{i}", "history_x": [1, 2], "history_y": [], "target_item": 3, "target_domain": 0}
            for i in range(6)]
    out = executor.add_pseudo(rows, gen)
    for r in out:
        assert r["pseudo_x"][:2] == [1, 2] and len(r["pseudo_x"]) == 10
        assert len(set(r["pseudo_x"])) == 10 and all(0 < i < 50 for i in r["pseudo_x"])
    assert len({tuple(r["pseudo_x"]) for r in out}) == 6  # different users, different draws
    again = executor.add_pseudo(rows[3:4], gen)  # same user in another batch
    assert again[0]["pseudo_x"] == out[3]["pseudo_x"]
    # random items are not the LightGCN ranking
    gen.source = "lightgcn"
    assert executor.add_pseudo(rows, gen)[0]["pseudo_x"] != out[0]["pseudo_x"]


def test_a_baselines_pseudo_sequences_are_its_histories_alone():
    """`pseudo_source="none"` (a baseline's run, which reads histories only): nothing recalled."""
    gen = _Gen()
    gen.source = "none"
    rows = [{"user_id": "u1", "history_x": [1, 2], "history_y": [3], "target_item": 3, "target_domain": 0},
            {"user_id": "u2", "history_x": [], "history_y": [2], "target_item": 1, "target_domain": 0}]
    out = executor.add_pseudo(rows, gen)
    assert [(r["pseudo_x"], r["pseudo_y"]) for r in out] == [([1, 2], [3]), ([], [2])]
    assert executor.add_pseudo(rows, _Gen())[1]["pseudo_x"]  # the generator would have recalled X items


@pytest.mark.parametrize("split_items", [[1, 2, 3]])
def test_validation_recall_counts_hits(split_items):
    rows = [{"history_x": [1], "history_y": [], "target_item": 2, "target_domain": 0},
            {"history_x": [1], "history_y": [], "target_item": 5, "target_domain": 0}]
    assert executor.validation_recall(rows, EMB_X, EMB_Y, max_len=3, k=1) == 0.5


def test_the_transform_uses_an_approximate_index_above_the_threshold(tmp_path):
    """Above lightgcn.approximate_above_items a domain's recall goes through a faiss index
    (built once per worker in setup); the other domain stays exact; no row recalls a seen item."""
    from models import psg

    rng = np.random.default_rng(5)
    centres = rng.normal(size=(20, 8))
    big = np.concatenate([np.zeros((1, 8)), centres[rng.integers(0, 20, 3000)] + 0.3 * rng.normal(size=(3000, 8))])
    small = np.concatenate([np.zeros((1, 8)), rng.normal(size=(50, 8))])
    psg.save_generator(str(tmp_path), big.astype(np.float32), small.astype(np.float32), [], [],
                       np.zeros((0, 8), np.float32))
    fn = executor.AddPseudoSequences(str(tmp_path), max_len=10, pseudo_len=30, source="lightgcn", seed=42,
                                     approximate_above_items=1000, approximate_nprobe=8, approximate_nlist=0)
    fn.setup()
    assert isinstance(fn.index_x, psg.ApproximateIndex) and fn.index_y is None
    rows = [{"user_id": f"u{i}", "history_x": rng.integers(1, 3001, 10).tolist(),
             "history_y": rng.integers(1, 51, 3).tolist(), "target_item": 1, "target_domain": 0} for i in range(20)]
    for row, out in zip(rows, executor.add_pseudo(rows, fn)):
        recalled_x = out["pseudo_x"][len(row["history_x"]):]
        assert len(out["pseudo_x"]) == 30 and not set(recalled_x) & set(row["history_x"])
        assert len(set(recalled_x)) == len(recalled_x) and 0 not in recalled_x
