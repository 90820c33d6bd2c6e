"""InteractionExampleGen: the TFX component that ingests interactions with Apache Beam.

Reads the paper's CSV pair (train.csv, test.csv) or a generic long table (CSV/Parquet),
validates every row (errors name the file, line and field), splits by user, marks
cold-start and long-tailed rows, and writes gzip TFRecords of tf.train.Example under
`Split-{train,eval,test}/` plus `vocab/vocab_{x,y}.txt` and `ingest_report.json`.
"""

import json
import logging
import os

import apache_beam as beam
import tensorflow as tf
from tfx import v1 as tfx
from tfx.types import artifact_utils, standard_artifacts

from components.ingest import executor, logic
from models import config

logger = logging.getLogger(__name__)


@tfx.dsl.components.component(use_beam=True)
def InteractionExampleGen(
    examples: tfx.dsl.components.OutputArtifact[standard_artifacts.Examples],
    data_path: tfx.dsl.components.Parameter[str],
    data_config: tfx.dsl.components.Parameter[str],
    data_format: tfx.dsl.components.Parameter[str] = "auto",
    beam_pipeline: tfx.dsl.components.BeamComponentParameter[beam.Pipeline] = None,
) -> None:
    """`data_config` is the JSON of `models.config.DataConfig`."""
    cfg = config.section_from_json(data_config, config.DataConfig)
    examples.split_names = artifact_utils.encode_split_names(list(logic.SPLITS))
    examples.set_string_custom_property("payload_format", "FORMAT_TF_EXAMPLE")
    with beam_pipeline as p:
        executor.build_ingest(p, data_path, data_format, cfg, examples.uri)
    with tf.io.gfile.GFile(os.path.join(examples.uri, "ingest_report.json")) as f:
        for line in executor.report_lines(json.load(f)):
            logger.info(line)
