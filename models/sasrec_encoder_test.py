"""The self-attention encoder: packing the real positions changes no output; the last-only
pass and the layer norm match their references."""
import numpy as np
import pytest
import tensorflow as tf

from models.sasrec_encoder import LayerNorm, SASRecEncoder


@pytest.mark.parametrize("causal", [False, True])
def test_packed_encoder_matches_attention_over_every_padded_position(causal):
    """The same weights give the same states whether the padding is computed or skipped,
    for rows with some, none and only padding; padded positions are zero either way."""
    item_embedding = tf.keras.layers.Embedding(50, 16)
    sequence = tf.constant([[0, 0, 3, 4], [0, 0, 0, 0], [1, 2, 3, 4], [0, 0, 0, 7]])
    packed = SASRecEncoder(item_embedding, 6, 16, num_heads=4, num_blocks=2, dropout=0.2, causal=causal, packed=True)
    padded = SASRecEncoder(item_embedding, 6, 16, num_heads=4, num_blocks=2, dropout=0.2, causal=causal, packed=False)
    packed(sequence), padded(sequence)
    padded.set_weights(packed.get_weights())
    states, mask = packed(sequence)
    np.testing.assert_allclose(states.numpy(), padded(sequence)[0].numpy(), atol=1e-5)
    assert np.abs(states.numpy()).max() > 0.5  # real positions carry states
    assert not np.any(states.numpy()[~mask.numpy()])
    wider, _ = packed(tf.concat([tf.zeros([4, 2], tf.int32), sequence], axis=1))  # left padding changes nothing
    np.testing.assert_allclose(wider.numpy()[:, 2:], states.numpy(), atol=1e-6)


@pytest.mark.parametrize("packed", [True, False])
@pytest.mark.parametrize("causal", [False, True])
def test_last_only_is_the_full_pass_at_the_last_position_in_value_and_gradient(causal, packed):
    """`last_only` (the final block with one query per row) gives the full pass's last
    position, zero for an empty row, and the same gradients for a loss on that position."""
    item_embedding = tf.keras.layers.Embedding(50, 16)
    sequence = tf.constant([[0, 0, 3, 4], [0, 0, 0, 0], [1, 2, 3, 4], [0, 0, 0, 7]])
    encoder = SASRecEncoder(item_embedding, 6, 16, num_heads=4, num_blocks=2, dropout=0.2, causal=causal, packed=packed)
    target = tf.constant(np.random.default_rng(1).normal(size=(4, 16)), tf.float32)
    results = []
    for last_only in (False, True):
        with tf.GradientTape() as tape:
            out, _ = encoder(sequence, last_only=last_only)
            last = out if last_only else out[:, -1]
            loss = tf.reduce_sum(last * target)
        results.append((last.numpy(), tape.gradient(loss, encoder.trainable_variables)))
    (full, full_grads), (last, last_grads) = results
    assert last.shape == (4, 16) and np.abs(last).max() > 0.5
    np.testing.assert_allclose(last, full, atol=1e-5)
    assert not np.any(last[1])
    for a, b in zip(full_grads, last_grads):
        np.testing.assert_allclose(tf.convert_to_tensor(b).numpy(), tf.convert_to_tensor(a).numpy(), rtol=1e-4, atol=1e-5)


def test_packed_encoder_trains_through_a_batch_of_empty_rows():
    """A batch with no real position (N = 0 tokens) gives zero states and finite gradients."""
    item_embedding = tf.keras.layers.Embedding(10, 8)
    encoder = SASRecEncoder(item_embedding, 3, 8, num_heads=2, num_blocks=2, dropout=0.2)
    with tf.GradientTape() as tape:
        states, _ = encoder(tf.zeros([2, 3], tf.int32), training=True)
        loss = tf.reduce_sum(states)
    grads = tape.gradient(loss, encoder.trainable_variables)
    assert not np.any(states.numpy())
    assert all(g is None or np.all(np.isfinite(tf.convert_to_tensor(g).numpy())) for g in grads)


@pytest.mark.parametrize("shape", [(7, 16), (3, 5, 16), (0, 16)])
def test_layer_norm_matches_keras_in_value_and_gradient(shape):
    """The closed-form backward pass gives Keras' gradients for the input, gamma and beta
    (an empty batch: the packed encoder's all-padding case)."""
    x = tf.random.stateless_normal(shape, seed=(1, 2)) * 3.0 + 1.0
    ours, keras = LayerNorm(epsilon=1e-6), tf.keras.layers.LayerNormalization(epsilon=1e-6)
    ours(x), keras(x)
    keras.set_weights([np.linspace(0.5, 1.5, 16), np.linspace(-0.2, 0.2, 16)])
    ours.set_weights(keras.get_weights())
    upstream = tf.random.stateless_normal(shape, seed=(3, 4))
    results = []
    for layer in (ours, keras):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y * upstream)
        results.append([y] + tape.gradient(loss, [x] + layer.trainable_variables))
    for a, b in zip(*results):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-4)
