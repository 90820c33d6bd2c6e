"""A NaN or infinite loss term stops training with an error naming the term, and the run
fails before anything is exported (`StopOnNonFiniteLoss`, first callback of `train_model`).

Each case makes exactly one term non-finite (a NaN weight only that term reads, or a
patched term) so the test fails if the check is missing, names another term or the
wrong batch, or training carries on. Covered: i2VAE, the SASRec baseline under XLA, a
term outside the total turning inf mid-epoch through the Trainer's `run_fn`, and
MirroredStrategy with the NaN on the second replica only.
"""
import json
import logging
import os
import textwrap
import types

import numpy as np
import pytest
import tensorflow as tf

from models import config, feature_spec, psg
from models.callbacks import NonFiniteLossError, StopOnNonFiniteLoss
from models.i2vae import I2VAE
from models.trainer import build_model, run_fn
from tests.fresh_process import run_json
from tests.tiny_models import NX, NY, dataset, model_config, rows


@pytest.mark.parametrize("kind, jit, poison, term", [
    pytest.param("i2vae", False, lambda m: m.prior_z_x.loc, "kl_z_x",  # the prior of z_x is read only by kl_z_x
                 marks=pytest.mark.slow),  # two i2VAE traces (about 30 s); `make test-slow`
    pytest.param("sasrec", True, lambda m: m.item_emb[1].embeddings, "rec_y",  # Y's SASRec is read only by rec_y
                 marks=pytest.mark.slow),  # XLA compiles the train step; `make test-slow`
])  # XLA on SASRec only: compiling i2VAE with XLA takes minutes; the check is outside the step either way
def test_nan_weight_stops_at_the_first_batch_naming_the_term(kind, jit, poison, term):
    cfg = model_config(kind)
    cfg.train.jit_compile = jit
    model = build_model((NX, NY), cfg, [np.ones(NX + 1), np.ones(NY + 1)])
    ds = dataset()
    model.fit(ds.take(1), epochs=1, verbose=0)  # builds the weights (one finite step)
    variable = poison(model)
    variable.assign(tf.fill(variable.shape, np.nan))
    with pytest.raises(NonFiniteLossError) as error:
        model.fit(ds, epochs=3, verbose=0, callbacks=[StopOnNonFiniteLoss()])
    message = str(error.value)
    # step 2: the count is the model's, so it includes the first fit's step (as after a resume)
    assert message.startswith(f"training stopped at epoch 1, batch 1 (step 2): loss term '{term}' became NaN;")
    assert f"weighted_{term} NaN" in message or kind == "sasrec"
    other = "rec_x" if term != "rec_x" else "rec_y"
    assert f" {other}=" in message  # the untouched terms are reported finite
    assert int(model.optimizer.iterations.numpy()) == 2  # stopped, not carried on


@pytest.mark.slow  # a Trainer run (run_fn) of two epochs; `make test-slow`
def test_run_fn_fails_and_exports_nothing_when_a_term_turns_inf_mid_training(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO)
    """Through the Trainer's run_fn: `informative_y` (patched after the total, so only the
    term itself is inf) turns +inf at step 6, i.e. epoch 2, batch 2 of 4."""
    root = tmp_path / "examples"
    os.makedirs(root / feature_spec.VOCAB_DIR)
    for name, n in zip(feature_spec.VOCAB_FILES, (NX, NY)):
        feature_spec.write_lines(str(root / feature_spec.VOCAB_DIR / name), [f"item{i}" for i in range(n)])
    rng = np.random.default_rng(0)
    psg.save_generator(str(root / psg.GENERATOR_DIR), rng.normal(size=(NX + 1, 4)).astype(np.float32),
                       rng.normal(size=(NY + 1, 4)).astype(np.float32), [], [], np.zeros((0, 4), np.float32))
    for split, n in (("train", 64), ("eval", 24)):
        os.makedirs(root / feature_spec.SPLIT_DIR.format(split))
        path = root / feature_spec.SPLIT_DIR.format(split) / f"data{feature_spec.RECORD_SUFFIX}"
        with tf.io.TFRecordWriter(str(path), "GZIP") as w:
            for r in rows(n, seed=len(split)):
                w.write(feature_spec.to_example(r))
    original = I2VAE.losses_and_terms

    def patched(self, features, training=True):
        total, terms = original(self, features, training)
        if training:
            terms["informative_y"] += tf.where(self._train_counter >= 5, np.inf, 0.0)  # steps done
        return total, terms

    monkeypatch.setattr(I2VAE, "losses_and_terms", patched)
    cfg = model_config("i2vae")
    cfg.train.epochs, cfg.train.batch_size, cfg.eval.num_negatives = 5, 16, 5
    fn_args = types.SimpleNamespace(
        custom_config={"config": json.dumps(config.to_dict(cfg))}, hyperparameters=None, base_model=None,
        train_files=[feature_spec.split_pattern(str(root), "train")],
        eval_files=[feature_spec.split_pattern(str(root), "eval")],
        model_run_dir=str(tmp_path / "model_run"), serving_model_dir=str(tmp_path / "model" / "Format-Serving"))
    with pytest.raises(NonFiniteLossError, match=r"^training stopped at epoch 2, batch 2 \(step 6\): "
                                                 r"loss term 'informative_y' became \+inf; other non-finite: none;"):
        run_fn(fn_args)
    out = caplog.text
    assert "[train] epoch 1:" in out and "[train] epoch 2:" not in out  # epoch 1 ran, epoch 2 did not finish
    assert "[train] training stopped at epoch 2, batch 2" in out
    assert not os.path.exists(fn_args.serving_model_dir)
    assert not os.path.exists(os.path.join(fn_args.model_run_dir, "training_history.json"))


MIRRORED = textwrap.dedent("""
    import json
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from tests.tiny_models import NX, NY, dataset, model_config
    from models.i2vae import I2VAE
    from models.callbacks import NonFiniteLossError, StopOnNonFiniteLoss
    from models.trainer import build_model, make_strategy

    original = I2VAE.losses_and_terms

    def patched(self, features, training=True):  # kl_zt_x is NaN on replica 1 only, from step 3
        total, terms = original(self, features, training)
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        nan = tf.where(tf.logical_and(tf.equal(replica, 1), self._train_counter >= 2), float("nan"), 0.0)
        terms["kl_zt_x"] += nan
        return total + nan, terms

    I2VAE.losses_and_terms = patched
    cfg = model_config("i2vae")
    strategy = make_strategy("mirrored", ["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model = build_model((NX, NY), cfg)
    try:
        model.fit(dataset(64, 16), epochs=2, verbose=0, callbacks=[StopOnNonFiniteLoss()])
        print(json.dumps({"message": None}))
    except NonFiniteLossError as e:
        print(json.dumps({"message": str(e), "replicas": strategy.num_replicas_in_sync}))
""")


@pytest.mark.slow  # a fresh TF process traced for two replicas; `make test-slow`
def test_nan_on_one_replica_of_mirrored_strategy_is_caught_at_its_batch():
    """Keras sums the logs over replicas, so replica 1's NaN shows at its own batch (had only
    the first replica's logs been read, the NaN would show a batch later, in every term)."""
    result = run_json(MIRRORED)
    assert result["replicas"] == 2
    assert result["message"].startswith("training stopped at epoch 1, batch 3 (step 3): loss term 'kl_zt_x' "
                                         "became NaN; other non-finite: loss NaN;"), result
