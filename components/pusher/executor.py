"""A Pusher executor that never shows TF Serving a half-written model version.

TF Serving loads any new numeric folder it sees under the model base path. TFX's own
Pusher copies the SavedModel straight into `<base>/<version>/` (saved_model.pb last), so
a push that dies mid-copy leaves a version folder that TF Serving tries, and fails, to
load. Here the copy goes to a hidden temporary folder first (`.<version>.partial`, not a
number, so TF Serving ignores it) and is renamed into place, one step on a local or
POSIX file system. A failed push removes its temporary folder.
"""
from __future__ import annotations

import logging
import os
import time

from tfx.components.pusher import executor as tfx_pusher_executor
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils

logger = logging.getLogger(__name__)


def partial_path(base_directory: str, version: str) -> str:
    return os.path.join(base_directory, f".{version}.partial")


def push_atomically(model_path: str, base_directory: str, version: str) -> str:
    """Copies the SavedModel at `model_path` to `<base_directory>/<version>` through a
    temporary folder and a rename; returns the version folder. An existing version is kept."""
    serving_path = os.path.join(base_directory, version)
    if fileio.exists(serving_path):
        logger.info("version folder %s exists already; nothing pushed", serving_path)
        return serving_path
    staging = partial_path(base_directory, version)
    if fileio.exists(staging):  # left by a push that was killed
        fileio.rmtree(staging)
    fileio.makedirs(base_directory)
    try:
        io_utils.copy_dir(model_path, staging)
        fileio.rename(staging, serving_path)
    except BaseException:
        if fileio.exists(staging):
            fileio.rmtree(staging)
        raise
    return serving_path


class Executor(tfx_pusher_executor.Executor):
    """TFX's Pusher, with the filesystem push done by `push_atomically`."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        model_push = artifact_utils.get_single_instance(output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(model_push)
            return
        model_path = self.GetModelPath(input_dict)
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination)
        if destination.WhichOneof("destination") != "filesystem":
            raise NotImplementedError("only a filesystem push destination is supported")
        version = str(int(time.time()))
        serving_path = push_atomically(model_path, destination.filesystem.base_directory, version)
        io_utils.copy_dir(model_path, model_push.uri)  # the archive copy TFX's Pusher keeps too
        self._MarkPushed(model_push, pushed_destination=serving_path, pushed_version=version)
        logger.info("model pushed to %s", serving_path)
