"""LightGCN propagation on a hand-made graph, and BPR training on a toy graph."""
import numpy as np
import tensorflow as tf

from models.lightgcn import Graph, LightGCN, normalized_adjacency, sample_negatives


def test_normalized_adjacency_by_hand():
    # users 0,1; items 0,1,2; edges u0-i0, u0-i1, u1-i1 (+ a duplicate u0-i0)
    adj = tf.sparse.to_dense(normalized_adjacency(2, 3, np.array([0, 0, 1, 0]), np.array([0, 1, 1, 0]))).numpy()
    deg = np.array([2, 1, 1, 2, 0], float)  # u0, u1, i0, i1, i2
    expected = np.zeros((5, 5))
    for u, i in [(0, 0), (0, 1), (1, 1)]:
        expected[u, 2 + i] = expected[2 + i, u] = 1 / np.sqrt(deg[u] * deg[2 + i])
    np.testing.assert_allclose(adj, expected, rtol=1e-6)


def test_propagation_is_mean_of_layer_powers():
    users, items = np.array([0, 0, 1]), np.array([0, 1, 1])
    adj = normalized_adjacency(2, 3, users, items)
    model = LightGCN(2, 3, adj, embedding_dim=4, num_layers=3, l2_reg=1e-4, seed=1)
    e0 = model.embeddings.numpy()
    a = tf.sparse.to_dense(adj).numpy()
    expected = (e0 + a @ e0 + a @ a @ e0 + a @ a @ a @ e0) / 4
    user_emb, item_emb = model.propagate()
    np.testing.assert_allclose(user_emb.numpy(), expected[:2], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(item_emb.numpy(), expected[2:], rtol=1e-5, atol=1e-6)
    # an isolated item keeps only its layer-0 embedding, averaged with zeros
    np.testing.assert_allclose(item_emb.numpy()[2], e0[4] / 4, rtol=1e-5)


def test_negatives_come_from_the_positive_domain_and_avoid_known_edges():
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(50), 2)
    items = np.tile([0, 5], 50)  # item 0 in domain X [0, 5), item 5 in domain Y [5, 9)
    domain_of_item = np.array([0] * 5 + [1] * 4)
    keys = np.unique(users.astype(np.int64) * 9 + items)
    neg = sample_negatives(rng, items, domain_of_item, [(0, 5), (5, 9)], keys, users, 9)
    assert np.all(domain_of_item[neg] == domain_of_item[items])
    assert np.mean(neg == items) < 0.05


def test_the_graph_leaves_out_every_train_target_of_the_user():
    """A train row's pseudo-sequence must not come from embeddings fitted on its own target,
    and the paper's files list a user's X target again as history of their Y row."""
    rows = [{"user_id": "u", "history_x": [1, 2], "history_y": [5], "target_item": 6, "target_domain": 1},
            {"user_id": "u", "history_x": [1, 2, 3], "history_y": [5, 6], "target_item": 3, "target_domain": 0}]
    graph = Graph(rows, num_items_x=4, num_items_y=7, hold_out_targets=True)
    edges = set(zip(graph.users.tolist(), graph.items.tolist()))
    assert edges == {(0, 0), (0, 1), (0, 4 + 4)}  # X items 1, 2 and Y item 5; X 3 and Y 6 are targets


def test_the_recommenders_graph_has_every_train_interaction():
    """LightGCN as a recommender fits every train edge, the targets included, once each."""
    rows = [{"user_id": "u", "history_x": [1, 2], "history_y": [5], "target_item": 6, "target_domain": 1},
            {"user_id": "u", "history_x": [1, 2, 3], "history_y": [5, 6], "target_item": 3, "target_domain": 0},
            {"user_id": "v", "history_x": [], "history_y": [2], "target_item": 4, "target_domain": 0}]
    graph = Graph(rows, num_items_x=4, num_items_y=7, hold_out_targets=False)
    edges = set(zip(graph.users.tolist(), graph.items.tolist()))
    assert edges == {(0, 0), (0, 1), (0, 2), (0, 4 + 4), (0, 4 + 5), (1, 4 + 1), (1, 3)}
    assert len(graph.users) == len(edges)

