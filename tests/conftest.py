"""Shared fixture: a tiny examples root (vocabularies + generator); the tiny models are in tiny_models.py."""
import os

import numpy as np
import pytest
from tiny_models import NX, NY

from models import feature_spec, psg


@pytest.fixture(scope="session")
def examples_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("examples")
    os.makedirs(root / feature_spec.VOCAB_DIR)
    for name, n in zip(feature_spec.VOCAB_FILES, (NX, NY)):
        (root / feature_spec.VOCAB_DIR / name).write_text("".join(f"item{i}\n" for i in range(n)))
    rng = np.random.default_rng(0)
    psg.save_generator(str(root / psg.GENERATOR_DIR), rng.normal(size=(NX + 1, 4)).astype(np.float32),
                       rng.normal(size=(NY + 1, 4)).astype(np.float32), [], [], np.zeros((0, 4), np.float32))
    return str(root)
