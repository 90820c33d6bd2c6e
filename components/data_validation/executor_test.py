"""The anomalies check: clean splits pass; every anomaly is listed by split, feature and problem."""
import os

import pytest
from tensorflow_metadata.proto.v0 import anomalies_pb2

from components.data_validation.executor import DataAnomaliesError, anomaly_lines, check_anomalies


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
