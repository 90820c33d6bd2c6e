"""Training under MirroredStrategy over two logical CPU devices (a fresh process, because
logical devices must be set before TensorFlow initialises)."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = textwrap.dedent("""
    import json
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from models import feature_spec
    from models.trainer import build_model, make_strategy
    from models import config

    cfg = config.load_config(overrides=["model.embedding_dim=16", "model.latent_dim=8", "model.num_heads=2",
                                        "model.num_blocks=1", "train.learning_rate=0.01", "data.max_len=5",
                                        "data.pseudo_len=8", "train.distribute=\\"mirrored\\""])
    rng = np.random.default_rng(0)
    n = 64
    hx = rng.integers(0, 31, size=(n, 5)); hy = rng.integers(0, 21, size=(n, 5))
    hx[: n // 4] = 0  # cold-start rows in X
    domain = rng.integers(0, 2, size=n)
    batch = {feature_spec.HISTORY_X: hx, feature_spec.HISTORY_Y: hy,
             feature_spec.PSEUDO_X: rng.integers(1, 31, size=(n, 8)),
             feature_spec.PSEUDO_Y: rng.integers(1, 21, size=(n, 8)), feature_spec.TARGET_DOMAIN: domain,
             feature_spec.TARGET_ITEM: np.where(domain == 0, rng.integers(1, 31, size=n), rng.integers(1, 21, size=n)),
             feature_spec.IS_COLD_START: np.zeros(n, np.int64), feature_spec.IS_LONG_TAILED: np.zeros(n, np.int64)}
    ds = tf.data.Dataset.from_tensor_slices({k: np.asarray(v, np.int64) for k, v in batch.items()}).batch(16)
    strategy = make_strategy("mirrored", ["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model = build_model((30, 20), cfg)
    history = model.fit(ds.repeat(), steps_per_epoch=8, epochs=4, verbose=0).history
    print(json.dumps({"replicas": strategy.num_replicas_in_sync, "loss": history["loss"]}))
""")


@pytest.mark.slow  # a fresh TF process traced for two replicas; `make test-slow`
def test_mirrored_strategy_over_two_cpus_trains_with_decreasing_loss():
    env = dict(os.environ, PYTHONPATH=ROOT, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, cwd=ROOT,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    losses = result["loss"]
    assert all(l == l and abs(l) < 1e6 for l in losses)  # finite
    assert losses[-1] < losses[0], losses


def test_an_unknown_strategy_name_is_refused_naming_the_field_and_the_choices():
    from models.trainer import make_strategy
    with pytest.raises(ValueError, match=r"train.distribute must be one of \('none', 'mirrored', 'multi_worker'\)"
                                          r", found 'mirored'"):
        make_strategy("mirored")
