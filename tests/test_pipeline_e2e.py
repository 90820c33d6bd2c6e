"""End to end: the real local TFX pipeline (LocalDagRunner, SQLite MLMD, multi-processing
Beam) on a tiny synthetic set. Checks every component ran, the TFRecords, the pushed
SavedModel in TF Serving layout and its signature, and the metrics."""
import glob
import json
import os
import subprocess
import sys
import textwrap

import pytest
from ml_metadata.metadata_store import metadata_store
from tfx import v1 as tfx

from components.ingest import synthetic
from models import config, data, feature_spec, psg
from pipeline.local_runner import newest_output_dir, run_local

COMPONENTS = {"InteractionExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "AnomaliesGate",
              "served_model_resolver", "PseudoSequenceGen", "TrainingOverrides", "Trainer", "ServingCheck",
              "RankingEvaluator", "Pusher"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("e2e")
    interactions = synthetic.write_csv(
        str(out / "interactions.csv"),
        synthetic.SyntheticConfig(num_users=1500, num_items_x=60, num_items_y=50, seed=5))
    cfg = config.load_config(overrides=SMALL)
    cfg.data_path = interactions
    paths = run_local(cfg, str(out / "run"))
    return cfg, paths


SMALL = ["train.epochs=5", "train.learning_rate=0.002", "train.batch_size=64", "model.embedding_dim=16", "model.latent_dim=8", "model.num_heads=2",
         "model.num_blocks=1", "lightgcn.max_epochs=4", "lightgcn.eval_every=2", "data.max_len=6", "data.pseudo_len=10"]


@pytest.fixture(scope="module", params=["sasrec", "lightgcn"])
def baseline_run(request, run):
    """The same pipeline (same run directory and MLMD) with a baseline chosen by config."""
    cfg, paths = run
    other = config.load_config(overrides=SMALL + [f"model.kind=\"{request.param}\"", "eval.bless_against=\"none\""])
    other.data_path = cfg.data_path
    return other, run_local(other, paths["out"])


def test_every_component_executed(run):
    cfg, paths = run
    store = metadata_store.MetadataStore(tfx.orchestration.metadata.sqlite_metadata_connection_config(paths["metadata"]))
    ran = set()
    for context in store.get_contexts():
        prefix = cfg.pipeline_name + "."
        if not context.name.startswith(prefix):
            continue  # pipeline and run contexts
        executions = store.get_executions_by_context(context.id)
        if any(e.last_known_state in (e.COMPLETE, e.CACHED) for e in executions):
            ran.add(context.name[len(prefix):])
    assert ran == COMPONENTS


def test_tfrecords_parse_with_expected_features(run):
    cfg, paths = run
    examples = glob.glob(os.path.join(paths["pipeline_root"], "PseudoSequenceGen", "augmented_examples", "*"))
    assert examples
    for split in ("train", "eval", "test"):
        rows = data.read_split(examples[0], split)
        assert rows, split
        assert set(rows[0]) == set(feature_spec.ALL_FEATURES)
        assert all(len(r[feature_spec.PSEUDO_X]) == cfg.data.pseudo_len for r in rows)
    batch = next(iter(data.make_dataset([os.path.join(examples[0], "Split-train", "*")], 8, cfg.data.max_len,
                                        cfg.data.pseudo_len)))
    assert batch[feature_spec.HISTORY_X].shape[1] == cfg.data.max_len
    assert batch[feature_spec.PSEUDO_Y].shape[1] == cfg.data.pseudo_len


def test_pushed_savedmodel_in_serving_layout_answers_signature(run):
    _, paths = run
    pushed = paths["pushed_model"]
    assert pushed and os.path.basename(pushed).isdigit()
    assert os.path.exists(os.path.join(pushed, "saved_model.pb"))
    vocab_x = feature_spec.read_vocab(glob.glob(os.path.join(paths["pipeline_root"], "InteractionExampleGen",
                                                             "examples", "*",
                                                             feature_spec.VOCAB_DIR, "vocab_x.txt"))[0])
    # a fresh process that imports no project code
    code = textwrap.dedent(f"""
        import json, tensorflow as tf
        m = tf.saved_model.load({pushed!r})
        f = m.signatures["serving_default"]
        out = f(history_x=tf.constant([[{vocab_x[0]!r}, "no-such-item"], ["", ""]]),
                history_y=tf.constant([[""], [""]]))
        print(json.dumps({{k: v.numpy().tolist() for k, v in out.items()}}, default=lambda b: b.decode()))
    """)
    env = dict(os.environ, PYTHONPATH="")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", env=env,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["unknown_ids_x"] == [1, 0]
    assert len(out["top_ids_x"][0]) == 10 and vocab_x[0] not in out["top_ids_x"][0]  # seen item not recommended
    assert all(s == sorted(s, reverse=True) for s in out["top_scores_y"])


def test_training_beats_untrained_model_and_popularity(run):
    """Validation NDCG@10 of the selected epoch beats the untrained model (epoch 0) and popularity."""
    _, paths = run
    history = json.load(open(glob.glob(os.path.join(paths["pipeline_root"], "Trainer", "model_run", "*",
                                                    "training_history.json"))[0]))
    assert history["history"][0]["epoch"] == 0 and history["epochs_run"] >= 1
    assert history["best_val_ndcg"] > 1.5 * history["untrained_val_ndcg"], history["best_val_ndcg"]
    report = json.load(open(os.path.join(os.path.dirname(paths["metrics"]), "metrics.json")))
    val = report["splits"]["eval"]

    def mean_ndcg(model):
        return sum(val[model]["sampled"][d]["all"]["NDCG@10"] for d in ("x", "y")) / 2

    assert mean_ndcg("i2vae") > 1.2 * mean_ndcg("popularity")
    assert paths["pushed_model"], "blessed against popularity, so pushed"


DROPPED_ITEMS = {"x0", "x1", "y0"}  # gone from the catalogue on day 2


def write_day_two(day_one_csv: str, path: str, new_users: int = 150) -> str:
    """Day 2 of the synthetic log: day 1 without the rows of DROPPED_ITEMS, plus `new_users`
    users who copy a day-1 user's sequence with some items replaced by new ones."""
    with open(day_one_csv) as f:
        header, *rows = [line.rstrip("\n").split(",") for line in f]
    kept = [r for r in rows if r[1] not in DROPPED_ITEMS]
    by_user = {}
    for r in kept:
        by_user.setdefault(r[0], []).append(r)
    extra = []
    for n, (user, events) in enumerate(list(by_user.items())[:new_users]):
        for j, (_, item, domain, t) in enumerate(events):
            new_item = f"{domain}new{n % 4}" if j % 2 == 0 else item  # each new item many times
            extra.append([f"{user}_day2", new_item, domain, t])
    with open(path, "w") as f:
        f.write("\n".join(",".join(r) for r in [header] + kept + extra) + "\n")
    return path


def _newest_blessing(paths) -> int:
    """The `blessed` property of the newest ModelBlessing in ML Metadata."""
    store = metadata_store.MetadataStore(tfx.orchestration.metadata.sqlite_metadata_connection_config(paths["metadata"]))
    blessing = max(store.get_artifacts_by_type("ModelBlessing"), key=lambda a: a.id)
    return blessing.custom_properties["blessed"].int_value


def _graph_users(pipeline_root: str) -> set:
    """The users of the newest generator's LightGCN graph (train rows' users)."""
    generator = psg.load_generator(os.path.join(newest_output_dir(pipeline_root, "PseudoSequenceGen", "augmented_examples"),
                                                psg.GENERATOR_DIR))
    return {str(u) for u in generator["user_ids"]}


@pytest.fixture(scope="module")
def day_two(run):
    """Day 2 into the same run directory (same ML Metadata): warm start, compare, push."""
    cfg, paths = run
    root = paths["pipeline_root"]
    day1 = {"vocabs": feature_spec.read_vocabs(newest_output_dir(root, "InteractionExampleGen", "examples")),
            "model": newest_output_dir(root, "Trainer", "model"), "pushed": paths["pushed_model"],
            "graph_users": _graph_users(root)}
    two = config.load_config(overrides=SMALL)
    two.data_path = write_day_two(cfg.data_path, os.path.join(paths["out"], "day2.csv"))
    return day1, two, run_local(two, paths["out"])


@pytest.mark.slow  # one more pipeline run; `make test-slow`
def test_day_two_warm_starts_from_the_pushed_model_by_raw_id_and_is_compared_and_pushed(day_two):
    day1, cfg, paths = day_two
    root = paths["pipeline_root"]
    old, new = day1["vocabs"], feature_spec.read_vocabs(newest_output_dir(root, "InteractionExampleGen", "examples"))
    counts = {"carried": sum(len(set(o) & set(n)) for o, n in zip(old, new)),
              "added": sum(len(set(n) - set(o)) for o, n in zip(old, new)),
              "dropped": sum(len(set(o) - set(n)) for o, n in zip(old, new))}
    assert (counts["dropped"], counts["added"]) == (len(DROPPED_ITEMS), 8)  # xnew0..3 and ynew0..3 are new
    history = json.load(open(paths["training_history"]))
    assert history["warm_start"] == {"from": day1["model"], **counts}
    generator = json.load(open(os.path.join(newest_output_dir(root, "PseudoSequenceGen", "augmented_examples"),
                                            "pseudo_sequence_generator", "training.json")))
    assert generator["warm_start"]["from"] == day1["model"]
    assert generator["warm_start"]["items"] == counts
    old_users, new_users = day1["graph_users"], _graph_users(root)
    assert generator["warm_start"]["users"] == {"carried": len(old_users & new_users),
                                                "added": len(new_users - old_users),
                                                "dropped": len(old_users - new_users)}
    assert new_users - old_users and all(u.endswith("_day2") for u in new_users - old_users)
    report = json.load(open(os.path.join(os.path.dirname(paths["metrics"]), "metrics.json")))
    assert set(report["splits"]["eval"]) == {"i2vae", "popularity", "served"}
    assert _newest_blessing(paths) == 1
    assert paths["pushed_model"] != day1["pushed"], "blessed against the served model, so pushed"


@pytest.mark.slow  # one more pipeline run; `make test-slow`
def test_a_clearly_worse_run_is_not_blessed_and_the_served_model_stays(day_two):
    _, cfg, paths = day_two
    served = sorted(os.listdir(paths["serving_model_dir"]))
    worse = config.load_config(overrides=SMALL + ["train.warm_start=false", "train.epochs=1"])
    worse.data_path = cfg.data_path
    after = run_local(worse, paths["out"])
    report = json.load(open(os.path.join(os.path.dirname(after["metrics"]), "metrics.json")))
    assert "served" in report["splits"]["eval"]
    assert _newest_blessing(paths) == 0
    assert sorted(os.listdir(paths["serving_model_dir"])) == served


@pytest.mark.slow  # two more pipeline runs; `make test-slow`
def test_baseline_runs_in_the_same_pipeline(baseline_run):
    cfg, paths = baseline_run
    kind = cfg.model.kind
    report = json.load(open(os.path.join(os.path.dirname(paths["metrics"]), "metrics.json")))
    assert set(report["splits"]["test"]) == {kind, "popularity"}
    assert 0 < report["splits"]["test"][kind]["sampled"]["x"]["all"]["NDCG@10"] <= 1
    assert paths["pushed_model"] and os.path.basename(os.path.dirname(paths["pushed_model"])) == kind
    generator = json.load(open(os.path.join(newest_output_dir(paths["pipeline_root"], "PseudoSequenceGen",
                                                              "augmented_examples"),
                                            "pseudo_sequence_generator", "training.json")))
    assert generator == {"pseudo_source": "none"}  # it reads histories only: no generator was trained
    if kind == "sasrec":  # no X history: SASRec falls back to popularity for X cold-start rows
        cold = report["splits"]["test"]
        assert cold["sasrec"]["full"]["x"]["cold_start"]["HR@10"] == cold["popularity"]["full"]["x"]["cold_start"][
            "HR@10"]


def test_metrics_written(run):
    _, paths = run
    assert paths["metrics"] and os.path.exists(paths["metrics"])
    report = json.load(open(os.path.join(os.path.dirname(paths["metrics"]), "metrics.json")))
    for split in ("eval", "test"):
        for model in ("i2vae", "popularity"):
            for protocol in ("sampled", "full"):
                value = report["splits"][split][model][protocol]["x"]["all"]["NDCG@10"]
                assert 0 <= value <= 1
    assert os.path.exists(os.path.join(paths["out"], "config.json"))
    assert glob.glob(os.path.join(paths["pipeline_root"], "Trainer", "model_run", "*", "**", "events.out.tfevents*"),
                     recursive=True)


def _tags(pattern):
    from tensorboard.backend.event_processing import event_accumulator

    tags = set()
    for path in glob.glob(pattern, recursive=True):
        acc = event_accumulator.EventAccumulator(path, size_guidance={"tensors": 0, "histograms": 0, "scalars": 0})
        acc.Reload()
        for kind in ("scalars", "tensors", "histograms"):
            tags |= set(acc.Tags().get(kind, []))
    return tags


def test_tensorboard_tells_the_training_story(run):
    """Every loss term and its weighted contribution, the noise weight, validation per domain
    and group, posterior histograms, and LightGCN's loss and recall."""
    from models.callbacks import PosteriorHistograms
    from models.i2vae import I2VAE

    _, paths = run
    model_run = os.path.join(paths["pipeline_root"], "Trainer", "model_run", "*")
    train = _tags(os.path.join(model_run, "train", "**", "events.out.tfevents*"))
    for name in I2VAE.LOSS_TERMS:
        assert f"epoch_{name}" in train and f"epoch_weighted_{name}" in train, name
    assert {"epoch_loss", "epoch_noise_weight_x", "epoch_noise_weight_y", "epoch_kl_beta"} <= train
    validation = _tags(os.path.join(model_run, "validation", "**", "events.out.tfevents*"))
    for d in ("x", "y"):
        for g in ("all", "cold_start", "long_tailed"):
            assert {f"val/HR@10/{d}/{g}", f"val/NDCG@10/{d}/{g}"} <= validation
    posterior = _tags(os.path.join(model_run, "posterior", "**", "events.out.tfevents*"))
    for name in PosteriorHistograms.POSTERIORS:
        assert {f"posterior/{name}/mean", f"posterior/{name}/scale"} <= posterior
    lightgcn = _tags(os.path.join(paths["pipeline_root"], "PseudoSequenceGen", "augmented_examples", "*",
                                  "pseudo_sequence_generator", "logs", "**", "events.out.tfevents*"))
    assert {"lightgcn/bpr_loss", "lightgcn/val_recall@20"} <= lightgcn
