"""The input pipeline: left padding of ragged histories and per-batch trimming of padding."""
import numpy as np
import tensorflow as tf

from models import data as D
from models import features as F


def test_left_pad_ragged_keeps_the_tail():
    ragged = tf.ragged.constant([[1, 2, 3], [], [4, 5, 6, 7, 8]], dtype=tf.int64)
    assert D.left_pad_ragged(ragged, 4).numpy().tolist() == [[0, 1, 2, 3], [0, 0, 0, 0], [5, 6, 7, 8]]


def test_trim_history_padding_keeps_every_real_item():
    hx = np.zeros((3, 20), np.int64)
    hy = np.zeros((3, 20), np.int64)
    hx[0, -5:] = [1, 2, 3, 4, 5]
    hy[2, -2:] = [7, 8]
    batch = {F.HISTORY_X: tf.constant(hx), F.HISTORY_Y: tf.constant(hy), F.PSEUDO_X: tf.ones([3, 40], tf.int64)}
    out = D.trim_history_padding(batch)
    assert out[F.HISTORY_X].shape[1] == 8 and out[F.HISTORY_Y].shape[1] == 8  # 5 rounded up to a multiple of 4
    np.testing.assert_array_equal(out[F.HISTORY_X].numpy(), hx[:, -8:])
    np.testing.assert_array_equal(out[F.HISTORY_Y].numpy(), hy[:, -8:])
    assert out[F.PSEUDO_X].shape[1] == 40  # pseudo-sequences are full length and untouched
    full = np.arange(1, 21)[None].repeat(3, 0)
    kept = D.trim_history_padding({F.HISTORY_X: tf.constant(full), F.HISTORY_Y: tf.constant(hy)})
    assert kept[F.HISTORY_X].shape[1] == 20  # never wider than T, never cuts a real item
