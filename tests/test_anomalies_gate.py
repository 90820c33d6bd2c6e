"""ExampleValidator anomalies stop the pipeline before the pseudo-sequences and training,
with a summary naming split, feature and problem."""
import os

import pytest
from tensorflow_metadata.proto.v0 import anomalies_pb2

from components.data_validation.executor import DataAnomaliesError, anomaly_lines, check_anomalies
from components.ingest import synthetic
from models import config
from pipeline.local_runner import run_local


def write_anomalies(root, split, anomalies):
    os.makedirs(os.path.join(root, f"Split-{split}"), exist_ok=True)
    with open(os.path.join(root, f"Split-{split}", "SchemaDiff.pb"), "wb") as f:
        f.write(anomalies.SerializeToString())


def test_gate_passes_clean_splits_and_lists_every_anomaly(tmp_path):
    root = str(tmp_path / "anomalies")
    for split in ("train", "eval"):
        write_anomalies(root, split, anomalies_pb2.Anomalies())
    assert check_anomalies(root) == 2
    bad = anomalies_pb2.Anomalies()
    info = bad.anomaly_info["target_item"]
    info.short_description = "Out-of-range values"
    info.reason.add(description="Unexpectedly large value: 57.")
    write_anomalies(root, "test", bad)
    assert anomaly_lines(root) == ["split 'test', feature 'target_item': Out-of-range values "
                                   "(Unexpectedly large value: 57.)"]
    with pytest.raises(DataAnomaliesError, match="found 1 anomaly .* stops before training"):
        check_anomalies(root)
    with pytest.raises(DataAnomaliesError, match="no ExampleValidator result"):
        check_anomalies(str(tmp_path / "missing"))


FEATURE = """feature {{
  name: "{name}"
  type: {type}
  {extra}
}}
"""


def curated_schema(path, max_item):
    """A schema a team would curate: every feature typed, and target items capped at `max_item`."""
    features = [("user_id", "BYTES", ""), ("history_x", "INT", ""), ("history_y", "INT", ""),
                ("is_cold_start", "INT", "bool_domain { }"), ("is_long_tailed", "INT", "bool_domain { }"),
                ("target_domain", "INT", "bool_domain { }"),
                ("target_item", "INT", f"int_domain {{ min: 1 max: {max_item} }}")]
    with open(path, "w") as f:
        f.write("".join(FEATURE.format(name=n, type=t, extra=e) for n, t, e in features))
    return str(path)


@pytest.mark.slow  # a pipeline run; `make test-slow`
def test_pipeline_stops_before_training_on_anomalies(tmp_path):
    data = synthetic.write_csv(str(tmp_path / "interactions.csv"),
                               synthetic.SyntheticConfig(num_users=200, num_items_x=30, num_items_y=20, seed=3))
    cfg = config.load_config(overrides=["train.epochs=1", "lightgcn.max_epochs=1"])
    cfg.data_path = data
    cfg.schema_path = curated_schema(tmp_path / "schema.pbtxt", max_item=5)
    with pytest.raises(Exception) as err:
        run_local(cfg, str(tmp_path / "run"))
    message = str(err.value)
    assert "anomal" in message and "feature 'target_item': Out-of-range values" in message, message[-800:]
    root = os.path.join(str(tmp_path / "run"), "pipeline_root")
    assert os.path.isdir(os.path.join(root, "ExampleValidator"))
    for later in ("PseudoSequenceGen", "Trainer", "RankingEvaluator", "Pusher"):
        assert not os.path.exists(os.path.join(root, later)), later
