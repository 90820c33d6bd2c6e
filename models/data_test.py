"""The input pipeline: left padding of ragged histories and per-batch trimming of padding."""
import numpy as np
import pytest
import tensorflow as tf

from models import data, feature_spec


def test_left_pad_ragged_keeps_the_tail():
    ragged = tf.ragged.constant([[1, 2, 3], [], [4, 5, 6, 7, 8]], dtype=tf.int64)
    assert data.left_pad_ragged(ragged, 4).numpy().tolist() == [[0, 1, 2, 3], [0, 0, 0, 0], [5, 6, 7, 8]]


def test_trim_history_padding_keeps_every_real_item():
    hx = np.zeros((3, 20), np.int64)
    hy = np.zeros((3, 20), np.int64)
    hx[0, -5:] = [1, 2, 3, 4, 5]
    hy[2, -2:] = [7, 8]
    batch = {feature_spec.HISTORY_X: tf.constant(hx), feature_spec.HISTORY_Y: tf.constant(hy),
             feature_spec.PSEUDO_X: tf.ones([3, 40], tf.int64)}
    out = data.trim_history_padding(batch)
    # 5 rounded up to a multiple of 4
    assert out[feature_spec.HISTORY_X].shape[1] == 8 and out[feature_spec.HISTORY_Y].shape[1] == 8
    np.testing.assert_array_equal(out[feature_spec.HISTORY_X].numpy(), hx[:, -8:])
    np.testing.assert_array_equal(out[feature_spec.HISTORY_Y].numpy(), hy[:, -8:])
    assert out[feature_spec.PSEUDO_X].shape[1] == 40  # pseudo-sequences are full length and untouched
    full = np.arange(1, 21)[None].repeat(3, 0)
    kept = data.trim_history_padding({feature_spec.HISTORY_X: tf.constant(full),
                                      feature_spec.HISTORY_Y: tf.constant(hy)})
    assert kept[feature_spec.HISTORY_X].shape[1] == 20  # never wider than T, never cuts a real item


def _row(history_x, history_y, recalled, target, target_domain=0, max_len=3, pseudo_len=6):
    """A row as the pseudo-sequence generator writes it (pseudo = history tail + recalled)."""
    from models import psg
    hist = history_x if target_domain == 0 else history_y
    pseudo = psg.compose_pseudo(psg.left_pad([hist], max_len), tf.constant([recalled], tf.int64), pseudo_len)
    pseudo = [int(v) for v in pseudo.numpy()[0] if v > 0]
    other = [int(v) for v in psg.compose_pseudo(psg.left_pad([history_y if target_domain == 0 else history_x], max_len),
                                                tf.constant([[90, 91, 92, 93, 94, 95]], tf.int64),
                                                pseudo_len).numpy()[0]]
    names = ((feature_spec.PSEUDO_X, feature_spec.PSEUDO_Y) if target_domain == 0
             else (feature_spec.PSEUDO_Y, feature_spec.PSEUDO_X))
    return {feature_spec.USER_ID: "u", feature_spec.HISTORY_X: history_x, feature_spec.HISTORY_Y: history_y,
            names[0]: pseudo, names[1]: other, feature_spec.TARGET_ITEM: target,
            feature_spec.TARGET_DOMAIN: target_domain, feature_spec.IS_COLD_START: 0, feature_spec.IS_LONG_TAILED: 1}


def test_prefix_target_rows_shift_the_target_back_without_leaking_later_items():
    row = _row([1, 2, 3, 4], [7, 8], [50, 51, 52, 53, 54, 55], target=5)
    extra = data.prefix_target_rows([row], max_len=3, per_row=10)
    assert [(r[feature_spec.HISTORY_X], r[feature_spec.TARGET_ITEM])
            for r in extra] == [([1, 2, 3], 4), ([1, 2], 3), ([1], 2)]
    assert extra[0][feature_spec.PSEUDO_X] == [1, 2, 3, 50, 51, 52]
    assert extra[2][feature_spec.PSEUDO_X] == [1, 50, 51, 52]
    for r in extra:
        # the other domain is unchanged
        assert r[feature_spec.HISTORY_Y] == [7, 8] and r[feature_spec.PSEUDO_Y] == row[feature_spec.PSEUDO_Y]
        later = row[feature_spec.HISTORY_X][len(r[feature_spec.HISTORY_X]):] + [row[feature_spec.TARGET_ITEM]]
        assert not set(later) & set(r[feature_spec.PSEUDO_X])  # neither the target nor anything after it
    assert len(data.prefix_target_rows([row], 3, per_row=1)) == 1  # the cap, latest target first
    y_row = _row([1], [7, 8, 9], [60, 61, 62, 63, 64, 65], target=10, target_domain=1)
    assert [(r[feature_spec.HISTORY_Y], r[feature_spec.TARGET_ITEM])
            for r in data.prefix_target_rows([y_row], 3, 5)] == [([7, 8], 9), ([7], 8)]
    assert data.prefix_target_rows([_row([], [7], [60] * 6, target=3)], 3, 5) == []  # no history: nothing to shift
    # serialisable as training examples
    assert feature_spec.from_example(feature_spec.to_example(extra[0]))[feature_spec.TARGET_ITEM] == 4


def test_cold_start_rows_empty_the_target_domain_and_keep_only_recalled_items():
    row = _row([1, 2, 3, 4], [7, 8], [50, 51, 52, 53, 54, 55], target=5)
    (cold,) = data.cold_start_rows([row], max_len=3)
    assert cold[feature_spec.HISTORY_X] == [] and cold[feature_spec.TARGET_ITEM] == 5  # the row's own (latest) target
    assert cold[feature_spec.PSEUDO_X] == [50, 51, 52]  # the history tail is cut off, the recalled items stay
    # the other domain is unchanged
    assert cold[feature_spec.HISTORY_Y] == [7, 8] and cold[feature_spec.PSEUDO_Y] == row[feature_spec.PSEUDO_Y]
    assert not set(row[feature_spec.HISTORY_X] + [row[feature_spec.TARGET_ITEM]]) & set(cold[feature_spec.PSEUDO_X])
    y_row = _row([1], [7, 8, 9], [60, 61, 62, 63, 64, 65], target=10, target_domain=1)
    (cold_y,) = data.cold_start_rows([y_row], 3)
    assert cold_y[feature_spec.HISTORY_Y] == [] and cold_y[feature_spec.TARGET_ITEM] == 10
    assert cold_y[feature_spec.HISTORY_X] == [1]
    # no other-domain history: the row would have no input at all, so none is made
    assert data.cold_start_rows([_row([1, 2], [], [50] * 6, target=3)], 3) == []
    # the trainer's input: serialisable, and parsed like a real cold-start row
    parsed = feature_spec.from_example(feature_spec.to_example(cold))
    assert parsed[feature_spec.HISTORY_X] == [] and parsed[feature_spec.TARGET_ITEM] == 5


def test_prefix_target_rows_reject_a_pseudo_sequence_that_does_not_start_with_the_history():
    row = _row([1, 2, 3], [], [50] * 6, target=4)
    row[feature_spec.PSEUDO_X] = [9, 9, 9, 50, 50, 50]
    with pytest.raises(ValueError, match="pseudo_x does not start with the last 3 items of history_x"):
        data.prefix_target_rows([row], 3, 5)
    row[feature_spec.HISTORY_Y] = [7]
    with pytest.raises(ValueError, match="pseudo_x does not start with the last 3 items of history_x"):
        data.cold_start_rows([row], 3)
