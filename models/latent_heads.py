"""The i2VAE's latent heads: Gaussian posteriors (TFP distributions), learnable priors and
the two cross-domain encoders of q(z_t | x, y)."""
from __future__ import annotations

import math

import tensorflow as tf
import tensorflow_probability as tfp

from models.sasrec_encoder import PackedAttention, as_tokens, from_tokens, masked_mean

tfd = tfp.distributions


class GaussianHead(tf.keras.layers.Layer):
    """Maps features to a diagonal Gaussian posterior (a TFP MultivariateNormalDiag)."""

    def __init__(self, latent_dim, min_scale, hidden=None, **kwargs):
        super().__init__(**kwargs)
        self.hidden = [tf.keras.layers.Dense(h, activation="relu") for h in (hidden or [])]
        self.params = tf.keras.layers.Dense(2 * latent_dim)
        self.min_scale = min_scale

    def call(self, x):
        for layer in self.hidden:
            x = layer(x)
        loc, raw = tf.split(self.params(x), 2, axis=-1)
        return tfd.MultivariateNormalDiag(loc=loc, scale_diag=tf.nn.softplus(raw) + self.min_scale)


class LearnablePrior(tf.keras.layers.Layer):
    """A learnable per-domain Normal prior p(z) = N(mu, diag(sigma^2)), starting at N(0, I)."""

    def __init__(self, latent_dim, min_scale, **kwargs):
        super().__init__(**kwargs)
        self.loc = self.add_weight(name="loc", shape=(latent_dim,), initializer="zeros")
        self.raw_scale = self.add_weight(name="raw_scale", shape=(latent_dim,),
                                         initializer=tf.keras.initializers.Constant(math.log(math.e - 1.0)))
        self.min_scale = min_scale

    def distribution(self):
        return tfd.MultivariateNormalDiag(loc=self.loc, scale_diag=tf.nn.softplus(self.raw_scale) + self.min_scale)


class CrossDomainAttention(tf.keras.layers.Layer):
    """q(z_t|x, y): query one domain's unpooled sequence, key/value the other's, mean, MLP."""

    def __init__(self, dim, latent_dim, num_heads, min_scale, packed=True, **kwargs):
        super().__init__(**kwargs)
        self.dim, self.packed = dim, packed
        self.attention = PackedAttention(num_heads, dim, name="attention")
        self.head = GaussianHead(latent_dim, min_scale, hidden=[dim])

    def attend(self, query_seq, query_mask, kv_seq, kv_mask, training=False):
        """Per query position, what it reads of the other domain ([B, L, d], zero at padding).
        Only the real positions of both sequences are projected (`PackedAttention`; every
        position without `packed`). A row whose other domain is empty reads only the output
        bias; such a row is cold-start and takes its transferred latent from r, not q_zt."""
        query_tokens, query_index = as_tokens(query_seq, query_mask, self.packed)
        value_tokens, value_index = as_tokens(kv_seq, kv_mask, self.packed)
        query_shape, value_shape = tf.shape(query_mask, out_type=tf.int64), tf.shape(kv_mask, out_type=tf.int64)
        mask = tf.logical_and(query_mask[:, :, None], kv_mask[:, None, :])
        attended = self.attention(query_tokens, value_tokens, query_index, query_shape, mask, training=training,
                                  value_index=value_index, value_shape=value_shape)
        attended = from_tokens(attended, query_index, tf.concat([query_shape, [self.dim]], axis=0))
        return attended * tf.cast(query_mask, attended.dtype)[..., None]

    def call(self, query_seq, query_mask, kv_seq, kv_mask, training=False):
        """One posterior per row: the attended positions mean-pooled (the paper)."""
        return self.head(masked_mean(self.attend(query_seq, query_mask, kv_seq, kv_mask, training), query_mask))


class CrossDomainMLP(tf.keras.layers.Layer):
    """The MLP variant of q(z_t|x, y) on the pooled [X; Y] (or a position's state and Y)."""

    def __init__(self, dim, latent_dim, min_scale, **kwargs):
        super().__init__(**kwargs)
        self.head = GaussianHead(latent_dim, min_scale, hidden=[dim])

    def call(self, pooled_query, pooled_kv):
        return self.head(tf.concat([pooled_query, pooled_kv], axis=-1))
