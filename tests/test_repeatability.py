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
import math
import os
import shutil
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from models import feature_spec
from tests.epoch_runs import train, write_examples
from tests.fresh_process import run_json

TOLERANCE = 1e-6


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


@pytest.mark.long  # three trainings, one in a fresh process; `make test-long` (about 2 min each; not in CI)
def test_same_seed_same_metrics_in_a_fresh_process_and_another_seed_differs(examples, tmp_path):
    code = textwrap.dedent(f"""
        import json
        from tests.epoch_runs import train
        print(json.dumps(train({examples!r}, 7, {str(tmp_path / "fresh")!r})))
    """)
    fresh = run_json(code, PYTHONHASHSEED="123")
    same = train(reshard(examples, str(tmp_path / "resharded")), 7, str(tmp_path / "same"))
    assert len(same) == 3 and all("test_metrics" in e for e in same)  # untrained + 2 epochs, test tracked
    assert differences(fresh, same) == {}
    other = train(examples, 8, str(tmp_path / "other"))
    changed = differences(same, other)
    # every trained epoch's loss and validation NDCG differ; the untrained model differs too (weights)
    assert {"/1/loss", "/2/loss", "/0/val_ndcg", "/1/val_ndcg", "/2/val_ndcg"} <= changed.keys(), changed
