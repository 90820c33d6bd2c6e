"""PseudoSequenceGen: trains a Keras LightGCN on the train graph, then adds pseudo-sequences.

Output: an Examples artifact with every split of the input plus `pseudo_x` / `pseudo_y`.
It also carries `vocab/` (copied from the input) and `pseudo_sequence_generator/`
(item and user embeddings, TensorBoard logs, training.json), because the Trainer
embeds the generator in the serving graph and standard Trainer takes only Examples.
"""

import logging
import os

import apache_beam as beam
import tensorflow as tf
from tfx import v1 as tfx
from tfx.types import artifact_utils, standard_artifacts

from components.pseudo_sequences import beam_pseudo_sequences as psg
from models import config, feature_spec
from models.data import read_split

logger = logging.getLogger(__name__)


def run_pseudo_sequence_gen(in_uri: str, out_uri: str, splits, data_cfg, lightgcn_cfg, beam_pipeline) -> dict:
    """Trains the generator (in this process) and runs the Beam transform on `beam_pipeline`."""
    vocab_x, vocab_y = feature_spec.read_vocabs(in_uri)
    tf.io.gfile.makedirs(os.path.join(out_uri, feature_spec.VOCAB_DIR))
    # the vocabularies, the domain names and the leak-touched rows travel with the examples
    vocab = [os.path.join(feature_spec.VOCAB_DIR, n) for n in feature_spec.VOCAB_FILES + (feature_spec.DOMAINS_FILE,)]
    optional = (os.path.join(feature_spec.VOCAB_DIR, feature_spec.DOMAINS_FILE), feature_spec.LEAK_TOUCHED_FILE)
    for name in vocab + [feature_spec.LEAK_TOUCHED_FILE]:
        if name in optional and not tf.io.gfile.exists(os.path.join(in_uri, name)):
            continue  # examples ingested by an earlier version
        tf.io.gfile.copy(os.path.join(in_uri, name), os.path.join(out_uri, name), overwrite=True)
    train_rows = read_split(in_uri, "train")
    eval_rows = read_split(in_uri, "eval") if "eval" in splits else []
    generator_dir = os.path.join(out_uri, psg.GENERATOR_DIR)
    if lightgcn_cfg.pseudo_source == "random":
        # the w/o PSG ablation needs no LightGCN: keep the artifact's layout with zero embeddings
        logger.info("[psg] pseudo_source=random (w/o PSG ablation): LightGCN is not trained")
        psg.save_untrained_generator(generator_dir, len(vocab_x), len(vocab_y), lightgcn_cfg.embedding_dim)
        history = {"pseudo_source": "random"}
    else:
        history = psg.train_generator(train_rows, eval_rows, len(vocab_x), len(vocab_y), data_cfg, lightgcn_cfg,
                                      generator_dir)
    with beam_pipeline as p:
        psg.build_transform(p, in_uri, out_uri, splits, generator_dir, data_cfg, lightgcn_cfg)
    logger.info(f"[psg] pseudo-sequences ({lightgcn_cfg.pseudo_source}) written for splits {list(splits)}")
    return history


@tfx.dsl.components.component(use_beam=True)
def PseudoSequenceGen(
    examples: tfx.dsl.components.InputArtifact[standard_artifacts.Examples],
    augmented_examples: tfx.dsl.components.OutputArtifact[standard_artifacts.Examples],
    data_config: tfx.dsl.components.Parameter[str],
    lightgcn_config: tfx.dsl.components.Parameter[str],
    beam_pipeline: tfx.dsl.components.BeamComponentParameter[beam.Pipeline] = None,
) -> None:
    """`data_config` / `lightgcn_config` are the JSON of DataConfig / LightGCNConfig."""
    splits = artifact_utils.decode_split_names(examples.split_names)
    augmented_examples.split_names = examples.split_names
    augmented_examples.set_string_custom_property("payload_format", "FORMAT_TF_EXAMPLE")
    run_pseudo_sequence_gen(examples.uri, augmented_examples.uri, splits,
                            config.section_from_json(data_config, config.DataConfig),
                            config.section_from_json(lightgcn_config, config.LightGCNConfig), beam_pipeline)
