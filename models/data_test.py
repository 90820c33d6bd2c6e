"""The input pipeline: left padding of ragged histories and per-batch trimming of padding."""
import numpy as np
import pytest
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


def _row(history_x, history_y, recalled, target, target_domain=0, max_len=3, pseudo_len=6):
    """A row as the pseudo-sequence generator writes it (pseudo = history tail + recalled)."""
    from models import psg as P
    hist = history_x if target_domain == 0 else history_y
    pseudo = P.compose_pseudo(P.left_pad([hist], max_len), tf.constant([recalled], tf.int64), pseudo_len)
    pseudo = [int(v) for v in pseudo.numpy()[0] if v > 0]
    other = [int(v) for v in P.compose_pseudo(P.left_pad([history_y if target_domain == 0 else history_x], max_len),
                                              tf.constant([[90, 91, 92, 93, 94, 95]], tf.int64), pseudo_len).numpy()[0]]
    names = (F.PSEUDO_X, F.PSEUDO_Y) if target_domain == 0 else (F.PSEUDO_Y, F.PSEUDO_X)
    return {F.USER_ID: "u", F.HISTORY_X: history_x, F.HISTORY_Y: history_y, names[0]: pseudo, names[1]: other,
            F.TARGET_ITEM: target, F.TARGET_DOMAIN: target_domain, F.IS_COLD_START: 0, F.IS_LONG_TAILED: 1}


def test_prefix_target_rows_shift_the_target_back_without_leaking_later_items():
    row = _row([1, 2, 3, 4], [7, 8], [50, 51, 52, 53, 54, 55], target=5)
    extra = D.prefix_target_rows([row], max_len=3, per_row=10)
    assert [(r[F.HISTORY_X], r[F.TARGET_ITEM]) for r in extra] == [([1, 2, 3], 4), ([1, 2], 3), ([1], 2)]
    assert extra[0][F.PSEUDO_X] == [1, 2, 3, 50, 51, 52] and extra[2][F.PSEUDO_X] == [1, 50, 51, 52]
    for r in extra:
        assert r[F.HISTORY_Y] == [7, 8] and r[F.PSEUDO_Y] == row[F.PSEUDO_Y]  # the other domain is unchanged
        later = row[F.HISTORY_X][len(r[F.HISTORY_X]):] + [row[F.TARGET_ITEM]]
        assert not set(later) & set(r[F.PSEUDO_X])  # neither the target nor anything after it
    assert len(D.prefix_target_rows([row], 3, per_row=1)) == 1  # the cap, latest target first
    y_row = _row([1], [7, 8, 9], [60, 61, 62, 63, 64, 65], target=10, target_domain=1)
    assert [(r[F.HISTORY_Y], r[F.TARGET_ITEM]) for r in D.prefix_target_rows([y_row], 3, 5)] == [([7, 8], 9), ([7], 8)]
    assert D.prefix_target_rows([_row([], [7], [60] * 6, target=3)], 3, 5) == []  # no history: nothing to shift
    # serialisable as training examples
    assert F.from_example(F.to_example(extra[0]))[F.TARGET_ITEM] == 4


def test_cold_start_rows_empty_the_target_domain_and_keep_only_recalled_items():
    row = _row([1, 2, 3, 4], [7, 8], [50, 51, 52, 53, 54, 55], target=5)
    (cold,) = D.cold_start_rows([row], max_len=3)
    assert cold[F.HISTORY_X] == [] and cold[F.TARGET_ITEM] == 5  # the row's own (latest) target
    assert cold[F.PSEUDO_X] == [50, 51, 52]  # the history tail is cut off, the recalled items stay
    assert cold[F.HISTORY_Y] == [7, 8] and cold[F.PSEUDO_Y] == row[F.PSEUDO_Y]  # the other domain is unchanged
    assert not set(row[F.HISTORY_X] + [row[F.TARGET_ITEM]]) & set(cold[F.PSEUDO_X])
    y_row = _row([1], [7, 8, 9], [60, 61, 62, 63, 64, 65], target=10, target_domain=1)
    (cold_y,) = D.cold_start_rows([y_row], 3)
    assert cold_y[F.HISTORY_Y] == [] and cold_y[F.TARGET_ITEM] == 10 and cold_y[F.HISTORY_X] == [1]
    # no other-domain history: the row would have no input at all, so none is made
    assert D.cold_start_rows([_row([1, 2], [], [50] * 6, target=3)], 3) == []
    # the trainer's input: serialisable, and parsed like a real cold-start row
    parsed = F.from_example(F.to_example(cold))
    assert parsed[F.HISTORY_X] == [] and parsed[F.TARGET_ITEM] == 5


def test_prefix_target_rows_reject_a_pseudo_sequence_that_does_not_start_with_the_history():
    row = _row([1, 2, 3], [], [50] * 6, target=4)
    row[F.PSEUDO_X] = [9, 9, 9, 50, 50, 50]
    with pytest.raises(ValueError, match="pseudo_x does not start with the last 3 items of history_x"):
        D.prefix_target_rows([row], 3, 5)
    row[F.HISTORY_Y] = [7]
    with pytest.raises(ValueError, match="pseudo_x does not start with the last 3 items of history_x"):
        D.cold_start_rows([row], 3)
