"""A local server that speaks TF Serving's PredictionService gRPC protocol.

Production serves the pushed SavedModel with the tensorflow/serving image (see
`serving/docker-compose.yml`). This server exists so developers and tests can exercise
the real client and wire format (`tensorflow_serving.apis` protos over gRPC) without
Docker: it implements `Predict` and `GetModelMetadata`, loads the newest numeric version
directory under the model base path with plain TensorFlow (no project code), polls for
newer versions like TF Serving does, and answers bad requests with TF Serving's status
codes while it keeps serving.

    python -m serving.server --model-base-path runs/demo/serving_model/i2vae --port 8500
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import threading
import time
from concurrent import futures
from typing import Optional, Tuple

import grpc
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2, prediction_service_pb2_grpc

DEFAULT_SIGNATURE = "serving_default"
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def newest_version(model_base_path: str) -> Tuple[int, str]:
    """The highest numeric version directory holding a saved_model.pb (TF Serving's default policy)."""
    if not os.path.isdir(model_base_path):
        raise FileNotFoundError(f"model base path {model_base_path} does not exist")
    versions = [int(d) for d in os.listdir(model_base_path)
                if d.isdigit() and os.path.exists(os.path.join(model_base_path, d, "saved_model.pb"))]
    if not versions:
        raise FileNotFoundError(f"no version directory <n>/saved_model.pb under {model_base_path}")
    v = max(versions)
    return v, os.path.join(model_base_path, str(v))


class LoadedModel:
    """One loaded version: its signatures (callables and their SignatureDef protos)."""

    def __init__(self, version: int, path: str):
        self.version, self.path = version, path
        self.loaded = tf.saved_model.load(path)
        proto = saved_model_pb2.SavedModel()
        with open(os.path.join(path, "saved_model.pb"), "rb") as f:
            proto.ParseFromString(f.read())
        self.signature_defs = {k: v for k, v in proto.meta_graphs[0].signature_def.items()
                               if not k.startswith("__")}
        self.functions = {k: self.loaded.signatures[k] for k in self.signature_defs}


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict and GetModelMetadata for one model name; other methods stay UNIMPLEMENTED."""

    def __init__(self, model_name: str, model_base_path: str, max_batch_size: int = 1024):
        self.model_name, self.model_base_path, self.max_batch_size = model_name, model_base_path, max_batch_size
        self._model = LoadedModel(*newest_version(model_base_path))
        self._lock = threading.Lock()

    @property
    def model(self) -> LoadedModel:
        return self._model

    def maybe_reload(self) -> Optional[int]:
        """Loads a newer version if one appeared; the old one serves until the swap."""
        version, path = newest_version(self.model_base_path)
        if version > self._model.version:
            fresh = LoadedModel(version, path)
            with self._lock:
                self._model = fresh
            return version
        return None

    def _resolve(self, spec, context) -> Tuple[LoadedModel, str]:
        model = self._model
        if spec.name != self.model_name:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: model '{spec.name}' "
                                                     f"(this server serves '{self.model_name}')")
        if spec.HasField("version") and spec.version.value != model.version:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: version "
                                                     f"{spec.version.value} of '{spec.name}' (loaded: {model.version})")
        signature = spec.signature_name or DEFAULT_SIGNATURE
        if signature not in model.functions:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"Serving signature name: '{signature}' not found in "
                                                            f"signature def (known: {sorted(model.functions)})")
        return model, signature

    def Predict(self, request, context):
        model, signature = self._resolve(request.model_spec, context)
        sig = model.signature_defs[signature]
        missing = sorted(set(sig.inputs) - set(request.inputs))
        extra = sorted(set(request.inputs) - set(sig.inputs))
        if missing or extra:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"signature '{signature}' expects inputs {sorted(sig.inputs)}; missing {missing}, "
                          f"unexpected {extra}")
        inputs = {}
        for name, spec in sig.inputs.items():
            proto = request.inputs[name]
            if proto.dtype != spec.dtype:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                              f"input '{name}' has dtype {tf.dtypes.as_dtype(proto.dtype).name}, the signature "
                              f"expects {tf.dtypes.as_dtype(spec.dtype).name}")
            try:
                value = tf.make_ndarray(proto)
            except Exception as e:  # malformed tensor content
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"input '{name}' is not a valid tensor: {e}")
            want_rank = len(spec.tensor_shape.dim)
            if not spec.tensor_shape.unknown_rank and value.ndim != want_rank:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                              f"input '{name}' has rank {value.ndim}, the signature expects rank {want_rank}")
            if value.ndim and value.shape[0] > self.max_batch_size:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                              f"input '{name}' has batch size {value.shape[0]}, larger than the maximum "
                              f"{self.max_batch_size}")
            inputs[name] = value
        sizes = {v.shape[0] for v in inputs.values() if v.ndim}
        if len(sizes) > 1:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"inputs disagree on batch size: {sorted(sizes)}")
        wanted = list(request.output_filter) or list(sig.outputs)
        unknown = sorted(set(wanted) - set(sig.outputs))
        if unknown:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"output_filter names unknown outputs {unknown}")
        try:
            outputs = model.functions[signature](**{k: tf.constant(v) for k, v in inputs.items()})
        except tf.errors.InvalidArgumentError as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, e.message)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = self.model_name
        response.model_spec.version.value = model.version
        response.model_spec.signature_name = signature
        for name in wanted:
            response.outputs[name].CopyFrom(tf.make_tensor_proto(outputs[name].numpy()))
        return response

    def GetModelMetadata(self, request, context):
        model, _ = self._resolve(request.model_spec, context)
        fields = list(request.metadata_field)
        if fields != ["signature_def"]:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"metadata_field must be ['signature_def'], found {fields}")
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for name, sig in model.signature_defs.items():
            signature_map.signature_def[name].CopyFrom(sig)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = self.model_name
        response.model_spec.version.value = model.version
        response.metadata["signature_def"].Pack(signature_map)
        return response


def serve(model_base_path: str, model_name: str, port: int = 8500, host: str = "0.0.0.0", workers: int = 4,
          max_batch_size: int = 1024, poll_seconds: float = 30.0):
    """Starts the server; returns (grpc server, service, bound port). Port 0 picks a free one."""
    service = PredictionService(model_name, model_base_path, max_batch_size)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers),
                         options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                                  ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)])
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(service, server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"could not bind {host}:{port}")
    server.start()
    if poll_seconds > 0:
        def poll():
            while True:
                time.sleep(poll_seconds)
                try:
                    version = service.maybe_reload()
                    if version is not None:
                        print(f"[serve] loaded version {version} of '{model_name}'", flush=True)
                except Exception as e:  # a half-written version directory: keep serving the old one
                    print(f"[serve] reload skipped: {e}", flush=True)

        threading.Thread(target=poll, daemon=True).start()
    return server, service, bound


def start_process(base_path: str, model_name: str = "i2vae", host: str = "127.0.0.1"):
    """Starts `python -m serving.server` on a free port, as deployed; returns (process, "host:port")
    once it is serving. The caller terminates the process."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.Popen([sys.executable, "-m", "serving.server", "--model-base-path", base_path, "--model-name",
                             model_name, "--port", "0", "--host", host, "--poll-seconds", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    line = ""
    while "on gRPC" not in line:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("the server exited before it was ready")
    port = re.search(re.escape(host) + r":(\d+)", line).group(1)
    return proc, f"{host}:{port}"


def build_parser():
    p = argparse.ArgumentParser(prog="python -m serving.server", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model-base-path", required=True, help="directory holding <version>/saved_model.pb")
    p.add_argument("--model-name", default="i2vae")
    p.add_argument("--port", type=int, default=8500)
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--workers", type=int, default=4, help="request threads")
    p.add_argument("--max-batch-size", type=int, default=1024, help="larger requests are rejected")
    p.add_argument("--poll-seconds", type=float, default=30.0, help="check for a newer version (0 = never)")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    server, service, port = serve(args.model_base_path, args.model_name, args.port, args.host, args.workers,
                                  args.max_batch_size, args.poll_seconds)
    print(f"[serve] '{args.model_name}' version {service.model.version} from {service.model.path} on gRPC "
          f"{args.host}:{port} (signatures {sorted(service.model.functions)})", flush=True)
    server.wait_for_termination()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
