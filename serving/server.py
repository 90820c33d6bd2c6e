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
import logging
import math
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
from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2, prediction_log_pb2, prediction_service_pb2_grpc

logger = logging.getLogger(__name__)
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")  # TF Serving's place for them

DEFAULT_SIGNATURE = "serving_default"
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
# Elements per input tensor, checked on the declared shape before the tensor is built: a string
# TensorProto may carry fewer values than its shape (the last one is repeated), so a request of a
# few bytes could otherwise make the server allocate gigabytes. 1024 users x 4096 ids.
MAX_ELEMENTS = 1024 * 4096
# TF's error codes are gRPC's (tensorflow/core/protobuf/error_codes.proto).
_GRPC_CODES = {code.value[0]: code for code in grpc.StatusCode}


def dtype_name(enum: int) -> str:
    """A DataType enum's name, also for values that are no TF dtype (the field is an open enum)."""
    try:
        return tf.dtypes.as_dtype(enum).name
    except (TypeError, ValueError):
        return f"<invalid DataType {enum}>"


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
        self.warmup_replayed = self._warm_up()

    def _warm_up(self) -> int:
        """Replays the version's `assets.extra/tf_serving_warmup_requests`, as TF Serving does
        on load, so the first real request does not pay for the graph's first run."""
        path = os.path.join(self.path, WARMUP_FILE)
        if not os.path.exists(path):
            return 0
        start, count = time.perf_counter(), 0
        for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
            request = prediction_log_pb2.PredictionLog.FromString(record).predict_log.request
            function = self.functions[request.model_spec.signature_name or DEFAULT_SIGNATURE]
            function(**{name: tf.constant(tf.make_ndarray(proto)) for name, proto in request.inputs.items()})
            count += 1
        logger.info(f"[serve] version {self.version}: {count} warmup requests replayed in "
                    f"{time.perf_counter() - start:.2f}s")
        return count


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict and GetModelMetadata for one model name; other methods stay UNIMPLEMENTED."""

    def __init__(self, model_name: str, model_base_path: str, max_batch_size: int = 1024,
                 max_elements: int = MAX_ELEMENTS):
        self.model_name, self.model_base_path, self.max_batch_size = model_name, model_base_path, max_batch_size
        self.max_elements = max_elements
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
        if spec.version_label:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"Unrecognized servable version label: "
                                                            f"'{spec.version_label}' (this server has no labels)")
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
        batch_sizes = {}
        for name, spec in sorted(sig.inputs.items()):  # the declared dtype and shape, before any allocation
            proto = request.inputs[name]
            if proto.dtype != spec.dtype:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                              f"input '{name}' has dtype {dtype_name(proto.dtype)}, the signature expects "
                              f"{dtype_name(spec.dtype)}")
            problem = self._shape_problem(proto.tensor_shape, spec.tensor_shape)
            if problem:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"input '{name}' {problem}")
            if proto.tensor_shape.dim:
                batch_sizes[name] = proto.tensor_shape.dim[0].size
        if len(set(batch_sizes.values())) > 1:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"inputs disagree on batch size: {sorted(set(batch_sizes.values()))} ({batch_sizes})")
        inputs = {}
        for name in sig.inputs:
            try:
                inputs[name] = tf.make_ndarray(request.inputs[name])
            except Exception as e:  # malformed tensor content
                context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                              f"input '{name}' is not a valid tensor: {type(e).__name__}: {e}")
        wanted = list(request.output_filter) or list(sig.outputs)
        unknown = sorted(set(wanted) - set(sig.outputs))
        if unknown:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"output_filter names unknown outputs {unknown}")
        try:
            outputs = model.functions[signature](**{k: tf.constant(v) for k, v in inputs.items()})
        except tf.errors.OpError as e:  # TF's status, with its code, as TF Serving answers
            context.abort(_GRPC_CODES.get(e.error_code, grpc.StatusCode.UNKNOWN), e.message)
        except (TypeError, ValueError) as e:  # the function's own argument checks
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{type(e).__name__}: {e}")
        response = predict_pb2.PredictResponse()
        response.model_spec.name = self.model_name
        response.model_spec.version.value = model.version
        response.model_spec.signature_name = signature
        for name in wanted:
            response.outputs[name].CopyFrom(tf.make_tensor_proto(outputs[name].numpy()))
        return response

    def _shape_problem(self, shape, spec) -> Optional[str]:
        """What is wrong with a request tensor's declared shape for this signature input, or None."""
        if shape.unknown_rank:
            return "has unknown rank (a TensorProto needs its shape)"
        dims = [d.size for d in shape.dim]
        if any(d < 0 for d in dims):
            return f"has a negative dimension in its shape {dims}"
        want = [d.size for d in spec.dim]
        if not spec.unknown_rank:
            if len(dims) != len(want):
                return f"has rank {len(dims)}, the signature expects rank {len(want)}"
            if any(w >= 0 and d != w for d, w in zip(dims, want)):
                return f"has shape {dims}, the signature expects {[w if w >= 0 else None for w in want]}"
        if dims and dims[0] > self.max_batch_size:
            return f"has batch size {dims[0]}, larger than the maximum {self.max_batch_size}"
        elements = math.prod(dims)
        if elements > self.max_elements:
            return (f"has shape {dims} = {elements} elements, more than the maximum {self.max_elements} "
                    f"(--max-elements)")
        return None

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
          max_batch_size: int = 1024, poll_seconds: float = 30.0, max_elements: int = MAX_ELEMENTS):
    """Starts the server; returns (grpc server, service, bound port). Port 0 picks a free one."""
    service = PredictionService(model_name, model_base_path, max_batch_size, max_elements)
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
                        logger.info(f"[serve] loaded version {version} of '{model_name}'")
                except Exception as e:  # a half-written version directory: keep serving the old one
                    logger.info(f"[serve] reload skipped: {e}")

        threading.Thread(target=poll, daemon=True).start()
    return server, service, bound


def start_process(base_path: str, model_name: str = "i2vae", host: str = "127.0.0.1", extra_args=()):
    """Starts `python -m serving.server` on a free port, as deployed; returns (process, "host:port")
    once it is serving. The caller terminates the process. `extra_args` are more command-line flags
    (e.g. `--max-batch-size 8`)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.Popen([sys.executable, "-m", "serving.server", "--model-base-path", base_path, "--model-name",
                             model_name, "--port", "0", "--host", host, "--poll-seconds", "0", *extra_args],
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
    p.add_argument("--max-elements", type=int, default=MAX_ELEMENTS,
                   help="larger input tensors (batch x history length) are rejected")
    p.add_argument("--poll-seconds", type=float, default=30.0, help="check for a newer version (0 = never)")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    # the ready line on stdout is what `start_process` (and an operator) waits for
    logging.basicConfig(stream=sys.stdout, level=logging.WARNING, format="%(message)s")
    logger.setLevel(logging.INFO)
    server, service, port = serve(args.model_base_path, args.model_name, args.port, args.host, args.workers,
                                  args.max_batch_size, args.poll_seconds, args.max_elements)
    logger.info(f"[serve] '{args.model_name}' version {service.model.version} from {service.model.path} on gRPC "
                f"{args.host}:{port} (signatures {sorted(service.model.functions)})")
    server.wait_for_termination()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
