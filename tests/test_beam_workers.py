"""Ingest and pseudo-sequences give the same output on one worker and on DirectRunner's
multi-processing mode with 2 workers (what the local runner uses, and how the steps
shard on Dataflow, Flink or Spark)."""
import json
import os

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from components.ingest import logic, synthetic
from components.ingest.executor import build_ingest
from components.pseudo_sequences.executor import build_transform
from models import data, feature_spec, psg
from models.config import DataConfig, LightGCNConfig
from models.lightgcn import Graph

ONE = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
TWO = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]


def key(row):
    return row["user_id"], row["target_domain"]


@pytest.mark.slow  # about a minute or more: run by `make test-slow`
def test_ingest_and_pseudo_sequences_same_on_one_and_two_workers(tmp_path):
    log_csv = synthetic.write_csv(str(tmp_path / "log.csv"), synthetic.SyntheticConfig(num_users=400, seed=11))
    data_cfg = DataConfig(max_len=6, pseudo_len=10)
    outputs = {}
    for name, flags in (("one", ONE), ("two", TWO)):
        ingest_dir = str(tmp_path / name / "ingest")
        with beam.Pipeline(options=PipelineOptions(flags)) as p:
            build_ingest(p, log_csv, "auto", data_cfg, ingest_dir)
        if name == "one":  # one generator for both runs: the transform is what is compared
            vocab_x, vocab_y = (feature_spec.read_vocab(os.path.join(ingest_dir, feature_spec.VOCAB_DIR, f))
                                for f in feature_spec.VOCAB_FILES)
            rng = np.random.default_rng(0)
            generator_dir = str(tmp_path / "generator")
            train = data.read_split(ingest_dir, "train")
            graph = Graph(train, len(vocab_x), len(vocab_y), hold_out_targets=True)
            psg.save_generator(generator_dir, rng.normal(size=(len(vocab_x) + 1, 8)).astype(np.float32),
                               rng.normal(size=(len(vocab_y) + 1, 8)).astype(np.float32), list(graph.user_index),
                               graph.neighbours(), rng.normal(size=(graph.num_users, 8)).astype(np.float32))
        out_dir = str(tmp_path / name / "pseudo")
        with beam.Pipeline(options=PipelineOptions(flags)) as p:
            build_transform(p, ingest_dir, out_dir, logic.SPLITS, generator_dir, data_cfg, LightGCNConfig())
        outputs[name] = {split: sorted(data.read_split(out_dir, split), key=key) for split in logic.SPLITS}
        outputs[name]["report"] = json.load(open(os.path.join(ingest_dir, "ingest_report.json")))
        outputs[name]["vocab"] = [open(os.path.join(ingest_dir, feature_spec.VOCAB_DIR, f)).read()
                                  for f in feature_spec.VOCAB_FILES]
    for split in logic.SPLITS:
        assert outputs["one"][split] and outputs["one"][split] == outputs["two"][split], split
        assert all(len(r["pseudo_x"]) == 10 for r in outputs["two"][split])
    assert outputs["one"]["vocab"] == outputs["two"]["vocab"]
    assert outputs["one"]["report"]["rows"] == outputs["two"]["report"]["rows"]
