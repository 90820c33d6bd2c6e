"""Repeatability: the same `train.seed` on CPU gives the same validation and test metrics.

Tolerance: 1e-6 absolute on every metric (HR, NDCG, MRR in [0, 1]) and 1e-6 relative on
the epoch losses, for every epoch; in practice the figures are identical, because
`build_model` seeds Python, NumPy and TensorFlow (`tf.keras.utils.set_random_seed`)
before any weight, dropout mask, latent sample or shuffle order is drawn, and the
validation negatives come from `eval.seed`. The claim is for one machine and TensorFlow
build (CPU kernels may sum in another order on other hardware or thread counts).

One run is a fresh process with another PYTHONHASHSEED (as re-running the command
would be); the other runs in the test process on the same rows split over two shards in
another order, as Beam writes them differently on every pipeline run (the trainer sorts
rows by content before its seeded shuffle; without that, this comparison fails). A run
with another seed must differ, so the comparison can fail. The trainer's functions are
called directly (no TFX), on tiny TFRecords written here.
"""
import glob
import json
import math
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from models import config, feature_spec, psg
from models.trainer import train_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NX, NY, T, TP = 40, 30, 4, 6
TOLERANCE = 1e-6


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


def reshard(src, dst):
    """A copy of an examples root with every split's rows shuffled over two shards."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("Split-*"))
    rng = np.random.default_rng(1)
    for split in ("train", "eval", "test"):
        records = list(tf.data.TFRecordDataset(glob.glob(feature_spec.split_pattern(src, split)),
                                               "GZIP").as_numpy_iterator())
        order = rng.permutation(len(records))
        os.makedirs(os.path.join(dst, feature_spec.SPLIT_DIR.format(split)))
        for shard in range(2):
            name = f"data-{shard:05d}-of-00002{feature_spec.RECORD_SUFFIX}"
            with tf.io.TFRecordWriter(os.path.join(dst, feature_spec.SPLIT_DIR.format(split), name), "GZIP") as w:
                for i in order[shard::2]:
                    w.write(records[i])
    return dst


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


def flatten(value, path=""):
    """{"a/b/c": number} of every number in a nested history."""
    if isinstance(value, dict):
        return {k: v for key, sub in value.items() for k, v in flatten(sub, f"{path}/{key}").items()}
    if isinstance(value, list):
        return {k: v for i, sub in enumerate(value) for k, v in flatten(sub, f"{path}/{i}").items()}
    return {path: float(value)}


def differences(a, b):
    """The entries of two histories that differ by more than the tolerance (NaN equals NaN)."""
    fa, fb = flatten(a), flatten(b)
    assert fa.keys() == fb.keys()
    out = {}
    for key in fa:
        x, y = fa[key], fb[key]
        if math.isnan(x) and math.isnan(y):
            continue
        scale = max(1.0, abs(x)) if key.endswith("/loss") else 1.0
        if not abs(x - y) <= TOLERANCE * scale:
            out[key] = (x, y)
    return out


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    return write_examples(str(tmp_path_factory.mktemp("repeat") / "examples"))


@pytest.mark.slow  # three trainings, one in a fresh process; `make test-slow`
def test_same_seed_same_metrics_in_a_fresh_process_and_another_seed_differs(examples, tmp_path):
    code = textwrap.dedent(f"""
        import json
        from test_repeatability import train
        print(json.dumps(train({examples!r}, 7, {str(tmp_path / "fresh")!r})))
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, "tests")]), TF_USE_LEGACY_KERAS="1",
               TF_CPP_MIN_LOG_LEVEL="2", PYTHONHASHSEED="123")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    fresh = json.loads(out.stdout.strip().splitlines()[-1])
    same = train(reshard(examples, str(tmp_path / "resharded")), 7, str(tmp_path / "same"))
    assert len(same) == 3 and all("test_metrics" in e for e in same)  # untrained + 2 epochs, test tracked
    assert differences(fresh, same) == {}
    other = train(examples, 8, str(tmp_path / "other"))
    changed = differences(same, other)
    # every trained epoch's loss and validation NDCG differ; the untrained model differs too (weights)
    assert {"/1/loss", "/2/loss", "/0/val_ndcg", "/1/val_ndcg", "/2/val_ndcg"} <= changed.keys(), changed
