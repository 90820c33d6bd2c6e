"""The latent heads: the packed cross-domain attention against Keras' multi-head attention."""
import numpy as np
import tensorflow as tf

from models.latent_heads import CrossDomainAttention


def test_packed_cross_domain_attention_matches_multi_head_attention_over_the_padded_sequences():
    """q_zt reads the other domain as Keras' MultiHeadAttention over both padded sequences
    does, with the same weights, at every real query position of a row whose other domain
    has history; padded query positions are zero."""
    rng = np.random.default_rng(0)
    query_mask = tf.constant([[False, True, True], [True, True, True], [False, False, True], [False, False, False]])
    kv_mask = tf.constant([[False, False, False, True], [True, True, True, True], [False, True, False, True],
                           [False, False, True, True]])
    query_seq = tf.constant(rng.normal(size=(4, 3, 16)), tf.float32) * tf.cast(query_mask, tf.float32)[..., None]
    kv_seq = tf.constant(rng.normal(size=(4, 4, 16)), tf.float32) * tf.cast(kv_mask, tf.float32)[..., None]
    cross = CrossDomainAttention(16, 8, 4, 1e-4)
    attended = cross.attend(query_seq, query_mask, kv_seq, kv_mask).numpy()
    padded = CrossDomainAttention(16, 8, 4, 1e-4, packed=False)  # every position computed
    padded.attend(query_seq, query_mask, kv_seq, kv_mask)
    padded.set_weights(cross.get_weights())
    np.testing.assert_allclose(padded.attend(query_seq, query_mask, kv_seq, kv_mask).numpy(), attended, atol=1e-5)
    reference = tf.keras.layers.MultiHeadAttention(4, 4)
    mask = tf.logical_and(query_mask[:, :, None], kv_mask[:, None, :])
    reference(query_seq, kv_seq, kv_seq, attention_mask=mask)
    reference.set_weights(cross.attention.get_weights())
    expected = reference(query_seq, kv_seq, kv_seq, attention_mask=mask).numpy()
    real = query_mask.numpy()
    np.testing.assert_allclose(attended[real], expected[real], atol=1e-5)
    assert np.abs(attended[real]).max() > 0.1
    assert not np.any(attended[~real])
