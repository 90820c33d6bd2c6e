"""The approximate top-K layer: exact when it probes every cell, close to exact when it
probes a few, and a TFRS top-K layer (query_with_exclusions works on it)."""
import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from models.top_k import InvertedFile


def clustered(n, dim, rng, centres=40):
    return (rng.normal(size=(centres, dim))[rng.integers(0, centres, n)] + 0.3 * rng.normal(size=(n, dim))).astype(
        np.float32)


def test_probing_every_cell_is_the_exact_top_k():
    rng = np.random.default_rng(0)
    items, queries = clustered(3000, 16, rng), rng.normal(size=(20, 16)).astype(np.float32)
    ids = tf.range(1, 3001, dtype=tf.int64)
    exact = tfrs.layers.factorized_top_k.BruteForce(k=10).index(items, ids)
    layer = InvertedFile(k=10, nprobe=10 ** 6, nlist=40).index(items, ids)
    assert layer.nprobe == 40 and not layer.is_exact()
    (want_values, want_ids), (got_values, got_ids) = exact(queries), layer(queries)
    np.testing.assert_array_equal(got_ids.numpy(), want_ids.numpy())
    np.testing.assert_allclose(got_values.numpy(), want_values.numpy(), rtol=1e-5)


def test_a_few_cells_find_most_of_the_exact_top_k_and_exclusions_apply():
    rng = np.random.default_rng(1)
    items, queries = clustered(20000, 16, rng), clustered(50, 16, rng)
    ids = tf.range(1, 20001, dtype=tf.int64)
    want = tfrs.layers.factorized_top_k.BruteForce(k=10).index(items, ids)(queries)[1].numpy()
    layer = InvertedFile(k=10, nprobe=16).index(items, ids)  # 565 cells, 16 probed: about 3% of the items
    got = layer(queries)[1].numpy()
    recall = np.mean([len(set(g) & set(w)) / 10 for g, w in zip(got, want)])
    assert recall > 0.8, recall
    excluded = layer.query_with_exclusions(queries, exclusions=tf.constant(got[:, :3]))[1].numpy()
    assert not any(set(e) & set(g[:3]) for e, g in zip(excluded, got))


def test_cells_too_small_for_k_return_the_rest_as_minus_infinity():
    items = np.eye(4, dtype=np.float32)
    values, ids = InvertedFile(k=3, nprobe=1, nlist=1).index(items, tf.range(1, 5, dtype=tf.int64))(
        tf.constant([[1.0, 0, 0, 0]]), k=6)
    assert ids.numpy()[0, 0] == 1 and np.isneginf(values.numpy()[0, 4:]).all()
