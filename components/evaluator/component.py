"""RankingEvaluator: the TFX component that evaluates the exported model (i2VAE or the
baseline `model.kind` names) and the popularity baseline, and blesses the model when its
validation NDCG@K beats the configured baseline; the evaluation is in `executor.py`."""
from tfx import v1 as tfx
from tfx.types import standard_artifacts

from components.evaluator import executor


@tfx.dsl.components.component
def RankingEvaluator(
    examples: tfx.dsl.components.InputArtifact[standard_artifacts.Examples],
    model: tfx.dsl.components.InputArtifact[standard_artifacts.Model],
    evaluation: tfx.dsl.components.OutputArtifact[standard_artifacts.ModelEvaluation],
    blessing: tfx.dsl.components.OutputArtifact[standard_artifacts.ModelBlessing],
    config: tfx.dsl.components.Parameter[str],
) -> None:
    """`config` is the PipelineConfig JSON."""
    blessed = executor.evaluate_and_bless(examples.uri, examples.split_names, model.uri, evaluation.uri, config)
    blessing.set_int_custom_property("blessed", int(blessed))
