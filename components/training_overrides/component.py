"""TrainingOverrides: the training settings a pipeline run may change without recompiling.

Kubeflow Pipelines can only vary what is a pipeline parameter, and the standard Trainer
takes no free parameters besides its `hyperparameters` input. This component turns the
run-time values (epochs, lambda_t, lambda_a) into a HyperParameters artifact; `run_fn`
applies it over the pipeline config (`models.trainer.apply_overrides`). Locally the values
are just the config's, so every runner uses the same pipeline definition.
"""
import json
import logging
import os

import tensorflow as tf
from tfx import v1 as tfx
from tfx.types import standard_artifacts

from models import config

logger = logging.getLogger(__name__)

OVERRIDES_FILE = "overrides.json"


@tfx.dsl.components.component
def TrainingOverrides(
    hyperparameters: tfx.dsl.components.OutputArtifact[standard_artifacts.HyperParameters],
    epochs: tfx.dsl.components.Parameter[int],
    lambda_t: tfx.dsl.components.Parameter[float],
    lambda_a: tfx.dsl.components.Parameter[float],
) -> None:
    values = {"train.epochs": int(epochs), "train.lambda_t": float(lambda_t), "train.lambda_a": float(lambda_a)}
    for name, value in values.items():  # the config's own check: a one-line error for the command line too
        config.check_at_least(f"pipeline parameter {name}", value, 0)
    tf.io.gfile.makedirs(hyperparameters.uri)
    with tf.io.gfile.GFile(os.path.join(hyperparameters.uri, OVERRIDES_FILE), "w") as f:
        json.dump(values, f, indent=2)
    logger.info(f"[overrides] training settings for this run: {values}")
