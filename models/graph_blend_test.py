"""The generator graph's blend as one dot product equals the standardised sum it stands for."""
import numpy as np
import tensorflow as tf

from models import psg
from models.graph_blend import GraphBlend


def test_blended_dot_product_ranks_as_the_sum_of_standardised_scores():
    rng = np.random.default_rng(0)
    tables = [rng.normal(size=(30, 6)), rng.normal(size=(20, 6))]
    graph = [rng.normal(size=(30, 4)), rng.normal(size=(20, 4))]
    history_x = np.array([[0, 3, 5], [0, 0, 0]], np.int64)
    history_y = np.array([[0, 0, 2], [1, 4, 7]], np.int64)
    h = [tf.constant(rng.normal(size=(2, 6)), tf.float32) for _ in range(2)]
    blend = GraphBlend(graph, tables)
    user = psg.fold_in(*(np.float32(g) for g in graph), history_x, history_y).numpy()
    for weight in (0.0, 0.3, 2.0):
        queries = blend.queries(h, history_x, history_y, tf.constant(weight))
        for d, (query, table) in enumerate(zip(queries, blend.tables([np.float32(t) for t in tables]))):
            got = (query.numpy() @ table.numpy().T)[:, 1:]
            model, graph_scores = (h[d].numpy() @ tables[d].T)[:, 1:], (user @ graph[d].T)[:, 1:]

            def z(s):
                return (s - s.mean(1, keepdims=True)) / s.std(1, keepdims=True)

            want = z(model) + weight * z(graph_scores)
            offset = got - want  # a per-row shift only: the same ranking
            np.testing.assert_allclose(offset, offset[:, :1] * np.ones_like(offset), atol=1e-4)


def test_a_user_without_history_gets_no_graph_part():
    rng = np.random.default_rng(1)
    graph = rng.normal(size=(5, 3))
    graph[0] = 0.0  # the generator's padding row
    blend = GraphBlend([graph] * 2, [rng.normal(size=(5, 4))] * 2)
    empty = np.zeros((1, 2), np.int64)
    query = blend.queries([tf.ones([1, 4])] * 2, empty, empty, tf.constant(1.0))[0].numpy()
    assert np.all(query[:, 4:] == 0) and np.all(np.isfinite(query))
