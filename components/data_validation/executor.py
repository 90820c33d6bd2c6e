"""What AnomaliesGate runs: it stops the pipeline before the pseudo-sequences and training when
ExampleValidator found anomalies.

ExampleValidator only records anomalies; TFX runs the next components regardless. Training
on data that drifted from the schema wastes hours and can push a bad model, so this gate
reads the anomalies artifact and fails the run with a readable summary, one line per
split and feature. Fix the data, or, if the change is intended, update the schema
(`schema_path`, a curated schema.pbtxt, or delete it to let SchemaGen infer one).
"""
import os
from typing import List

import tensorflow as tf
from tensorflow_metadata.proto.v0 import anomalies_pb2


class DataAnomaliesError(RuntimeError):
    """Anomalies were found; the message lists them."""


def anomaly_lines(anomalies_uri: str) -> List[str]:
    """One readable line per anomaly, from every `Split-*/SchemaDiff.pb` of the artifact."""
    lines = []
    for path in sorted(tf.io.gfile.glob(os.path.join(anomalies_uri, "Split-*", "SchemaDiff.pb"))):
        split = os.path.basename(os.path.dirname(path))[len("Split-"):]
        result = anomalies_pb2.Anomalies()
        with tf.io.gfile.GFile(path, "rb") as f:
            result.ParseFromString(f.read())
        for feature, info in sorted(result.anomaly_info.items()):
            details = "; ".join(r.description for r in info.reason if r.description) or info.description
            lines.append(f"split '{split}', feature '{feature}': {info.short_description} ({details})")
        if result.HasField("dataset_anomaly_info") and result.dataset_anomaly_info.reason:
            info = result.dataset_anomaly_info
            lines.append(f"split '{split}', dataset: {info.short_description} "
                         f"({'; '.join(r.description for r in info.reason)})")
    return lines


def check_anomalies(anomalies_uri: str) -> int:
    """Raises DataAnomaliesError with the summary when there is any anomaly; returns the split count checked."""
    splits = tf.io.gfile.glob(os.path.join(anomalies_uri, "Split-*", "SchemaDiff.pb"))
    if not splits:
        raise DataAnomaliesError(f"{anomalies_uri}: no ExampleValidator result (Split-*/SchemaDiff.pb) to check")
    lines = anomaly_lines(anomalies_uri)
    if lines:
        raise DataAnomaliesError(
            f"ExampleValidator found {len(lines)} anomal{'y' if len(lines) == 1 else 'ies'} in the ingested data; "
            "the pipeline stops before training:\n  - " + "\n  - ".join(lines)
            + "\nFix the input data, or update the schema if the change is intended (config `schema_path`).")
    return len(splits)
