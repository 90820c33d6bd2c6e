"""A tiny examples root whose training moves the metrics, and two-epoch training runs on it,
shared by the repeatability, backup, epoch-selection and remote-storage suites."""
import os

import numpy as np
import tensorflow as tf

from models import config, feature_spec, psg
from models.trainer import train_model

NX, NY, T, TP = 40, 30, 4, 6


def write_examples(root):
    """Vocabularies, a generator and train/eval/test TFRecords with a planted signal (each
    user's items come from one of 4 interest blocks, in order), so training moves the metrics."""
    rng = np.random.default_rng(0)
    os.makedirs(os.path.join(root, feature_spec.VOCAB_DIR))
    for name, n in zip(feature_spec.VOCAB_FILES, (NX, NY)):
        feature_spec.write_lines(os.path.join(root, feature_spec.VOCAB_DIR, name), [f"item{i}" for i in range(n)])
    psg.save_generator(os.path.join(root, psg.GENERATOR_DIR), rng.normal(size=(NX + 1, 4)).astype(np.float32),
                       rng.normal(size=(NY + 1, 4)).astype(np.float32), [], [], np.zeros((0, 4), np.float32))
    user = 0
    for split, n in (("train", 320), ("eval", 80), ("test", 80)):
        os.makedirs(os.path.join(root, feature_spec.SPLIT_DIR.format(split)))
        path = os.path.join(root, feature_spec.SPLIT_DIR.format(split), f"data{feature_spec.RECORD_SUFFIX}")
        with tf.io.TFRecordWriter(path, "GZIP") as w:
            for _ in range(n):
                interest = int(rng.integers(4))

                def seq(length, items):
                    start = interest * (items // 4) + int(rng.integers(items // 4))
                    return [(start + i) % items + 1 for i in range(length)]

                hx, hy = seq(int(rng.integers(0, T + 1)), NX), seq(int(rng.integers(1, T + 1)), NY)
                d = int(rng.integers(2)) if hx else 1
                w.write(feature_spec.to_example({feature_spec.USER_ID: f"u{user}", feature_spec.HISTORY_X: hx,
                                                 feature_spec.HISTORY_Y: hy,
                                                 feature_spec.PSEUDO_X: seq(TP, NX), feature_spec.PSEUDO_Y: seq(TP, NY),
                                                 feature_spec.TARGET_ITEM: seq(1, (NX, NY)[d])[0],
                                                 feature_spec.TARGET_DOMAIN: d,
                                                 feature_spec.IS_COLD_START: int(not hx),
                                                 feature_spec.IS_LONG_TAILED: int(len(hx) + len(hy) < 4)}))
                user += 1
    return root


def train(root, seed, log_dir):
    """Two epochs of the tiny i2VAE; returns the per-epoch history (loss, val and test metrics)."""
    cfg = config.load_config(overrides=[
        "model.embedding_dim=8", "model.latent_dim=4", "model.num_heads=2", "model.num_blocks=1",
        f"data.max_len={T}", f"data.pseudo_len={TP}", "train.epochs=2", "train.batch_size=32",
        "train.learning_rate=0.01", "eval.num_negatives=20", "eval.track_test_per_epoch=true",
        f"train.seed={seed}"])
    _, history, _ = train_model([feature_spec.split_pattern(root, "train")], [feature_spec.split_pattern(root, "eval")],
                                root, cfg, log_dir)
    return history["history"]
