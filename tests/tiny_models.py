"""Tiny models of every kind and their inputs, shared by the export, serving, NaN-stop and
epoch-selection suites (the fixture `examples_root` in conftest.py gives them vocabularies
and a generator)."""
import os

import numpy as np
import tensorflow as tf

from models import config, feature_spec, psg
from models.trainer import build_model

NX, NY, T, TP = 12, 9, 4, 6


def model_config(kind):
    return config.load_config(overrides=[f"model.kind=\"{kind}\"", "model.embedding_dim=8", "model.latent_dim=4",
                                         "model.num_heads=2", "model.num_blocks=1", "model.sasrec_negatives=4",
                                         f"data.max_len={T}", f"data.pseudo_len={TP}"])


def features():
    return {feature_spec.HISTORY_X: np.array([[0, 0, 1, 2], [0, 0, 0, 0], [3, 4, 5, 6]], np.int64),
            feature_spec.HISTORY_Y: np.array([[0, 0, 0, 1], [0, 2, 3, 4], [0, 0, 0, 0]], np.int64),
            feature_spec.PSEUDO_X: np.array([[1, 2, 7, 8, 9, 10], [5, 6, 7, 8, 9, 10], [3, 4, 5, 6, 1, 2]], np.int64),
            feature_spec.PSEUDO_Y: np.array([[1, 2, 3, 4, 5, 6], [2, 3, 4, 1, 5, 6], [7, 8, 9, 1, 2, 3]], np.int64)}


def build(kind, examples_root):
    popularity = [np.arange(NX + 1, dtype=np.float64), np.arange(NY + 1, dtype=np.float64)]
    model = build_model((NX, NY), model_config(kind), popularity,
                        psg.load_generator(os.path.join(examples_root, psg.GENERATOR_DIR)))
    model.score_all({k: tf.constant(v) for k, v in features().items()})  # builds the weights
    for v in model.trainable_variables:  # "trained": move away from the initial values
        v.assign(v + tf.random.normal(v.shape, stddev=0.1, seed=3))
    return model, popularity




def export_tiny_model(examples_root, base) -> str:
    """Exports the tiny i2VAE as version 1 under `base`, a TF Serving model base path."""
    from models.export import export_saved_model

    model, popularity = build("i2vae", examples_root)
    export_saved_model(model, examples_root, popularity, model_config("i2vae"), os.path.join(str(base), "1"))
    return str(base)
