"""Feature names and their encoding, one name per concept everywhere (STYLE.md).

In TFRecords the history and pseudo features hold 1-based item indices of the domain's
vocabulary (0 is padding); the serving signature takes the same names as raw id strings.
"""
from __future__ import annotations

import json
import os
from typing import Dict, List

import tensorflow as tf

USER_ID = "user_id"
HISTORY_X = "history_x"
HISTORY_Y = "history_y"
PSEUDO_X = "pseudo_x"
PSEUDO_Y = "pseudo_y"
TARGET_ITEM = "target_item"
TARGET_DOMAIN = "target_domain"
IS_COLD_START = "is_cold_start"
IS_LONG_TAILED = "is_long_tailed"

SEQUENCE_FEATURES = (HISTORY_X, HISTORY_Y, PSEUDO_X, PSEUDO_Y)
SCALAR_INT_FEATURES = (TARGET_ITEM, TARGET_DOMAIN, IS_COLD_START, IS_LONG_TAILED)
INGEST_FEATURES = (USER_ID, HISTORY_X, HISTORY_Y) + SCALAR_INT_FEATURES
ALL_FEATURES = INGEST_FEATURES + (PSEUDO_X, PSEUDO_Y)

VOCAB_DIR = "vocab"
VOCAB_FILES = ("vocab_x.txt", "vocab_y.txt")
SPLIT_DIR = "Split-{}"
RECORD_SUFFIX = ".tfrecord.gz"
# ingest's list of the held-out rows whose hidden items the raw split shows elsewhere
LEAK_TOUCHED_FILE = "leak_touched.json"


def to_example(features: Dict) -> bytes:
    """Serialises a feature dict (the names above) to a tf.train.Example."""
    feature = {}
    for name, value in features.items():
        if name == USER_ID:
            feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(value).encode()]))
        elif name in SEQUENCE_FEATURES:
            feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in value]))
        elif name in SCALAR_INT_FEATURES:
            feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))
        else:
            raise KeyError(f"unknown feature '{name}'")
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def from_example(serialized: bytes) -> Dict:
    """Parses a tf.train.Example into plain Python values (for Beam transforms and tests)."""
    example = tf.train.Example.FromString(serialized)
    out = {}
    for name, feature in example.features.feature.items():
        if name == USER_ID:
            out[name] = feature.bytes_list.value[0].decode()
        elif name in SEQUENCE_FEATURES:
            out[name] = list(feature.int64_list.value)
        else:
            out[name] = int(feature.int64_list.value[0])
    return out


def parsing_spec(with_pseudo: bool = True) -> Dict:
    """tf.io feature spec for the training and evaluation input pipelines."""
    spec = {USER_ID: tf.io.FixedLenFeature([], tf.string)}
    for name in (HISTORY_X, HISTORY_Y) + ((PSEUDO_X, PSEUDO_Y) if with_pseudo else ()):
        spec[name] = tf.io.VarLenFeature(tf.int64)
    for name in SCALAR_INT_FEATURES:
        spec[name] = tf.io.FixedLenFeature([], tf.int64)
    return spec


def split_pattern(examples_root: str, split: str) -> str:
    """The file pattern of one split's TFRecords in an Examples artifact."""
    return os.path.join(examples_root, SPLIT_DIR.format(split), "*")


DOMAINS_FILE = "domains.json"  # in VOCAB_DIR: the names of domains X and Y


def write_domain_names(examples_root: str, names) -> None:
    tf.io.gfile.makedirs(os.path.join(examples_root, VOCAB_DIR))
    with tf.io.gfile.GFile(os.path.join(examples_root, VOCAB_DIR, DOMAINS_FILE), "w") as f:
        json.dump({"x": names[0], "y": names[1]}, f)


def read_domain_names(examples_root: str):
    """(name of X, name of Y) as ingest found them ("x", "y" when the data had no names)."""
    path = os.path.join(examples_root, VOCAB_DIR, DOMAINS_FILE)
    if not tf.io.gfile.exists(path):
        return "x", "y"
    with tf.io.gfile.GFile(path) as f:
        names = json.load(f)
    return names["x"], names["y"]


def display_name(name: str) -> str:
    """How a domain is named in tables: "food" -> "Food", "x" -> "X"."""
    return name[:1].upper() + name[1:]


def read_vocabs(examples_root: str):
    """(vocab_x, vocab_y): each domain's raw item ids; item index i is line i (1-based)."""
    return tuple(read_vocab(os.path.join(examples_root, VOCAB_DIR, f)) for f in VOCAB_FILES)


def vocab_sizes(examples_root: str):
    return tuple(len(v) for v in read_vocabs(examples_root))


def read_vocab(path: str) -> List[str]:
    with tf.io.gfile.GFile(path) as f:
        return [line.rstrip("\n") for line in f]


def write_lines(path: str, lines: List[str]) -> None:
    with tf.io.gfile.GFile(path, "w") as f:  # one write: GFile creates no file until written to
        f.write("".join(f"{line}\n" for line in lines))
