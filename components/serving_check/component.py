"""ServingCheck: TFX's InfraValidator role, run with `i2vae serve` (the TF Serving binary is
not assumed here). It loads the candidate SavedModel in a fresh server process and sends
it canned requests over the gRPC API (`executor.py`); the InfraBlessing it writes is
what the evaluator and the Pusher read, so a model that cannot serve is never blessed
or pushed."""
import json
import logging

from tfx import v1 as tfx
from tfx.types import standard_artifacts
from tfx.utils import path_utils

from components.serving_check import executor
from models import config

logger = logging.getLogger(__name__)


@tfx.dsl.components.component
def ServingCheck(
    examples: tfx.dsl.components.InputArtifact[standard_artifacts.Examples],
    model: tfx.dsl.components.InputArtifact[standard_artifacts.Model],
    blessing: tfx.dsl.components.OutputArtifact[standard_artifacts.InfraBlessing],
    config_json: tfx.dsl.components.Parameter[str],
) -> None:
    """`config_json` is the PipelineConfig JSON (the serving name and the check's timeout)."""
    cfg = config.from_dict(json.loads(config_json))
    passed, message = executor.check_serving(path_utils.serving_model_path(model.uri), examples.uri,
                                             cfg.serving_name, cfg.serving.check_timeout_seconds, blessing.uri)
    blessing.set_int_custom_property("blessed", int(passed))
    blessing.set_string_custom_property("message", message)
    logger.info(f"[serving check] {'passed' if passed else 'FAILED, the model will not be pushed'}: {message}")
