"""PseudoSequenceGen: trains a Keras LightGCN on the train graph, then adds pseudo-sequences.

Output: an Examples artifact with every split of the input plus `pseudo_x` / `pseudo_y`.
It also carries `vocab/` (copied from the input) and `pseudo_sequence_generator/`
(item and user embeddings, LightGCN's layer-0 rows, TensorBoard logs, training.json), because the Trainer
embeds the generator in the serving graph and standard Trainer takes only Examples.
The work is in `executor.py` (`run_pseudo_sequence_gen` and the Beam transform).
"""
import apache_beam as beam
from tfx import v1 as tfx
from tfx.types import artifact_utils, standard_artifacts

from components.pseudo_sequences import executor
from models import config


@tfx.dsl.components.component(use_beam=True)
def PseudoSequenceGen(
    examples: tfx.dsl.components.InputArtifact[standard_artifacts.Examples],
    augmented_examples: tfx.dsl.components.OutputArtifact[standard_artifacts.Examples],
    data_config: tfx.dsl.components.Parameter[str],
    lightgcn_config: tfx.dsl.components.Parameter[str],
    beam_pipeline: tfx.dsl.components.BeamComponentParameter[beam.Pipeline] = None,
    base_model: tfx.dsl.components.InputArtifact[standard_artifacts.Model] = None,
) -> None:
    """`data_config` / `lightgcn_config` are the JSON of DataConfig / LightGCNConfig;
    `base_model` is the served model (the pipeline's Resolver), whose generator's LightGCN
    the new one warm-starts from (`train.warm_start`)."""
    splits = artifact_utils.decode_split_names(examples.split_names)
    augmented_examples.split_names = examples.split_names
    augmented_examples.set_string_custom_property("payload_format", "FORMAT_TF_EXAMPLE")
    executor.run_pseudo_sequence_gen(examples.uri, augmented_examples.uri, splits,
                                     config.section_from_json(data_config, config.DataConfig),
                                     config.section_from_json(lightgcn_config, config.LightGCNConfig), beam_pipeline,
                                     base_model.uri if base_model is not None else "")
