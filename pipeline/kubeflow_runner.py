"""Kubeflow Pipelines runner: compiles the same `create_pipeline(...)` to a pipeline-spec JSON.

    i2vae kubeflow --image gcr.io/my-project/i2vae-pipeline:latest --pipeline-root gs://bucket/i2vae \
        --data gs://bucket/amazon-cdsr/cloth_sport --output i2vae_pipeline.json

No cluster is needed to compile. Submit the JSON with the KFP client or the Vertex AI
Pipelines UI; the data path, epochs, lambda_t and lambda_a are pipeline parameters. Every
component runs in the image built from the repo's Dockerfile (TFX 1.16 base + this project),
and `run_fn` is a dotted path, so no module wheel is built at compile time.
"""
from __future__ import annotations

import os
from typing import List, Optional

from tfx import v1 as tfx

from models import config
from pipeline.pipeline import create_pipeline


def compile_pipeline(cfg: config.PipelineConfig, image: str, pipeline_root: str, output_path: str,
                     beam_args: Optional[List[str]] = None) -> str:
    """Writes the KubeflowV2 pipeline spec JSON and returns its path."""
    serving_dir = os.path.join(pipeline_root, "serving_model", cfg.serving_name)
    pipeline = create_pipeline(pipeline_root=pipeline_root, serving_model_dir=serving_dir, cfg=cfg,
                               beam_pipeline_args=beam_args if beam_args is not None else cfg.beam_args,
                               runtime_parameters=True)
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=image),
        output_dir=os.path.dirname(os.path.abspath(output_path)),
        output_filename=os.path.basename(output_path))
    defaults = {"data_path": cfg.data_path, "epochs": cfg.train.epochs, "lambda_t": cfg.train.lambda_t,
                "lambda_a": cfg.train.lambda_a}  # the run's values unless the submitter overrides them
    runner.run(pipeline, parameter_values=defaults, write_out=True)
    return output_path
