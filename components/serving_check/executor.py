"""What ServingCheck runs: the candidate SavedModel loaded by a real server in a fresh
process, answering canned requests over TF Serving's gRPC API, before the Pusher may push.

TFX's InfraValidator does this with the TF Serving binary or its Docker image, neither of
which this project can assume (docs/deployment.md); `i2vae serve` (serving/server.py)
speaks the same PredictionService protocol and loads the SavedModel with plain
TensorFlow, as TF Serving does. The requests are the export's warmup requests
(`models.export.warmup_requests`: a normal row, a cold-start row, unknown ids, an empty
history, a batch of 64), built from the Examples' vocabularies. Each answer must have
[batch, K] ids and scores, and every score must be finite except the -inf of an empty
("") slot.
"""
from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from typing import Tuple

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2, prediction_service_pb2_grpc

from models import export, feature_spec

logger = logging.getLogger(__name__)

SERVER_LOG = "server.log"
VERSION = "1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_answer(request, response) -> str:
    """'' when the response to a recommend request has the contract's shape and scores, else
    what is wrong."""
    batch = tf.make_ndarray(request.inputs[feature_spec.HISTORY_X]).shape[0]
    for domain in ("x", "y"):
        names = (f"top_ids_{domain}", f"top_scores_{domain}")
        missing = [n for n in names if n not in response.outputs]
        if missing:
            return f"the answer has no {', '.join(missing)}"
        ids, scores = (tf.make_ndarray(response.outputs[n]) for n in names)
        if ids.ndim != 2 or ids.shape[0] != batch or ids.shape != scores.shape or ids.shape[1] < 1:
            return f"{names[0]} / {names[1]} have shapes {ids.shape} / {scores.shape}, not [{batch}, K]"
        bad = ~np.isfinite(scores) & ~((scores == -np.inf) & (ids == b""))
        if bad.any():
            return f"{int(bad.sum())} scores of {names[1]} are not finite"
    return ""


def check_serving(model_dir: str, examples_root: str, model_name: str, timeout_seconds: float,
                  log_dir: str) -> Tuple[bool, str]:
    """Serves `model_dir` with `python -m serving.server` in a fresh process and sends it the
    canned requests. Returns (passed, one line saying what happened). The server's output
    goes to `<log_dir>/server.log`. Started here, not by `serving.server.start_process`:
    components import only models/ (pipeline/layering_test.py), and this needs a log file
    and a load timeout."""
    base = tempfile.mkdtemp(prefix="serving_check_")
    tf.io.gfile.makedirs(log_dir)
    log_path = os.path.join(log_dir, SERVER_LOG)
    port = _free_port()
    server = None
    try:
        if os.path.isdir(model_dir):
            os.symlink(os.path.abspath(model_dir), os.path.join(base, VERSION))
        else:  # a remote artifact (gs://...): the server reads a local copy
            tf.io.gfile.makedirs(os.path.join(base, VERSION))
            for folder, _, files in tf.io.gfile.walk(model_dir):
                target = os.path.join(base, VERSION, os.path.relpath(folder, model_dir))
                tf.io.gfile.makedirs(target)
                for name in files:
                    tf.io.gfile.copy(os.path.join(folder, name), os.path.join(target, name), overwrite=True)
        with open(os.path.join(base, SERVER_LOG), "w") as log:
            server = subprocess.Popen([sys.executable, "-m", "serving.server", "--model-base-path", base,
                                       "--model-name", model_name, "--port", str(port), "--host", "127.0.0.1",
                                       "--poll-seconds", "0"], stdout=log, stderr=subprocess.STDOUT)
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        metadata = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        metadata.model_spec.name = model_name
        deadline, start = time.time() + timeout_seconds, time.time()
        while True:
            if server.poll() is not None:
                return False, f"the server exited with status {server.returncode} while loading the model"
            try:
                stub.GetModelMetadata(metadata, timeout=5)
                break
            except grpc.RpcError:
                if time.time() > deadline:
                    return False, f"the server did not answer within {timeout_seconds:.0f} s"
                time.sleep(0.5)
        loaded = time.time() - start
        vocab_x, vocab_y = feature_spec.read_vocabs(examples_root)
        requests = export.warmup_requests(vocab_x, vocab_y, model_name)
        for number, request in enumerate(requests, 1):
            try:
                response = stub.Predict(request, timeout=max(5.0, deadline - time.time()))
            except grpc.RpcError as e:
                return False, f"request {number} of {len(requests)} failed: {e.code().name}: {e.details()}"
            problem = check_answer(request, response)
            if problem:
                return False, f"request {number} of {len(requests)}: {problem}"
        return True, f"loaded in {loaded:.1f} s and answered {len(requests)} requests"
    finally:
        if server is not None and server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        if os.path.exists(os.path.join(base, SERVER_LOG)):
            tf.io.gfile.copy(os.path.join(base, SERVER_LOG), log_path, overwrite=True)
        shutil.rmtree(base, ignore_errors=True)
