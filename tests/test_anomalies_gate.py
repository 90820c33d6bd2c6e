"""ExampleValidator anomalies stop the pipeline before the pseudo-sequences and training,
with a summary naming split, feature and problem."""
import os

import pytest

from components.ingest import synthetic
from models import config
from pipeline.local_runner import run_local

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
