"""Local runner: LocalDagRunner, SQLite ML Metadata, Beam DirectRunner (multi-processing).

Layout of a run directory `<out>/`:
  config.json          the resolved PipelineConfig
  pipeline_root/       every component's artifacts (TensorBoard: `tensorboard --logdir <out>`)
  metadata.db          ML Metadata (SQLite)
  serving_model/<model name>/<version>/   the pushed SavedModel, TF Serving layout
"""
import glob
import json
import os
import time
from typing import Dict, Optional

from tfx import v1 as tfx

from components.evaluator.executor import VERDICT_FILE
from models import config
from pipeline.pipeline import create_pipeline


def run_paths(out_dir: str, cfg: config.PipelineConfig) -> Dict[str, str]:
    out_dir = os.path.abspath(out_dir)
    return {
        "out": out_dir,
        "pipeline_root": os.path.join(out_dir, "pipeline_root"),
        "metadata": os.path.join(out_dir, "metadata.db"),
        "serving_model_dir": os.path.join(out_dir, "serving_model", cfg.serving_name),
    }


def run_local(cfg: config.PipelineConfig, out_dir: str, enable_cache: bool = True) -> Dict[str, Optional[str]]:
    """Runs the whole pipeline locally and returns the paths of its key outputs."""
    paths = run_paths(out_dir, cfg)
    cfg.data_path = os.path.abspath(cfg.data_path)
    config.write_config(cfg, paths["out"])
    pipeline = create_pipeline(
        pipeline_root=paths["pipeline_root"],
        serving_model_dir=paths["serving_model_dir"],
        cfg=cfg,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(paths["metadata"]),
        enable_cache=enable_cache,
    )
    start = time.time()
    tfx.orchestration.LocalDagRunner().run(pipeline)
    paths["seconds"] = f"{time.time() - start:.0f}"
    # this run's verdict and metrics: the newest evaluation (a model that failed the serving
    # check has a verdict and no metrics; an older run's metrics are not shown for it)
    evaluation = newest_output_dir(paths["pipeline_root"], "RankingEvaluator", "evaluation")
    verdict = os.path.join(evaluation, VERDICT_FILE) if evaluation else ""
    paths["verdict"] = json.load(open(verdict)) if verdict and os.path.exists(verdict) else None
    metrics = os.path.join(evaluation, "metrics.md") if evaluation else ""
    paths["metrics"] = metrics if metrics and os.path.exists(metrics) else None
    paths["training_history"] = latest_output(paths["pipeline_root"], "Trainer", "model_run", "training_history.json")
    paths["pushed_model"] = latest_version(paths["serving_model_dir"])
    return paths


def newest_output_dir(pipeline_root: str, component: str, output: str) -> Optional[str]:
    """The folder of the newest execution's output of a component (execution ids increase)."""
    found = [d for d in glob.glob(os.path.join(pipeline_root, component, output, "*")) if os.path.basename(d).isdigit()]
    return max(found, key=lambda d: int(os.path.basename(d))) if found else None


def latest_output(pipeline_root: str, component: str, output: str, filename: str) -> Optional[str]:
    """The file from the newest execution of a component's output (execution ids increase)."""
    found = glob.glob(os.path.join(pipeline_root, component, output, "*", filename))
    if not found:
        return None
    return max(found, key=lambda p: int(p.split(os.sep)[-2]))


def latest_version(serving_model_dir: str) -> Optional[str]:
    versions = [d for d in glob.glob(os.path.join(serving_model_dir, "*")) if os.path.basename(d).isdigit()]
    return max(versions, key=lambda d: int(os.path.basename(d))) if versions else None
