"""Kubeflow: the same pipeline compiles to a KubeflowV2 pipeline-spec JSON without a cluster."""
import json

from models import config
from models.backup import code_fingerprint
from pipeline.kubeflow_runner import compile_pipeline

COMPONENTS = {"InteractionExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "AnomaliesGate", "PseudoSequenceGen",
              "TrainingOverrides", "Trainer", "ServingCheck", "RankingEvaluator", "Pusher"}
# TFX compiles the Resolver (LatestBlessedModelStrategy) into two metadata queries: blessings, then their model
RESOLVER = {"served_model_resolver-model-blessing-resolver", "served_model_resolver-model-resolver"}


def test_compiled_spec_has_every_component_image_beam_args_and_parameters(tmp_path):
    cfg = config.load_config(overrides=[
        "train.epochs=7", "train.lambda_a=0.01",
        'beam_args=["--runner=DataflowRunner", "--project=p", "--region=europe-west4"]'])
    cfg.data_path = "gs://bucket/amazon-cdsr/cloth_sport"
    path = compile_pipeline(cfg, "gcr.io/p/i2vae:1", "gs://bucket/root", str(tmp_path / "i2vae.json"))
    spec = json.load(open(path))
    pipeline = spec["pipelineSpec"]
    assert set(pipeline["root"]["dag"]["tasks"]) == COMPONENTS | RESOLVER
    executors = pipeline["deploymentSpec"]["executors"]
    blessed = executors["served_model_resolver-model-blessing-resolver_executor"]["resolver"]["outputArtifactQueries"]
    assert "metadata.blessed.number_value=1" in blessed["model_blessing"]["filter"]
    containers = [e for name, e in executors.items() if name[: -len("_executor")] not in RESOLVER]
    assert len(containers) == len(COMPONENTS)
    for executor in containers:
        container = executor["container"]
        assert container["image"] == "gcr.io/p/i2vae:1"
        assert "--runner=DataflowRunner" in container["args"] and "--region=europe-west4" in container["args"]
    params = pipeline["root"]["inputDefinitions"]["parameters"]
    assert params == {"data_path": {"type": "STRING"}, "epochs": {"type": "INT"}, "lambda_t": {"type": "DOUBLE"},
                      "lambda_a": {"type": "DOUBLE"}}
    values = spec["runtimeConfig"]["parameters"]
    assert values["epochs"] == {"intValue": "7"} and values["lambda_a"] == {"doubleValue": 0.01}
    assert values["data_path"] == {"stringValue": "gs://bucket/amazon-cdsr/cloth_sport"}
    tasks = pipeline["root"]["dag"]["tasks"]
    assert tasks["InteractionExampleGen"]["inputs"]["parameters"]["data_path"] == {"componentInputParameter":
                                                                                   "data_path"}
    trainer = tasks["Trainer"]["inputs"]
    for task, name in (("Trainer", "base_model"), ("PseudoSequenceGen", "base_model"),
                       ("RankingEvaluator", "baseline_model")):  # the served model, warm start and baseline
        source = tasks[task]["inputs"]["artifacts"][name]["taskOutputArtifact"]
        assert source["producerTask"] == "served_model_resolver-model-resolver"
    assert trainer["artifacts"]["hyperparameters"]["taskOutputArtifact"]["producerTask"] == "TrainingOverrides"
    assert trainer["parameters"]["run_fn"]["runtimeValue"]["constantValue"]["stringValue"] == "models.trainer.run_fn"
    assert "module_file" not in json.dumps(trainer)  # dotted run_fn: no module wheel at compile time
    # the training code's fingerprint is part of the Trainer's cache key (its custom_config)
    custom = json.loads(trainer["parameters"]["custom_config"]["runtimeValue"]["constantValue"]["stringValue"])
    assert custom["trainer_code"] == code_fingerprint() and json.loads(custom["config"])["train"]["epochs"] == 7


def test_dockerfile_builds_on_the_matching_tfx_image_with_the_project():
    import os

    import tfx

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    text = open(os.path.join(root, "Dockerfile")).read()
    assert f"FROM tensorflow/tfx:{tfx.__version__}" in text
    for package in ("pipeline/", "components/", "models/", "serving/"):
        assert f"COPY {package} {package}" in text
    assert "TF_USE_LEGACY_KERAS=1" in text and "PYTHONPATH=/pipeline" in text
