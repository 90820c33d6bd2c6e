"""The Trainer's training loop (models/trainer.py).

Per-domain epoch selection (`train.epoch_selection="per_domain"`): each domain keeps the
weights of its own best validation epoch, training stops once neither domain improves, and
the combined model scores (and exports) each domain with its own weights. Training under
MirroredStrategy over two logical CPU devices (a fresh process, because logical devices
must be set before TensorFlow initialises). The pipeline parameters' overrides."""
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from models import config, evaluation, feature_spec, metrics, trainer
from models.export import export_saved_model
from models.trainer import (
    RankingValidation,
    apply_overrides,
    make_strategy,
    per_domain_model,
    read_canonical,
    train_model,
)
from tests.epoch_runs import TP, T, write_examples
from tests.fresh_process import run_json
from tests.tiny_models import build, features, model_config


class Weights:
    """A stand-in model whose weights are the number of the epoch that set them."""

    def __init__(self):
        self.epoch, self.stop_training = 0, False

    def get_weights(self):
        return [self.epoch]


def scripted(selection, patience, ndcg_by_epoch, early_stopping_start=0):
    """Runs RankingValidation over scripted validation NDCG@10 values ((x, y) per epoch)."""
    validation = RankingValidation([], (3, 3), config.DataConfig(), config.EvalConfig(), patience, selection=selection,
                                   early_stopping_start=early_stopping_start)
    model = Weights()
    validation.model = model

    def validate(step, loss):
        x, y = ndcg_by_epoch[step - 1]
        result = {"x": {"all": {"NDCG@10": x}}, "y": {"all": {"NDCG@10": y}}}
        validation.history.append({"epoch": step, "loss": loss})
        return result, (x + y) / 2

    validation._validate = validate
    for epoch in range(len(ndcg_by_epoch)):
        model.epoch = epoch + 1
        validation.on_epoch_end(epoch, {"loss": 1.0})
        if model.stop_training:
            break
    return validation, model.epoch


def test_each_domain_keeps_its_best_epoch_and_training_stops_when_neither_improves():
    # X peaks at epoch 1, Y keeps rising to epoch 4; the mean peaks at epoch 2
    curve = [(0.30, 0.10), (0.29, 0.20), (0.20, 0.25), (0.10, 0.30), (0.10, 0.29), (0.10, 0.28), (0.10, 0.27)]
    per_domain, stopped = scripted("per_domain", 2, curve)
    assert per_domain.best_epoch_by_domain == {"x": 1, "y": 4}
    assert per_domain.best_weights_by_domain == {"x": [1], "y": [4]} and per_domain.best_weights == [1]
    assert stopped == 6 and per_domain.best == pytest.approx(0.30) and per_domain.selected() == "X 1, Y 4"
    # a domain with no validation rows (NaN) never wins an epoch; the other one decides
    no_y, _ = scripted("per_domain", 2, [(x, float("nan")) for x, _ in curve])
    assert no_y.best_epoch_by_domain == {"x": 1, "y": 0} and no_y.best == pytest.approx(0.30)
    assert no_y.best_weights == [1] and no_y.best_weights_by_domain["y"] is None
    mean, stopped = scripted("mean", 2, curve)
    assert mean.best_epoch == 2 and mean.best_weights == [2] and stopped == 4 and mean.selected() == "2"


def test_patience_counts_from_early_stopping_start_through_an_early_validation_dip():
    # the shape seen on cloth_sport: a spike at epoch 2, a dip, then a climb past the spike
    curve = [(0.3, 0.3), (0.6, 0.6), (0.3, 0.3), (0.2, 0.2), (0.3, 0.3), (0.5, 0.5), (0.7, 0.7), (0.8, 0.8),
             (0.7, 0.7), (0.7, 0.7), (0.7, 0.7), (0.7, 0.7)]
    unguarded, stopped = scripted("mean", 3, curve)
    assert (unguarded.best_epoch, stopped) == (2, 5)
    guarded, stopped = scripted("mean", 3, curve, early_stopping_start=4)
    assert (guarded.best_epoch, guarded.best_weights, stopped) == (8, [8], 11)
    # it only delays a stop: past it, patience ends the run as before, for either selection
    flat = [(0.5, 0.5)] + [(0.1, 0.1)] * 11
    assert scripted("mean", 3, flat, early_stopping_start=4)[1] == 7
    assert scripted("per_domain", 3, flat, early_stopping_start=4)[1] == 7


@pytest.mark.slow  # two i2VAE trainings and an export (about 20 s); `make test-slow`
def test_combined_model_scores_and_exports_each_domain_with_its_own_weights(examples_root, tmp_path):
    model_x, popularity = build("i2vae")
    model_y, _ = build("i2vae")
    for v in model_y.trainable_variables:  # other weights than model_x's
        v.assign(v + tf.random.normal(v.shape, stddev=0.1, seed=4))
    inputs = {k: tf.constant(v) for k, v in features().items()}
    expected = model_x.score_all(inputs)[0].numpy(), model_y.score_all(inputs)[1].numpy()
    assert not np.allclose(model_x.score_all(inputs)[1], expected[1])  # the test can tell them apart

    validation = RankingValidation([], (3, 3), config.DataConfig(), config.EvalConfig(), 3, selection="per_domain")
    validation.best_weights = model_x.get_weights()
    validation.best_weights_by_domain = {"x": validation.best_weights, "y": model_y.get_weights()}
    fresh = lambda: build("i2vae")[0]  # noqa: E731 - weights are overwritten
    combined = per_domain_model(model_x, validation, fresh, features())
    # the class is read through the module: an in-process pipeline run (the e2e suite) has TFX
    # reload models.trainer to import run_fn, which makes a new class object
    assert isinstance(combined, trainer.PerDomainSelection)
    for got, want in zip(combined.score_all(inputs), expected):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-6, atol=1e-6)
    export_saved_model(combined, examples_root, popularity, model_config("i2vae"), str(tmp_path / "saved"))
    out = tf.saved_model.load(str(tmp_path / "saved")).signatures["score_items"](**inputs)
    np.testing.assert_allclose(out["scores_x"].numpy(), expected[0], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out["scores_y"].numpy(), expected[1], rtol=1e-6, atol=1e-6)
    # the same epoch for both domains: the one model, nothing doubled
    validation.best_weights_by_domain["y"] = validation.best_weights
    assert per_domain_model(model_x, validation, fresh, features()) is model_x


@pytest.mark.slow  # six epochs of training; `make test-slow`
def test_training_with_per_domain_selection_scores_each_domain_at_its_best_epoch(tmp_path):
    """End to end on tiny TFRecords: the returned model's validation NDCG@10 in each domain is
    that domain's best over the epochs (so the second copy got the right weights in the right
    order, though it was built by a call rather than by `fit`)."""
    root = write_examples(str(tmp_path / "examples"))
    cfg = config.load_config(overrides=[
        "model.embedding_dim=8", "model.latent_dim=4", "model.num_heads=2", "model.num_blocks=1",
        f"data.max_len={T}", f"data.pseudo_len={TP}", "train.epochs=6", "train.batch_size=32",
        "train.learning_rate=0.02", "eval.num_negatives=20", 'train.epoch_selection="per_domain"',
        "train.early_stopping_patience=6", "train.seed=1",
        "model.dropout=0.2"])  # at this seed X and Y peak at different epochs (a change of the random draws can merge them)
    # (the default decoder-weight grid is left on: per-domain selection skips it)
    model, history, _ = train_model([feature_spec.split_pattern(root, "train")],
                                    [feature_spec.split_pattern(root, "eval")], root, cfg,
                                    str(tmp_path / "logs"))
    assert "decoder_weight" not in history
    epochs = history["history"][1:]
    for d in metrics.DOMAINS:
        values = [e["metrics"][d]["all"]["NDCG@10"] for e in epochs]
        assert history["best_epochs"][d] == 1 + int(np.argmax(values))
    rows = read_canonical([feature_spec.split_pattern(root, "eval")])[1]
    negatives = metrics.candidate_matrix(rows, (40, 30), cfg.eval.num_negatives, cfg.eval.seed)
    got = evaluation.evaluate_rows(evaluation.keras_scorer(model), rows, negatives, T, TP, [10])[cfg.eval.select_on]
    for d in metrics.DOMAINS:
        best = history["history"][history["best_epochs"][d]]["metrics"][d]["all"]["NDCG@10"]
        assert got[d]["all"]["NDCG@10"] == pytest.approx(best, abs=1e-6)
    assert history["best_epochs"]["x"] != history["best_epochs"]["y"], "this run should need two weight sets"
    assert isinstance(model, trainer.PerDomainSelection)


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
    result = run_json(SCRIPT)
    assert result["replicas"] == 2
    losses = result["loss"]
    assert all(l == l and abs(l) < 1e6 for l in losses)  # finite
    assert losses[-1] < losses[0], losses


def test_an_unknown_strategy_name_is_refused_naming_the_field_and_the_choices():
    with pytest.raises(ValueError, match=r"train.distribute must be one of \('none', 'mirrored', 'multi_worker'\)"
                                          r", found 'mirored'"):
        make_strategy("mirored")


def test_training_overrides_apply_over_the_config():
    cfg = apply_overrides(config.load_config(), {"train.epochs": 3, "train.lambda_t": 0.0, "train.lambda_a": 0.1})
    assert (cfg.train.epochs, cfg.train.lambda_t, cfg.train.lambda_a) == (3, 0.0, 0.1)
    assert apply_overrides(cfg, None) is cfg


@pytest.mark.slow  # a Trainer run of its own, about 25 s; `make test-slow`
def test_a_train_split_above_the_threshold_streams_and_trains_on_every_row(tmp_path, monkeypatch):
    """`train.stream_above_mb`: above it the split is never read into memory (read_canonical is
    not called for it); popularity and the row count come from one streaming pass and equal the
    in-memory read's; the model trains; the in-memory-only options are refused by name."""
    root = write_examples(str(tmp_path / "examples"))
    train_files = [feature_spec.split_pattern(root, "train")]
    base = ["model.embedding_dim=8", "model.latent_dim=4", "model.num_heads=2", "model.num_blocks=1",
            f"data.max_len={T}", f"data.pseudo_len={TP}", "train.epochs=2", "train.batch_size=32",
            "eval.num_negatives=20", "train.stream_above_mb=0.000001", "train.shuffle_buffer=64"]
    cfg = config.load_config(overrides=base)
    assert trainer.streams(train_files, cfg)
    assert not trainer.streams(train_files, config.load_config(overrides=base[:-2] + ["train.stream_above_mb=0"]))
    in_memory_rows = read_canonical(train_files)[1]
    read = trainer.read_canonical
    monkeypatch.setattr(trainer, "read_canonical",
                        lambda files: (_ for _ in ()).throw(AssertionError("read into memory"))
                        if files == train_files else read(files))
    model, history, popularity = train_model(train_files, [feature_spec.split_pattern(root, "eval")], root, cfg,
                                             str(tmp_path / "logs"))
    expected = evaluation.item_popularity(in_memory_rows, (40, 30))
    for got, want in zip(popularity, expected):
        np.testing.assert_array_equal(got, want)
    assert history["epochs_run"] == 2 and np.isfinite(history["history"][-1]["loss"])
    with pytest.raises(config.ConfigError, match="train.prefix_targets and train.cold_start_rows"):
        trainer.streams(train_files, config.load_config(overrides=base + ["train.prefix_targets=2"]))


def test_decoder_weight_calibration_keeps_the_best_validation_weight_and_serving_scores_with_it(examples_root,
                                                                                                tmp_path):
    model, popularity = build("i2vae")  # the causal i2VAE with the residual state
    inputs = {k: tf.constant(v) for k, v in features().items()}
    unweighted = model.score_all(inputs)
    by_weight = {1.0: 0.020, 0.5: 0.025, 0.25: 0.025}  # scripted validation scores; 0.5 and 0.25 tie

    class Validation:
        eval_cfg = config.EvalConfig()

        def score(self):
            return None, by_weight[float(model.decoder_weight.numpy())]

    chosen = trainer.calibrate(model.decoder_weight, Validation(), [1.0, 0.5, 0.25], "decoder weight")
    assert chosen == {"selected": 0.5, "val_ndcg": {"1.0": 0.020, "0.5": 0.025, "0.25": 0.025}}  # a tie: the earlier
    assert model.decoder_weight.numpy() == 0.5
    expected = model.score_all(inputs)
    assert not np.allclose(expected[0].numpy(), unweighted[0].numpy())
    export_saved_model(model, examples_root, popularity, model_config("i2vae"), str(tmp_path / "saved"))
    out = tf.saved_model.load(str(tmp_path / "saved")).signatures["score_items"](**inputs)
    np.testing.assert_allclose(out["scores_x"].numpy(), expected[0].numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out["scores_y"].numpy(), expected[1].numpy(), rtol=1e-6, atol=1e-6)


def test_graph_blend_calibration_keeps_the_best_weight_and_serving_scores_with_the_blend(examples_root, tmp_path):
    """The generator graph's weight is chosen on validation; the export's scores are the
    blended ones; weight 0 chosen: the model scores alone, as before it was attached."""
    model, popularity = build("i2vae")
    inputs = {k: tf.constant(v) for k, v in features().items()}
    alone = [s.numpy() for s in model.score_all(inputs)]
    by_weight = {0.0: 0.020, 0.2: 0.031, 0.5: 0.025}  # scripted validation scores

    class Validation:
        eval_cfg = config.EvalConfig()

        def set_model(self, m):
            pass

        def score(self):
            return None, by_weight[round(float(model.graph_weight.numpy()), 6)]

    chosen = trainer.calibrate_graph_blend(model, Validation(), [0.0, 0.2, 0.5], examples_root)
    assert chosen["selected"] == 0.2 and model.graph_weight.numpy() == pytest.approx(0.2)
    blended = [s.numpy() for s in model.score_all(inputs)]
    assert not np.allclose(np.argsort(blended[0][:, 1:]), np.argsort(alone[0][:, 1:]))
    export_saved_model(model, examples_root, popularity, model_config("i2vae"), str(tmp_path / "saved"))
    out = tf.saved_model.load(str(tmp_path / "saved")).signatures["score_items"](**inputs)
    np.testing.assert_allclose(out["scores_x"].numpy(), blended[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["scores_y"].numpy(), blended[1], rtol=1e-5, atol=1e-5)
    by_weight = {0.0: 0.030, 0.2: 0.025}
    assert trainer.calibrate_graph_blend(model, Validation(), [0.0, 0.2], examples_root)["selected"] == 0.0
    assert model.graph_blend is None and model.graph_weight.numpy() == 0.0
    np.testing.assert_allclose(model.score_all(inputs)[0].numpy(), alone[0], rtol=1e-6)


def test_an_empty_or_negative_decoder_weight_grid_is_refused():
    with pytest.raises(config.ConfigError, match="train.decoder_weight_grid"):
        config.load_config(overrides=["train.decoder_weight_grid=[]"])
    with pytest.raises(config.ConfigError, match="train.decoder_weight_grid"):
        config.load_config(overrides=["train.decoder_weight_grid=[1.0, -0.5]"])
    with pytest.raises(config.ConfigError, match="train.graph_blend_grid"):
        config.load_config(overrides=["train.graph_blend_grid=[0.0, -0.5]"])


def test_the_lightgcn_recommender_trains_on_every_train_edge_and_keeps_its_best_validation_epoch(tmp_path):
    """`model.kind="lightgcn"` trains its own LightGCN (not the generator's) at `lightgcn.*`
    with `train.seed`, validated on the criterion every model shares; the returned ranker
    scores the best epoch's embeddings, and another seed trains another model."""
    root = write_examples(str(tmp_path / "examples"))
    files = [feature_spec.split_pattern(root, "train")], [feature_spec.split_pattern(root, "eval")]
    base = [f"data.max_len={T}", f"data.pseudo_len={TP}", 'model.kind="lightgcn"', "eval.num_negatives=20",
            "lightgcn.embedding_dim=8", "lightgcn.max_epochs=6", "lightgcn.eval_every=2", "lightgcn.patience=5",
            "lightgcn.learning_rate=0.01", "lightgcn.batch_size=256"]
    ranker, history, _ = train_model(*files, root, config.load_config(overrides=base), str(tmp_path / "logs"))
    scores = [entry["val_ndcg"] for entry in history["history"]]
    assert [entry["epoch"] for entry in history["history"]] == [2, 4, 6] and history["epochs_run"] == 6
    assert history["best_val_ndcg"] == max(scores) > 0
    assert history["best_epoch"] == 2 * (1 + scores.index(max(scores)))
    validation = RankingValidation(read_canonical(files[1])[1], (40, 30), config.DataConfig(max_len=T, pseudo_len=TP),
                                   config.EvalConfig(num_negatives=20), patience=1)
    validation.set_model(ranker)
    assert validation.score()[1] == pytest.approx(history["best_val_ndcg"])
    other, _, _ = train_model(*files, root, config.load_config(overrides=base + ["train.seed=7"]),
                              str(tmp_path / "logs7"))
    assert not np.allclose(other.item_emb_x.numpy(), ranker.item_emb_x.numpy())
