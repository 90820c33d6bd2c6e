"""Two real workers: two local processes with TF_CONFIG under MultiWorkerMirroredStrategy
(`train.distribute="multi_worker"`) train the i2VAE a few steps, and their loss matches a
one-worker run with the same global batch.

Tolerance: each epoch's mean loss within 3% (relative) of the one-worker run. The runs
cannot agree exactly: each replica draws its own posterior noise, and a replica's loss
terms are means over its own half of the batch (so a domain's rows, split unevenly
between the workers, weigh slightly differently). Dropout is off and the reconstruction
is the full softmax, so no sampled negatives add to the difference.

The model is the paper's (`models.config.PAPER_MODEL`): with it the two-worker loss is
within 1% of one worker's at every epoch. The default causal encoder is not held to
this yet: measured with this script on 2026-12-04, its two-worker loss was 4.6% above
one worker's in the first epoch (13.76 against 13.15; one worker's seeds 1, 7 and 42
gave 13.10 to 13.19) and 0.7% above in the next two. Dividing every masked mean by the
whole batch's count (`loss_terms_model.batch_mean`) did not change that; the cause is
not found (docs/deployment.md).
"""
import json
import socket
import subprocess
import sys
import textwrap

import pytest

from tests.fresh_process import ROOT, environment, run_json

GLOBAL_BATCH, STEPS, EPOCHS = 32, 6, 3
TOLERANCE = 0.03

SCRIPT = textwrap.dedent(f"""
    import json, sys
    import numpy as np
    import tensorflow as tf
    from models import config, feature_spec
    from models.trainer import build_model, make_strategy

    distribute = sys.argv[1]
    strategy = make_strategy(distribute)  # first: collective ops are configured before any TF op runs
    cfg = config.load_config(overrides=list(config.PAPER_MODEL) + ["model.embedding_dim=16", "model.latent_dim=8", "model.num_heads=2",
                                        "model.num_blocks=1", "model.dropout=0.0", "train.learning_rate=0.003",
                                        "train.reconstruction=\\"softmax\\"", "data.max_len=5", "data.pseudo_len=8",
                                        f"train.distribute=\\"{{distribute}}\\""])
    rng = np.random.default_rng(0)
    n = {GLOBAL_BATCH * STEPS}
    hx = rng.integers(0, 31, size=(n, 5)); hy = rng.integers(0, 21, size=(n, 5))
    domain = rng.integers(0, 2, size=n)
    rows = {{feature_spec.HISTORY_X: hx, feature_spec.HISTORY_Y: hy,
            feature_spec.PSEUDO_X: rng.integers(1, 31, size=(n, 8)),
            feature_spec.PSEUDO_Y: rng.integers(1, 21, size=(n, 8)), feature_spec.TARGET_DOMAIN: domain,
            feature_spec.TARGET_ITEM: np.where(domain == 0, rng.integers(1, 31, size=n), rng.integers(1, 21, size=n)),
            feature_spec.IS_COLD_START: np.zeros(n, np.int64), feature_spec.IS_LONG_TAILED: np.zeros(n, np.int64)}}
    dataset = tf.data.Dataset.from_tensor_slices({{k: np.asarray(v, np.int64) for k, v in rows.items()}})
    dataset = dataset.batch({GLOBAL_BATCH})  # the global batch; the strategy splits it between the workers
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dataset = dataset.with_options(options)
    with strategy.scope():
        model = build_model((30, 20), cfg)
    history = model.fit(dataset, epochs={EPOCHS}, verbose=0).history
    print(json.dumps({{"replicas": strategy.num_replicas_in_sync, "loss": history["loss"]}}))
""")


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow  # three fresh TF processes; `make test-slow`
def test_two_workers_train_the_i2vae_with_the_loss_of_one_worker():
    one = run_json(SCRIPT.replace("sys.argv[1]", '"none"'), TF_CONFIG="")
    workers = [f"localhost:{port}" for port in _free_ports(2)]
    processes = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        processes.append(subprocess.Popen([sys.executable, "-c", SCRIPT, "multi_worker"],
                                          env=environment(TF_CONFIG=json.dumps(tf_config)),
                                          cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        outputs = [p.communicate(timeout=600) for p in processes]
    finally:
        for p in processes:
            p.kill()
    for p, (_, err) in zip(processes, outputs):
        assert p.returncode == 0, err[-3000:]

    chief, other = (json.loads(out.strip().splitlines()[-1]) for out, _ in outputs)
    assert one["replicas"] == 1 and chief["replicas"] == 2
    assert chief["loss"] == pytest.approx(other["loss"], rel=1e-6)  # both workers report the global figures
    assert chief["loss"] == pytest.approx(one["loss"], rel=TOLERANCE), (chief["loss"], one["loss"])
    assert chief["loss"][-1] < chief["loss"][0]  # and it trains
