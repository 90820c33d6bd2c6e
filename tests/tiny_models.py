"""Tiny models of every kind and their inputs, shared by the export, serving, NaN-stop,
epoch-selection and pseudo-sequence suites (the fixture `examples_root` in the repository's
conftest.py writes their vocabularies and generator with `write_examples_root`)."""
import os

import numpy as np
import tensorflow as tf

from models import config, feature_spec, psg
from models.trainer import build_model

NX, NY, T, TP = 12, 9, 4, 6
# item embeddings whose recall order is known (row 0 = padding), for the fold-in and recall tests
EMB_X = np.array([[0, 0], [1, 0], [0.9, 0.1], [0, 1], [0.5, 0.5], [-1, 0]], np.float32)  # row 0 = padding
EMB_Y = np.array([[0, 0], [1, 0], [0, 1], [0.7, 0.7]], np.float32)


def model_config(kind):
    return config.load_config(overrides=[f"model.kind=\"{kind}\"", "model.embedding_dim=8", "model.latent_dim=4",
                                         "model.num_heads=2", "model.num_blocks=1", "model.sasrec_negatives=4",
                                         f"data.max_len={T}", f"data.pseudo_len={TP}"])


def features():
    return {feature_spec.HISTORY_X: np.array([[0, 0, 1, 2], [0, 0, 0, 0], [3, 4, 5, 6]], np.int64),
            feature_spec.HISTORY_Y: np.array([[0, 0, 0, 1], [0, 2, 3, 4], [0, 0, 0, 0]], np.int64),
            feature_spec.PSEUDO_X: np.array([[1, 2, 7, 8, 9, 10], [5, 6, 7, 8, 9, 10], [3, 4, 5, 6, 1, 2]], np.int64),
            feature_spec.PSEUDO_Y: np.array([[1, 2, 3, 4, 5, 6], [2, 3, 4, 1, 5, 6], [7, 8, 9, 1, 2, 3]], np.int64)}


def build(kind):
    popularity = [np.arange(NX + 1, dtype=np.float64), np.arange(NY + 1, dtype=np.float64)]
    model = build_model((NX, NY), model_config(kind), popularity)
    model.score_all({k: tf.constant(v) for k, v in features().items()})  # builds the weights
    # "trained": move away from the initial values (the LightGCN ranker's embeddings are constants)
    for v in model.variables if kind == "lightgcn" else model.trainable_variables:
        v.assign(v + tf.random.normal(v.shape, stddev=0.1, seed=3))
    return model, popularity




def export_tiny_model(examples_root, base) -> str:
    """Exports the tiny i2VAE as version 1 under `base`, a TF Serving model base path."""
    from models.export import export_saved_model

    model, popularity = build("i2vae")
    export_saved_model(model, examples_root, popularity, model_config("i2vae"), os.path.join(str(base), "1"))
    return str(base)


def rows(n, seed=0):
    """Random training rows of the tiny vocabulary sizes (X history empty in a quarter)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        d = int(rng.integers(2))
        hx = [int(v) for v in rng.integers(1, NX + 1, size=rng.integers(1, T + 1))] if i % 4 else []
        out.append({feature_spec.USER_ID: f"u{seed}_{i}", feature_spec.HISTORY_X: hx,
                    feature_spec.HISTORY_Y: [int(v) for v in rng.integers(1, NY + 1, size=rng.integers(1, T + 1))],
                    feature_spec.PSEUDO_X: [int(v) for v in rng.integers(1, NX + 1, size=TP)],
                    feature_spec.PSEUDO_Y: [int(v) for v in rng.integers(1, NY + 1, size=TP)],
                    feature_spec.TARGET_DOMAIN: d, feature_spec.TARGET_ITEM: int(rng.integers(1, (NX, NY)[d] + 1)),
                    feature_spec.IS_COLD_START: int(not hx), feature_spec.IS_LONG_TAILED: 0})
    return out


def dataset(n=64, batch=16):
    """n rows in batches of `batch`, as the trainer's input pipeline yields them."""
    r = rows(n)
    feats = {k: psg.left_pad([x[k] for x in r], T if k in (feature_spec.HISTORY_X, feature_spec.HISTORY_Y) else TP)
             for k in (feature_spec.HISTORY_X, feature_spec.HISTORY_Y, feature_spec.PSEUDO_X, feature_spec.PSEUDO_Y)}
    feats.update({k: np.asarray([x[k] for x in r], np.int64) for k in feature_spec.SCALAR_INT_FEATURES})
    return tf.data.Dataset.from_tensor_slices(feats).batch(batch)


def write_examples_root(root):
    """Vocabularies of NX and NY items and a random generator under `root` (a pathlib.Path)."""
    os.makedirs(root / feature_spec.VOCAB_DIR)
    for name, n in zip(feature_spec.VOCAB_FILES, (NX, NY)):
        (root / feature_spec.VOCAB_DIR / name).write_text("".join(f"item{i}\n" for i in range(n)))
    rng = np.random.default_rng(0)
    psg.save_generator(str(root / psg.GENERATOR_DIR), rng.normal(size=(NX + 1, 4)).astype(np.float32),
                       rng.normal(size=(NY + 1, 4)).astype(np.float32), [], [], np.zeros((0, 4), np.float32))
    return str(root)
