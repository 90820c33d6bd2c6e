"""The SASRec self-attention encoder (the i2VAE's four sequence encoders and the SASRec
baseline), its packed attention and layer normalisation, and how its outputs are pooled."""
from __future__ import annotations

import math

import tensorflow as tf


def masked_mean(x: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Mean over real positions; an all-padding row pools to zeros (never NaN)."""
    m = tf.cast(mask, x.dtype)[..., None]
    return tf.reduce_sum(x * m, axis=1) / tf.maximum(tf.reduce_sum(m, axis=1), 1.0)


def pool_history(x: tf.Tensor, mask: tf.Tensor, how: str = "mean") -> tf.Tensor:
    """Pools a history encoder's output [B, T, d] to [B, d].

    "mean" is the paper's (docs/method.md). "last" reads the most recent item's position
    (histories are left-padded, so it is always the last one), as SASRec does; "mean_last"
    averages the two, keeping the paper's mean and adding recency. An empty row pools to
    zeros in every mode, because the encoder zeroes padded positions.
    """
    mean = masked_mean(x, mask)
    if how == "mean":
        return mean
    last = x[:, -1] * tf.cast(mask[:, -1], x.dtype)[:, None]
    return last if how == "last" else 0.5 * (mean + last)


def tokens_at(values: tf.Tensor, index) -> tf.Tensor:
    """values [B, L, ...] at `index` [N, 2] as tokens [N, ...]; index None: every position in
    row-major order (N = B * L), by a reshape."""
    if index is None:
        return tf.reshape(values, tf.concat([[-1], tf.shape(values)[2:]], axis=0))
    return tf.gather_nd(values, index)


def as_tokens(values: tf.Tensor, mask: tf.Tensor, packed: bool):
    """values [B, L, ...] as tokens [N, ...] and their index [N, 2]: the real positions
    (`packed`), or every position in row-major order with index None (N = B * L)."""
    index = tf.where(mask) if packed else None
    return tokens_at(values, index), index


def from_tokens(tokens: tf.Tensor, index, shape: tf.Tensor) -> tf.Tensor:
    """The inverse of `tokens_at`: tokens back to `shape` [B, L, ...], zero where no token."""
    return tf.reshape(tokens, shape) if index is None else tf.scatter_nd(index, tokens, shape)


class PackedAttention(tf.keras.layers.Layer):
    """Multi-head attention over the real positions of padded [B, L] sequences.

    The positions come packed as tokens [N, d] with their `index` [N, 2]: the query, key,
    value and output projections (most of the arithmetic) run on the N real tokens only,
    and only the score and mix of attention, which are cheap at these lengths, are laid
    out as [B, L]. Histories are mostly far shorter than T (cloth_sport train rows: about
    3 items of 20 per domain), so this skips most of the work and gives the same outputs as
    attention over the padded tensor at every real query position. Self-attention passes
    one sequence; cross-attention (q_zt) passes the other domain's tokens as `value_tokens`
    with their own index and shape. The kernels have the shapes (and so the initialisation)
    of `tf.keras.layers.MultiHeadAttention`'s.
    """

    def __init__(self, num_heads, dim, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        heads = (num_heads, self.head_dim)
        self.query = tf.keras.layers.EinsumDense("nd,dhk->nhk", output_shape=heads, bias_axes="hk", name="query")
        self.key = tf.keras.layers.EinsumDense("nd,dhk->nhk", output_shape=heads, bias_axes="hk", name="key")
        self.value = tf.keras.layers.EinsumDense("nd,dhk->nhk", output_shape=heads, bias_axes="hk", name="value")
        self.output_dense = tf.keras.layers.EinsumDense("nhk,hkd->nd", output_shape=(dim,), bias_axes="d",
                                                        name="attention_output")
        self.dropout = tf.keras.layers.Dropout(dropout)

    def call(self, query_tokens, value_tokens, index, shape, attention_mask, training=False, value_index=None,
             value_shape=None):
        """query_tokens [N, d] at `index` of a sequence of `shape` [B, L] (int64), value_tokens
        at `value_index` of `value_shape` (the same sequence by default); attention_mask
        [B, L, L_value]. An index None: the tokens are every position in row-major order
        (N = B * L), laid out by a reshape instead of a scatter. Returns the attended query
        tokens [N, d]."""
        if value_shape is None:
            value_index, value_shape = index, shape

        def layout(tokens, at, of):  # [N, H, head_dim] -> [B, L, H, head_dim]
            return from_tokens(tokens, at, tf.concat([of, [self.num_heads, self.head_dim]], axis=0))

        query = layout(self.query(query_tokens), index, shape) * (1.0 / math.sqrt(self.head_dim))
        key = layout(self.key(value_tokens), value_index, value_shape)
        value = layout(self.value(value_tokens), value_index, value_shape)
        heads_first = [0, 2, 1, 3]  # [B, H, L, head_dim]: attention as batched matmuls
        query, key, value = (tf.transpose(t, heads_first) for t in (query, key, value))
        scores = tf.where(attention_mask[:, None], tf.matmul(query, key, transpose_b=True), -1e9)
        weights = self.dropout(tf.nn.softmax(scores, axis=-1), training=training)
        return self.output_dense(tokens_at(tf.transpose(tf.matmul(weights, value), heads_first), index))


class SASRecEncoder(tf.keras.layers.Layer):
    """Self-attention encoder over a left-padded sequence with learnable positions.

    Position embeddings are aligned to the right end of the sequence, so left padding of
    any amount leaves the output unchanged (padding invariance). In i2VAE attention is
    bidirectional and padding-masked: the output is pooled, not used for next-step
    prediction, so no causal mask is needed. The SASRec baseline sets `causal`, so each
    position sees only itself and earlier items, as next-item training requires.

    Args:
      item_embedding: the domain's shared item Embedding layer.
      max_len: maximum sequence length (T or T').
      dim: model width d.
      num_heads: attention heads (default 4).
      num_blocks: self-attention blocks.
      dropout: dropout rate on embeddings, attention and feed-forward outputs.
      causal: mask attention to later positions.
      packed: compute the real positions only (`PackedAttention`); False computes every
        padded position too, laid out by reshapes (the same outputs, slower on short
        histories: the baseline of `i2vae bench speed`).
    """

    def __init__(self, item_embedding, max_len, dim, num_heads, num_blocks, dropout, causal=False,
                 packed=True, **kwargs):
        super().__init__(**kwargs)
        self.item_embedding, self.max_len, self.dim, self.causal, self.packed = (item_embedding, max_len, dim,
                                                                                 causal, packed)
        self.positions = self.add_weight(name="positions", shape=(max_len, dim),
                                         initializer=tf.keras.initializers.TruncatedNormal(stddev=0.02))
        self.dropout = tf.keras.layers.Dropout(dropout)
        self.blocks = []
        for i in range(num_blocks):
            self.blocks.append(dict(
                norm1=LayerNorm(epsilon=1e-6, name=f"norm1_{i}"),
                attention=PackedAttention(num_heads, dim, dropout=dropout, name=f"attention_{i}"),
                norm2=LayerNorm(epsilon=1e-6, name=f"norm2_{i}"),
                ffn1=tf.keras.layers.Dense(dim, activation="relu", name=f"ffn1_{i}"),
                ffn2=tf.keras.layers.Dense(dim, name=f"ffn2_{i}"),
            ))
        self.final_norm = LayerNorm(epsilon=1e-6)

    def call(self, sequence, training=False, last_only=False):
        """Returns (unpooled [B, L, d], zero at padding; mask [B, L]). `last_only`: the last
        position's output alone ([B, d], zero for an empty row), for a reader of nothing
        else (the causal i2VAE's augmented latent). Why: then the final block needs only
        that position's query, attention row, feed-forward and norm, which skips most of
        that block's work on the 60-item augmented sequences; every other position's keys
        and values are still computed, so the output is the full pass's last position."""
        mask = sequence > 0
        length = tf.shape(sequence)[1]
        shape = tf.shape(sequence, out_type=tf.int64)
        items, index = as_tokens(sequence, mask, self.packed)
        positions = self.positions[self.max_len - length:]
        positions = tf.tile(positions, [shape[0], 1]) if index is None else tf.gather(positions, index[:, 1])
        tokens = self.item_embedding(items) * math.sqrt(self.dim) + positions
        tokens = self.dropout(tokens, training=training)
        attention_mask = tf.logical_and(mask[:, :, None], mask[:, None, :])
        if self.causal:
            attention_mask = tf.logical_and(attention_mask, tf.linalg.band_part(tf.ones([length, length], tf.bool),
                                                                                -1, 0)[None])
        blocks = self.blocks[:-1] if last_only else self.blocks
        for block in blocks:
            tokens = self._block(block, tokens, tokens, index, shape, attention_mask, training)
        if not last_only:
            out = from_tokens(self.final_norm(tokens), index, tf.concat([shape, [self.dim]], axis=0))
            return out * tf.cast(mask, out.dtype)[..., None], mask
        # the final block with the last position as its only query (a left-padded row's last
        # position is real unless the row is empty): query shape [B, 1], keys all positions
        if index is None:
            last_tokens, last_index = tf.reshape(tokens, [-1, length, self.dim])[:, -1], None
        else:
            is_last = tf.equal(index[:, 1], tf.cast(length, index.dtype) - 1)
            last_tokens = tf.boolean_mask(tokens, is_last)
            last_index = tf.boolean_mask(index, is_last) * tf.constant([1, 0], index.dtype)  # column 0 of [B, 1]
        last_shape = tf.stack([shape[0], tf.constant(1, tf.int64)])
        last_tokens = self._block(self.blocks[-1], last_tokens, tokens, last_index, last_shape,
                                  attention_mask[:, -1:], training, value_index=index, value_shape=shape)
        out = from_tokens(self.final_norm(last_tokens), last_index, tf.concat([last_shape, [self.dim]], axis=0))[:, 0]
        return out * tf.cast(mask[:, -1], out.dtype)[:, None], mask

    def _block(self, block, query_tokens, value_tokens, index, shape, attention_mask, training, value_index=None,
               value_shape=None):
        """One block: the normalised queries attend over `value_tokens` (the same tokens in
        self-attention), then the feed-forward, each with its residual."""
        query_tokens = query_tokens + block["attention"](block["norm1"](query_tokens), value_tokens, index, shape,
                                                         attention_mask, training=training, value_index=value_index,
                                                         value_shape=value_shape)
        return query_tokens + self.dropout(block["ffn2"](block["ffn1"](block["norm2"](query_tokens))),
                                           training=training)


class LayerNorm(tf.keras.layers.Layer):
    """Layer normalisation over the last axis with its gradient written out in closed form.

    The same function as Keras' `LayerNormalization` (which, at an epsilon below 1e-5, takes
    its unfused path); autodiff through that path keeps and differentiates every
    intermediate, and this backward pass is one expression, measurably cheaper per step.
    """

    def __init__(self, epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def build(self, input_shape):
        self.gamma = self.add_weight(name="gamma", shape=input_shape[-1:], initializer="ones")
        self.beta = self.add_weight(name="beta", shape=input_shape[-1:], initializer="zeros")
        super().build(input_shape)

    def call(self, x):
        epsilon = self.epsilon

        @tf.custom_gradient
        def normalise(x, gamma, beta):
            centered = x - tf.reduce_mean(x, axis=-1, keepdims=True)
            inverse_std = tf.math.rsqrt(tf.reduce_mean(tf.square(centered), axis=-1, keepdims=True) + epsilon)
            normalised = centered * inverse_std

            def gradient(upstream):
                d_normalised = upstream * gamma
                d_x = inverse_std * (d_normalised - tf.reduce_mean(d_normalised, axis=-1, keepdims=True)
                                     - normalised * tf.reduce_mean(d_normalised * normalised, axis=-1, keepdims=True))
                leading = tf.range(tf.rank(x) - 1)
                return (d_x, tf.reduce_sum(upstream * normalised, axis=leading),
                        tf.reduce_sum(upstream, axis=leading))

            return normalised * gamma + beta, gradient

        return normalise(x, self.gamma, self.beta)
