"""tf.data input pipeline: gzip TFRecords -> dicts of left-padded item-index tensors."""
from __future__ import annotations

import json
from typing import Dict, List

import tensorflow as tf

from models import feature_spec


def left_pad_ragged(values: tf.RaggedTensor, length: int) -> tf.Tensor:
    """Keeps the last `length` items of each row and left-pads with 0 to [B, length]."""
    tail = values[:, -length:]
    lengths = tail.row_lengths()
    right_padded = tail.to_tensor(default_value=0, shape=[None, length])
    reversed_rows = tf.reverse_sequence(right_padded, lengths, seq_axis=1, batch_axis=0)
    return tf.reverse(reversed_rows, axis=[1])


def make_parser(max_len: int, pseudo_len: int):
    spec = feature_spec.parsing_spec(with_pseudo=True)

    def parse(serialized: tf.Tensor) -> Dict[str, tf.Tensor]:
        parsed = tf.io.parse_example(serialized, spec)
        # numeric features only: the model needs no user id, and string tensors keep XLA out
        out = {name: parsed[name] for name in feature_spec.SCALAR_INT_FEATURES}
        for name, length in ((feature_spec.HISTORY_X, max_len), (feature_spec.HISTORY_Y, max_len),
                             (feature_spec.PSEUDO_X, pseudo_len), (feature_spec.PSEUDO_Y, pseudo_len)):
            out[name] = left_pad_ragged(tf.RaggedTensor.from_sparse(parsed[name]), length)
        return out

    return parse


def trim_history_padding(batch: Dict[str, tf.Tensor], multiple: int = 4) -> Dict[str, tf.Tensor]:
    """Drops the all-padding left columns of both histories, keeping a width that is a
    multiple of `multiple` (few distinct shapes, for XLA). Most real histories are 3 to 5
    items long, so this saves most of the history encoders' work; the encoders' outputs
    do not change because positions are right-aligned (tested padding invariance)."""
    t = tf.shape(batch[feature_spec.HISTORY_X])[1]
    longest = tf.reduce_max(tf.reduce_sum(tf.cast(tf.concat([batch[feature_spec.HISTORY_X],
                                                             batch[feature_spec.HISTORY_Y]], 0) > 0,
                                                  tf.int32), axis=1))
    width = tf.minimum(t, tf.maximum(multiple, (longest + multiple - 1) // multiple * multiple))
    out = dict(batch)
    for name in (feature_spec.HISTORY_X, feature_spec.HISTORY_Y):
        out[name] = batch[name][:, t - width:]
    return out


def expand(patterns: List[str]) -> List[str]:
    files = sorted(f for p in patterns for f in (tf.io.gfile.glob(p) if any(c in p for c in "*?[") else [p]))
    if not files:
        raise FileNotFoundError(f"no TFRecord files match {patterns}")
    return files


def make_dataset(patterns: List[str], batch_size: int, max_len: int, pseudo_len: int, shuffle: bool = False,
                 seed: int = 42, cache: bool = True, trim_padding: bool = False,
                 shuffle_buffer: int = 100_000) -> tf.data.Dataset:
    """Batched, parsed examples; shuffled per epoch when training. Parsing runs in parallel.
    With `trim_padding`, each batch's histories are cut to its longest row (see above)."""
    ds = tf.data.TFRecordDataset(expand(patterns), compression_type="GZIP")
    if cache:
        ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    return batch_and_parse(ds, batch_size, max_len, pseudo_len, trim_padding)


def batch_and_parse(ds: tf.data.Dataset, batch_size: int, max_len: int, pseudo_len: int,
                    trim_padding: bool = False) -> tf.data.Dataset:
    """Serialized examples -> batched feature dicts (parsed in parallel), optionally trimmed, prefetched."""
    ds = ds.batch(batch_size).map(make_parser(max_len, pseudo_len), num_parallel_calls=tf.data.AUTOTUNE)
    if trim_padding:
        ds = ds.map(trim_history_padding, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def write_json_atomically(path: str, value, **dump_args) -> None:
    """JSON through `tf.io.gfile`, written to `<path>.partial` and renamed: a reader (or a
    re-run after a kill) sees the whole file or none of it."""
    with tf.io.gfile.GFile(path + ".partial", "w") as f:
        json.dump(value, f, default=float, **dump_args)
    tf.io.gfile.rename(path + ".partial", path, overwrite=True)


def read_split(examples_root: str, split: str) -> List[Dict]:
    """All examples of one split as Python dicts."""
    return read_rows(expand([feature_spec.split_pattern(examples_root, split)]))


def read_rows_lazily(files: List[str]):
    """Parsed rows one at a time, in file order (nothing kept: for one pass over a large split)."""
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP").as_numpy_iterator():
        yield feature_spec.from_example(record)


def read_rows(files: List[str]) -> List[Dict]:
    """Reads gzip TFRecords of examples into Python dicts (driver-side: graph building, evaluation)."""
    return list(read_rows_lazily(files))


def prefix_target_rows(rows: List[Dict], max_len: int, per_row: int) -> List[Dict]:
    """Extra training rows: earlier items of each row's target-domain history as targets.

    Why: the paper's CSV gives one target per (user, domain), the last item, so the i2VAE
    learns from about one example per user, while SASRec learns from every position of
    its sequences. Each extra row keeps the items before its target as history and the
    other domain unchanged (the CSV has no order across domains). Its pseudo-sequence is
    the shortened history followed by the row's recalled items; those exclude every item
    the user has seen, so no later target leaks in (the pseudo-sequence is up to the
    removed items shorter than T'). Up to `per_row` rows per row, latest targets first;
    every extra row keeps at least one history item. Group flags are copied: training
    does not read them.
    """
    out = []
    for row in rows:
        history_name, pseudo_name = ((feature_spec.HISTORY_X, feature_spec.PSEUDO_X)
                                     if row[feature_spec.TARGET_DOMAIN] == 0
                                     else (feature_spec.HISTORY_Y, feature_spec.PSEUDO_Y))
        history = list(row[history_name])
        recalled = _recalled_items(row, history_name, pseudo_name, max_len)
        for j in range(len(history) - 1, max(0, len(history) - 1 - per_row), -1):
            prefix = history[:j]
            out.append(dict(row, **{history_name: prefix, pseudo_name: prefix[-max_len:] + recalled,
                                    feature_spec.TARGET_ITEM: history[j]}))
    return out


def cold_start_rows(rows: List[Dict], max_len: int) -> List[Dict]:
    """Extra training rows shaped like a cold-start test row: no target-domain history.

    Why: every row of the paper's train split has target-domain history (the target is the
    last item of that domain's sequence), so training never shows the model the input a
    cold-start test row has (history in the other domain only, docs/method.md). Each
    train row whose other domain has history gives one such row: the same target, its
    target-domain history emptied, the other domain unchanged. The target stays the row's
    latest item on purpose: a first version used the history's first item, and those old
    items taught the model a past that cold-start test targets (the newest items) do not
    share; cold-start HR@10 fell to chance or below on cloth_sport (README, Results). The
    pseudo-sequence keeps only the row's recalled items, which exclude every item the user
    has seen, so the target does not leak in (they were recalled with the user's full train
    history, so they are better informed than a true cold-start user's).
    """
    out = []
    for row in rows:
        own, other, pseudo_name = ((feature_spec.HISTORY_X, feature_spec.HISTORY_Y, feature_spec.PSEUDO_X)
                                   if row[feature_spec.TARGET_DOMAIN] == 0
                                   else (feature_spec.HISTORY_Y, feature_spec.HISTORY_X, feature_spec.PSEUDO_Y))
        if not row[own] or not row[other]:
            continue
        out.append(dict(row, **{own: [], pseudo_name: _recalled_items(row, own, pseudo_name, max_len)}))
    return out


def _recalled_items(row, history_name, pseudo_name, max_len) -> List[int]:
    """The pseudo-sequence without its history tail, which the extra rows cut off: the
    tail must be there (the pseudo-sequence generator's layout), or the cut is wrong."""
    history, pseudo = list(row[history_name]), list(row[pseudo_name])
    shown = min(len(history), max_len)
    if pseudo[:shown] != history[len(history) - shown:]:
        raise ValueError(f"row of user {row.get(feature_spec.USER_ID)!r}: {pseudo_name} does not start with the "
                         f"last {shown} items of {history_name}; was it made by the pseudo-sequence generator?")
    return pseudo[shown:]
