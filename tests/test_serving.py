"""Serving over gRPC: the local PredictionService, the client, status codes and reloads.

The server and the client speak TF Serving's protocol (`tensorflow_serving.apis` protos);
the same client works against the tensorflow/serving image."""
import glob
import json
import os
import shutil
import subprocess
import sys

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

from serving import client
from serving.server import serve, start_process

USERS_X = [["item1", "item2"], [], ["item3", "not-an-item", "item4"], [], ["nope"]]
USERS_Y = [["item0"], ["item2", "item5"], [], [], ["item1"]]  # row 1: cold-start in X; row 3: nothing at all


@pytest.fixture(scope="module")
def server(base_path):
    srv, service, port = serve(base_path, "i2vae", port=0, host="127.0.0.1", max_batch_size=8, poll_seconds=0)
    yield service, f"127.0.0.1:{port}"
    srv.stop(0)


def test_client_matches_in_process_signature(server, base_path):
    _, target = server
    recommender = client.RecommendClient(target, "i2vae")
    got = recommender.recommend(USERS_X, USERS_Y)
    local = tf.saved_model.load(os.path.join(base_path, "1")).signatures["serving_default"]
    want = local(history_x=tf.constant(client.pad_histories(USERS_X).astype(bytes)),
                 history_y=tf.constant(client.pad_histories(USERS_Y).astype(bytes)))
    for i, user in enumerate(got):
        for d in ("x", "y"):
            ids = [b.decode() for b in want[f"top_ids_{d}"].numpy()[i]]
            n = len([i for i in ids if i])  # "" marks slots beyond the items left unseen
            assert [r["item"] for r in user[d]] == ids[:n] and all(not i for i in ids[n:])
            np.testing.assert_allclose([r["score"] for r in user[d]], want[f"top_scores_{d}"].numpy()[i][:n],
                                       rtol=1e-6)
    assert [u["unknown_ids_x"] for u in got] == [0, 0, 1, 0, 1]
    assert not {"item1", "item2"} & {r["item"] for r in got[0]["x"]}  # seen items are not recommended
    assert len(got[1]["x"]) == 10  # cold-start in X still gets X items (through r^y and the pseudo-sequence)
    assert len(got[3]["x"]) == 10  # no history at all: the popularity fallback
    assert recommender.recommend([["item1"]], [[]], k=3)[0]["x"].__len__() == 3
    meta = recommender.metadata()
    assert meta["version"] == 1 and meta["signatures"]["serving_default"]["inputs"] == {
        "history_x": "string", "history_y": "string"}
    assert "score_items" in meta["signatures"]


def _request(**overrides):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = overrides.pop("model", "i2vae")
    request.model_spec.signature_name = overrides.pop("signature", "serving_default")
    inputs = overrides.pop("inputs", {"history_x": client.pad_histories([["item1"]]),
                                      "history_y": client.pad_histories([["item2"]])})
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return request


@pytest.mark.parametrize("request_kwargs,code,message", [
    (dict(inputs={"history_x": client.pad_histories([["item1"]])}), grpc.StatusCode.INVALID_ARGUMENT, "missing"),
    (dict(inputs={"history_x": np.array([[1, 2]]), "history_y": np.array([[3]])}),
     grpc.StatusCode.INVALID_ARGUMENT, "dtype"),
    (dict(inputs={"history_x": client.pad_histories([["item1"]] * 9),
                  "history_y": client.pad_histories([["item2"]] * 9)}),
     grpc.StatusCode.INVALID_ARGUMENT, "batch size 9"),
    (dict(inputs={"history_x": client.pad_histories([["a"]] * 2), "history_y": client.pad_histories([["b"]] * 3)}),
     grpc.StatusCode.INVALID_ARGUMENT, "disagree"),
    (dict(inputs={"history_x": np.array([b"a"], dtype=object), "history_y": client.pad_histories([["b"]])}),
     grpc.StatusCode.INVALID_ARGUMENT, "rank"),
    (dict(signature="predict"), grpc.StatusCode.INVALID_ARGUMENT, "not found in signature def"),
    (dict(model="other"), grpc.StatusCode.NOT_FOUND, "Servable not found"),
])
def test_invalid_requests_get_status_codes_and_server_keeps_serving(server, request_kwargs, code, message):
    _, target = server
    recommender = client.RecommendClient(target, "i2vae")
    with pytest.raises(grpc.RpcError) as err:
        recommender.stub.Predict(_request(**request_kwargs), timeout=10)
    assert err.value.code() == code and message in err.value.details()
    items_y = [r["item"] for r in recommender.recommend([["item1"]], [["item2"]])[0]["y"]]  # the server still answers
    assert len(items_y) == 8 and "item2" not in items_y  # 9 Y items, the seen one excluded, no "" padding


def test_newer_version_is_loaded_and_served(server, base_path):
    service, target = server
    shutil.copytree(os.path.join(base_path, "1"), os.path.join(base_path, "2"))
    assert service.maybe_reload() == 2
    response = client.RecommendClient(target, "i2vae").stub.Predict(_request(), timeout=10)
    assert response.model_spec.version.value == 2
    assert service.maybe_reload() is None


@pytest.mark.slow  # three fresh processes (server, `i2vae recommend`, client); `make test-slow`
def test_server_and_client_commands_in_fresh_processes(base_path):
    """`python -m serving.server` as the README starts it; `i2vae recommend` and `python -m serving.client`
    against it."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc, target = start_process(base_path)
    try:
        out = subprocess.run([sys.executable, "-m", "pipeline.cli", "recommend", "--target", target,
                              "--history-x", "item1,item2", "--history-y", "", "--k", "5"],
                             capture_output=True, text=True, env=env, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        result = json.loads(out.stdout)
        assert len(result["x"]) == 5 and len(result["y"]) == 5 and result["unknown_ids_x"] == 0
        bad = subprocess.run([sys.executable, "-m", "serving.client", "metadata", "--target", target,
                              "--model", "other"], capture_output=True, text=True, env=env, timeout=120)
        assert bad.returncode != 0 and "NOT_FOUND" in bad.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_saved_model_cli_reads_the_signatures(base_path):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    out = subprocess.run([cli, "show", "--dir", os.path.join(base_path, "1"), "--tag_set", "serve",
                          "--signature_def", "serving_default"], capture_output=True, text=True, cwd="/",
                         env=dict(os.environ, PYTHONPATH=""), timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "history_x" in out.stdout and "top_ids_x" in out.stdout and "DT_STRING" in out.stdout


def test_the_export_writes_warmup_requests_that_the_server_replays_on_load(server, base_path):
    """TF Serving's warmup file (`assets.extra/tf_serving_warmup_requests`, PredictionLog
    records): five requests of the default signature, each one the server answers, replayed
    when a version loads."""
    from tensorflow_serving.apis import prediction_log_pb2

    from serving.server import WARMUP_FILE

    service, _ = server
    path = os.path.join(service.model.path, WARMUP_FILE)
    logs = [prediction_log_pb2.PredictionLog.FromString(r) for r in tf.data.TFRecordDataset(path).as_numpy_iterator()]
    requests = [log.predict_log.request for log in logs]
    assert [r.model_spec.signature_name for r in requests] == ["serving_default"] * 5
    assert [r.inputs["history_x"].tensor_shape.dim[0].size for r in requests] == [1, 1, 1, 1, 64]
    assert service.model.warmup_replayed == 5
    for request in requests:
        out = service.model.functions["serving_default"](
            **{name: tf.constant(tf.make_ndarray(proto)) for name, proto in request.inputs.items()})
        assert np.isfinite(out["top_scores_x"].numpy()[:, 0]).all()


@pytest.mark.slow  # two server processes; `make test-slow`
def test_the_serving_check_passes_a_model_that_serves_and_fails_one_with_corrupted_variables(base_path, examples_root,
                                                                                              tmp_path):
    from components.serving_check.executor import check_serving

    good = os.path.join(base_path, "1")
    passed, message = check_serving(good, examples_root, "i2vae", 300, str(tmp_path / "good"))
    assert passed, message
    assert "answered 5 requests" in message
    broken = shutil.copytree(good, tmp_path / "broken")
    for path in glob.glob(os.path.join(broken, "variables", "variables.data-*")):
        with open(path, "r+b") as f:
            f.truncate(16)
    passed, message = check_serving(str(broken), examples_root, "i2vae", 300, str(tmp_path / "bad"))
    assert not passed and "exited" in message, message
    assert os.path.exists(tmp_path / "bad" / "server.log")


@pytest.mark.slow  # two server processes; `make test-slow`
def test_the_serving_bench_times_the_first_request_with_and_without_warmup_records(base_path, tmp_path):
    from experiments.serving_bench import first_requests

    (tmp_path / "test.csv").write_text('user_id,seq_d1,seq_d2,domain_id\n1,"[1, 2]","[3]",0\n')
    first = first_requests(base_path, str(tmp_path), "i2vae", loads=1)
    assert set(first) == {"with", "without"}
    assert all(first[case]["first_ms"] > 0 and first[case]["load_s"] > 0 for case in first)
    assert os.path.exists(os.path.join(base_path, "1", "assets.extra", "tf_serving_warmup_requests"))  # copies only
