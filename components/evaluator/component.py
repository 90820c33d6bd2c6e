"""RankingEvaluator: the TFX component that evaluates the exported model (i2VAE or the
baseline `model.kind` names), the popularity baseline and the served model (the
pipeline's Resolver, when there is one) on the same rows, and blesses the model when it
passed the serving check and its validation NDCG@K beats popularity and is not below the
served model's (`eval.max_regression`); the evaluation is in `executor.py`."""
from tfx import v1 as tfx
from tfx.types import standard_artifacts

from components.evaluator import executor


@tfx.dsl.components.component
def RankingEvaluator(
    examples: tfx.dsl.components.InputArtifact[standard_artifacts.Examples],
    model: tfx.dsl.components.InputArtifact[standard_artifacts.Model],
    infra_blessing: tfx.dsl.components.InputArtifact[standard_artifacts.InfraBlessing],
    evaluation: tfx.dsl.components.OutputArtifact[standard_artifacts.ModelEvaluation],
    blessing: tfx.dsl.components.OutputArtifact[standard_artifacts.ModelBlessing],
    config: tfx.dsl.components.Parameter[str],
    baseline_model: tfx.dsl.components.InputArtifact[standard_artifacts.Model] = None,
) -> None:
    """`config` is the PipelineConfig JSON; `infra_blessing` is the ServingCheck's verdict."""
    serving_check = (infra_blessing.get_int_custom_property("blessed") == 1,
                     infra_blessing.get_string_custom_property("message"))
    blessed = executor.evaluate_and_bless(examples.uri, examples.split_names, model.uri, evaluation.uri, config,
                                          serving_check, baseline_model.uri if baseline_model is not None else "")
    # what TFX's LatestBlessedModelStrategy reads to find the served model of the next run
    blessing.set_int_custom_property("blessed", int(blessed))
    blessing.set_int_custom_property("current_model_id", model.id)
    blessing.set_string_custom_property("current_model", model.uri)
    if baseline_model is not None:
        blessing.set_int_custom_property("baseline_model_id", baseline_model.id)
        blessing.set_string_custom_property("baseline_model", baseline_model.uri)
