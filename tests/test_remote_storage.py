"""Our own file reads and writes go through tf.io.gfile, so a Kubeflow run with a gs://
pipeline root and data works. No bucket is reachable here: these tests use TensorFlow's
in-memory `ram://` file system, which Python's `open`, `os.makedirs`, `glob` and NumPy's
file functions do not understand, so any of those left on the path makes them fail.

Beam's TFRecord writes (ingest, pseudo-sequences) use Beam's own file systems (gs:// with
apache-beam[gcp]), which know nothing of ram://, so the ingest test reads its input from
ram:// and writes its output locally.
"""
import json
import os
import types

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from components.data_validation.executor import check_anomalies
from components.evaluator.executor import evaluate_model
from components.ingest import logic
from components.ingest.executor import detect_format
from models import config, feature_spec, psg
from models.trainer import run_fn
from tests.epoch_runs import write_examples
from tests.ingest_cases import run_ingest, split_rows, write_paper_pair


def copy_tree(src: str, dst: str) -> None:
    for directory, _, files in tf.io.gfile.walk(src):
        rel = os.path.relpath(directory, src)
        target = dst if rel == "." else os.path.join(dst, rel)  # ram:// keeps "a/./b" apart from "a/b"
        tf.io.gfile.makedirs(target)
        for name in files:
            tf.io.gfile.copy(os.path.join(directory, name), os.path.join(target, name), overwrite=True)


@pytest.mark.slow  # about a minute or more: run by `make test-slow`
def test_trainer_and_evaluator_read_and_write_only_through_gfile(tmp_path):
    root = "ram://remote_storage/examples"
    copy_tree(write_examples(str(tmp_path / "examples")), root)
    cfg = config.load_config(overrides=["model.embedding_dim=8", "model.latent_dim=4", "model.num_heads=2",
                                        "model.num_blocks=1", "data.max_len=4", "data.pseudo_len=6", "train.epochs=1",
                                        "train.batch_size=64", "eval.num_negatives=5"])
    fn_args = types.SimpleNamespace(
        custom_config={"config": json.dumps(config.to_dict(cfg))}, hyperparameters=None, base_model=None,
        train_files=[feature_spec.split_pattern(root, "train")], eval_files=[feature_spec.split_pattern(root, "eval")],
        model_run_dir="ram://remote_storage/model_run", serving_model_dir="ram://remote_storage/model/Format-Serving")
    run_fn(fn_args)
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, "training_history.json")) as f:
        assert json.load(f)["epochs_run"] == 1
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, "config.json")) as f:
        assert config.from_dict(json.load(f)) == cfg
    assert not tf.io.gfile.exists(os.path.join(fn_args.model_run_dir, "training_history.json.partial"))
    assert tf.io.gfile.exists(os.path.join(fn_args.serving_model_dir, "saved_model.pb"))

    report = evaluate_model(root, fn_args.serving_model_dir, ["eval"], cfg, "ram://remote_storage/evaluation")
    with tf.io.gfile.GFile("ram://remote_storage/evaluation/metrics.json") as f:
        assert json.load(f) == json.loads(json.dumps(report))
    with tf.io.gfile.GFile("ram://remote_storage/evaluation/ranks_eval.csv") as f:
        assert len(f.read().splitlines()) == 1 + 80  # header + every eval row


def test_generator_round_trips_through_gfile():
    rng = np.random.default_rng(0)
    emb_x, emb_y, users = rng.normal(size=(5, 3)), rng.normal(size=(4, 3)), rng.normal(size=(2, 3))
    psg.save_generator("ram://remote_storage/generator", emb_x, emb_y, ["u1", "u2"], [([1, 2], [3]), ([], [1, 2])],
                       users)
    g = psg.load_generator("ram://remote_storage/generator")
    np.testing.assert_array_equal(g["item_emb_x"], emb_x)
    np.testing.assert_array_equal(g["user_emb"], users)
    assert list(g["user_ids"]) == ["u1", "u2"]
    assert [list(s) for s in g["seen_x"]] == [[1, 2], []] and [list(s) for s in g["seen_y"]] == [[3], [1, 2]]


@pytest.mark.slow  # a Beam ingest run (about 15 s); `make test-slow`
def test_ingest_reads_paper_csvs_from_a_gfile_url_like_a_local_folder(tmp_path):
    local = write_paper_pair(tmp_path / "pair", 300)
    remote = "ram://remote_storage/pair"
    copy_tree(str(local), remote)
    assert detect_format(remote) == "paper"
    assert [line for _, _, line in logic.read_paper_file(remote + "/train.csv")] == \
        [line for _, _, line in logic.read_paper_file(str(local / "train.csv"))]
    a, b = run_ingest(str(local), str(tmp_path / "a")), run_ingest(remote, str(tmp_path / "b"))
    assert a["rows"] == b["rows"] and sum(a["rows_by_split"].values()) == 300 + 2
    for split in ("train", "eval", "test"):
        assert sorted(r["user_id"] for r in split_rows(str(tmp_path / "a"), split)) == \
            sorted(r["user_id"] for r in split_rows(str(tmp_path / "b"), split))


def test_long_table_parquet_reads_from_a_gfile_url(tmp_path):
    frame = pd.DataFrame({"user_id": ["u1", "u1", "u2"], "item_id": ["a", "b", "c"], "domain": ["x", "y", "x"],
                          "timestamp": ["1", "2", "3"]})
    frame.to_parquet(tmp_path / "log.parquet")
    tf.io.gfile.copy(str(tmp_path / "log.parquet"), "ram://remote_storage/log.parquet", overwrite=True)
    remote = [record for _, record in logic.read_long_table("ram://remote_storage/log.parquet")]
    assert remote == [record for _, record in logic.read_long_table(str(tmp_path / "log.parquet"))]
    assert len(remote) == 3 and detect_format("ram://remote_storage/log.parquet") == "long"


def test_anomaly_gate_reads_validator_output_from_a_gfile_url():
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    for split in ("train", "eval"):
        tf.io.gfile.makedirs(f"ram://remote_storage/anomalies/Split-{split}")
        with tf.io.gfile.GFile(f"ram://remote_storage/anomalies/Split-{split}/SchemaDiff.pb", "wb") as f:
            f.write(anomalies_pb2.Anomalies().SerializeToString())
    assert check_anomalies("ram://remote_storage/anomalies") == 2
