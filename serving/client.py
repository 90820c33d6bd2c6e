"""gRPC client for the served i2VAE (TF Serving's PredictionService, `tensorflow-serving-api`).

Library:
    client = RecommendClient("localhost:8500", model_name="i2vae")
    client.recommend([["item1", "item2"]], [["item9"]], k=10)   # one dict per user

CLI:
    python -m serving.client recommend --target localhost:8500 --history-x 123,456 --history-y 789 --k 10
    python -m serving.client metadata --target localhost:8500
    (or i2vae recommend ... / i2vae metadata ...)
The histories are raw item ids as in the training data, oldest first; pass an empty
`--history-y ""` for a user with no history in that domain (the cold-start path).
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Dict, List, Optional, Sequence

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2, prediction_service_pb2_grpc

from serving.server import DEFAULT_SIGNATURE, MAX_MESSAGE_BYTES


def item_bytes(item) -> bytes:
    """One raw item id as the signature's string: bytes as they are, text as UTF-8, anything else
    (an int id) through str(). Lone surrogates are passed through ("surrogatepass") rather than
    failing: such an id is in no vocabulary and the model counts it as unknown."""
    if isinstance(item, (bytes, bytearray, np.bytes_)):
        return bytes(item)
    return str(item).encode("utf-8", "surrogatepass")


def pad_histories(histories: Sequence[Sequence[str]]) -> np.ndarray:
    """Ragged lists of ids -> a [B, L] string array padded with "" (L >= 1)."""
    width = max([len(h) for h in histories] + [1])
    out = np.full((len(histories), width), b"", dtype=object)
    for i, h in enumerate(histories):
        for j, item in enumerate(h):
            out[i, j] = item_bytes(item)
    return out


class RecommendClient:
    """Calls `Predict` on the served model's default signature (see models/export.py)."""

    def __init__(self, target: str = "localhost:8500", model_name: str = "i2vae", timeout: float = 10.0,
                 signature_name: str = DEFAULT_SIGNATURE, version: Optional[int] = None):
        self.model_name, self.timeout, self.signature_name, self.version = model_name, timeout, signature_name, version
        self.channel = grpc.insecure_channel(target, options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                                                              ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)])
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)

    def _spec(self, spec):
        spec.name = self.model_name
        spec.signature_name = self.signature_name
        if self.version is not None:
            spec.version.value = self.version

    def predict(self, inputs: Dict[str, np.ndarray], output_filter: Sequence[str] = ()) -> Dict[str, np.ndarray]:
        """Raw Predict: numpy inputs in, numpy outputs out."""
        request = predict_pb2.PredictRequest()
        self._spec(request.model_spec)
        for name, value in inputs.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
        request.output_filter.extend(output_filter)
        response = self.stub.Predict(request, timeout=self.timeout)
        return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}

    def recommend(self, history_x: Sequence[Sequence[str]], history_y: Sequence[Sequence[str]],
                  k: Optional[int] = None) -> List[Dict]:
        """Top-k items per domain for each user (k at most the exported K)."""
        if len(history_x) != len(history_y):
            raise ValueError(f"history_x has {len(history_x)} users, history_y {len(history_y)}")
        if k is not None and k < 0:
            raise ValueError(f"k must be >= 0, got {k}")
        out = self.predict({"history_x": pad_histories(history_x), "history_y": pad_histories(history_y)})
        users = []
        for i in range(len(history_x)):
            user = {}
            for d in ("x", "y"):
                ids = [b.decode() for b in out[f"top_ids_{d}"][i][:k]]
                user[d] = [{"item": item, "score": float(s)} for item, s in zip(ids, out[f"top_scores_{d}"][i][:k])
                           if item]  # "" fills the slots beyond the items left unseen
                user[f"unknown_ids_{d}"] = int(out[f"unknown_ids_{d}"][i])
            users.append(user)
        return users

    def metadata(self) -> Dict:
        """The served signatures: {name: {"inputs": {...}, "outputs": {...}}} with dtypes."""
        request = get_model_metadata_pb2.GetModelMetadataRequest()
        self._spec(request.model_spec)
        request.metadata_field.append("signature_def")
        response = self.stub.GetModelMetadata(request, timeout=self.timeout)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        return {"model": response.model_spec.name, "version": response.model_spec.version.value,
                "signatures": {name: {"inputs": {k: tf.dtypes.as_dtype(v.dtype).name for k, v in sig.inputs.items()},
                                      "outputs": {k: tf.dtypes.as_dtype(v.dtype).name for k, v in sig.outputs.items()}}
                               for name, sig in signature_map.signature_def.items()}}

    def close(self):
        self.channel.close()


def _ids(text: str) -> List[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def build_parser():
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--target", default="localhost:8500", help="host:port of TF Serving's gRPC endpoint")
    common.add_argument("--model", default="i2vae", help="model name")
    common.add_argument("--timeout", type=float, default=10.0, help="seconds")
    p = argparse.ArgumentParser(prog="python -m serving.client", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("recommend", help="top-K items per domain for one user", parents=[common],
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    rec.add_argument("--history-x", default="", help="comma-separated raw item ids of domain X, oldest first")
    rec.add_argument("--history-y", default="", help="comma-separated raw item ids of domain Y, oldest first")
    rec.add_argument("--k", type=int, default=10, help="items per domain (at most the exported K)")
    sub.add_parser("metadata", help="the served signatures", parents=[common],
                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    client = RecommendClient(args.target, args.model, args.timeout)
    try:
        if args.command == "recommend":
            result = client.recommend([_ids(args.history_x)], [_ids(args.history_y)], args.k)[0]
        else:
            result = client.metadata()
    except grpc.RpcError as e:
        sys.exit(f"error: {e.code().name}: {e.details()}")
    finally:
        client.close()
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
