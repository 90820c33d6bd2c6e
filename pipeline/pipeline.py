"""The one i2VAE pipeline definition; every runner (local, Kubeflow) calls `create_pipeline`."""
import json
import os
from typing import List, Optional

from tfx import v1 as tfx

from components.data_validation.component import AnomaliesGate
from components.evaluator.component import RankingEvaluator
from components.ingest.component import InteractionExampleGen
from components.pseudo_sequences.component import PseudoSequenceGen
from components.pusher.component import AtomicPusher
from components.serving_check.component import ServingCheck
from components.training_overrides.component import TrainingOverrides
from models import config
from models.backup import code_fingerprint

RUN_FN = "models.trainer.run_fn"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def create_pipeline(
    pipeline_root: str,
    serving_model_dir: str,
    cfg: config.PipelineConfig,
    metadata_connection_config=None,
    beam_pipeline_args: Optional[List[str]] = None,
    enable_cache: bool = True,
    runtime_parameters: bool = False,
) -> tfx.dsl.Pipeline:
    """Ingest -> statistics/schema/validation (anomalies stop the run) -> pseudo-sequences -> Trainer ->
    ServingCheck -> RankingEvaluator -> Pusher.

    A Resolver finds the served model (the latest blessed one in ML Metadata; none on a first
    run): the generator and the Trainer warm-start from it (`train.warm_start`), and the
    evaluator scores it beside the candidate and blesses only a candidate that is not worse.

    With `runtime_parameters` (Kubeflow), the data path, epochs, lambda_t and lambda_a
    become pipeline parameters whose defaults are the config's values.
    """
    config_json = json.dumps(config.to_dict(cfg), sort_keys=True)
    data_json = json.dumps(config.to_dict(cfg)["data"], sort_keys=True)
    settings = {"data_path": (cfg.data_path, str), "epochs": (cfg.train.epochs, int),
                "lambda_t": (cfg.train.lambda_t, float), "lambda_a": (cfg.train.lambda_a, float)}
    if runtime_parameters:
        settings = {name: (tfx.dsl.experimental.RuntimeParameter(name=name, ptype=ptype, default=ptype(value)), ptype)
                    for name, (value, ptype) in settings.items()}
    value = {name: v for name, (v, _) in settings.items()}
    ingest = InteractionExampleGen(data_path=value["data_path"], data_format=cfg.data_format, data_config=data_json)
    statistics = tfx.components.StatisticsGen(examples=ingest.outputs["examples"])
    if cfg.schema_path:
        schema = tfx.components.ImportSchemaGen(schema_file=cfg.schema_path)
    else:
        schema = tfx.components.SchemaGen(statistics=statistics.outputs["statistics"], infer_feature_shape=False)
    validator = tfx.components.ExampleValidator(statistics=statistics.outputs["statistics"],
                                                schema=schema.outputs["schema"])
    gate = AnomaliesGate(anomalies=validator.outputs["anomalies"])
    served = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("served_model_resolver")
    base_model = served.outputs["model"] if cfg.train.warm_start else None
    # a baseline's run trains no generator: it reads the histories only (`cfg.pseudo_sequences`)
    generator_json = json.dumps({**config.to_dict(cfg)["lightgcn"], "pseudo_source": cfg.pseudo_sequences()},
                                sort_keys=True)
    pseudo = PseudoSequenceGen(examples=ingest.outputs["examples"], data_config=data_json,
                               lightgcn_config=generator_json, base_model=base_model)
    pseudo.add_upstream_node(gate)  # anomalies stop the run before LightGCN and training
    overrides = TrainingOverrides(epochs=value["epochs"], lambda_t=value["lambda_t"], lambda_a=value["lambda_a"])
    trainer = tfx.components.Trainer(
        run_fn=RUN_FN,
        examples=pseudo.outputs["augmented_examples"],
        hyperparameters=overrides.outputs["hyperparameters"],
        base_model=base_model,
        train_args=tfx.proto.TrainArgs(splits=["train"]),
        eval_args=tfx.proto.EvalArgs(splits=["eval"]),
        # the fingerprint is read by no one: it is there so that new training code misses the cache
        custom_config={"config": config_json, "trainer_code": code_fingerprint()},
    )
    # the candidate served by `i2vae serve` in a fresh process before anything may push it
    serving_check = ServingCheck(examples=pseudo.outputs["augmented_examples"], model=trainer.outputs["model"],
                                 config_json=config_json)
    evaluator = RankingEvaluator(examples=pseudo.outputs["augmented_examples"], model=trainer.outputs["model"],
                                 infra_blessing=serving_check.outputs["blessing"], config=config_json,
                                 baseline_model=served.outputs["model"] if cfg.eval.compare_with_served else None)
    # copies under a hidden name, then renames: TF Serving never sees a partial version
    pusher = AtomicPusher(model=trainer.outputs["model"], model_blessing=evaluator.outputs["blessing"],
                          infra_blessing=serving_check.outputs["blessing"], base_directory=serving_model_dir)
    return tfx.dsl.Pipeline(
        pipeline_name=cfg.pipeline_name,
        pipeline_root=pipeline_root,
        components=[ingest, statistics, schema, validator, gate, served, pseudo, overrides, trainer, serving_check,
                    evaluator, pusher],
        enable_cache=enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=beam_pipeline_args if beam_pipeline_args is not None else cfg.beam_args,
    )
