"""AnomaliesGate: the TFX component that stops the pipeline before the pseudo-sequences and
training when ExampleValidator found anomalies (the check is in `executor.py`)."""
import logging

from tfx import v1 as tfx
from tfx.types import standard_artifacts

from components.data_validation import executor

logger = logging.getLogger(__name__)


@tfx.dsl.components.component
def AnomaliesGate(anomalies: tfx.dsl.components.InputArtifact[standard_artifacts.ExampleAnomalies]) -> None:
    checked = executor.check_anomalies(anomalies.uri)
    logger.info(f"[validate] no anomalies in {checked} split(s)")
