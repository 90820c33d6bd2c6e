"""Property tests (hypothesis) of the serving path: the exported signature and the local gRPC server.

Inputs are what a client can send: histories mixing vocabulary ids, unknown strings (unicode, odd
bytes, near-miss ids such as "item1 ", ids of the other domain, 10 kB ids), "" padding anywhere,
batches from 0 to large, lengths from 0 to 500 (the model keeps the last T known ids), and
malformed requests. Nothing may crash; valid inputs give the documented shapes and dtypes
(`models/export.py`: [B, K] string ids and float32 scores per domain, [B] int32 unknown counts,
K = min(10, vocabulary size)), invalid ones a gRPC status naming the problem, and the server keeps
serving. Runs are derandomized so CI sees the same examples every time.
"""
import math
import os

import grpc
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from serving import client
from serving.server import MAX_MESSAGE_BYTES, start_process
from tests.tiny_models import NX, NY, T

VOCAB = {"x": [f"item{i}".encode() for i in range(NX)], "y": [f"item{i}".encode() for i in range(NY)]}
VOCAB_SET = {d: set(v) for d, v in VOCAB.items()}
K = {d: min(10, len(v)) for d, v in VOCAB.items()}  # export_saved_model's top_k=10, at most the vocabulary
OUTPUTS = {f"{kind}_{d}" for kind in ("top_ids", "top_scores", "unknown_ids") for d in ("x", "y")}
MAX_LENGTH = 500
SERVER_MAX_BATCH = 32
SERVER_MAX_ELEMENTS = SERVER_MAX_BATCH * 512  # room for MAX_LENGTH + padding at the largest batch
FUZZ = {"deadline": None, "derandomize": True, "database": None, "print_blob": False,
        "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large,
                                  HealthCheck.function_scoped_fixture]}

# Strings that are no vocabulary id of the domain they are sent in (filtered per domain below).
odd_ids = st.one_of(
    st.text(max_size=16).map(lambda s: s.encode("utf-8")),
    st.binary(min_size=1, max_size=16),
    st.sampled_from([b"item", b"item9", b"item11", b"item12", b"item01", b"ITEM1", b" item1", b"item1 ",
                     b"item1\x00", b"\x00", "ítem1".encode(), "item1\u200b".encode(), b"\xff\xfe\xfd",
                     "\U0001f4a5".encode() * 64, b"x" * 10_000, b"-1", b"0", b"nan", b"\n"]))


@st.composite
def histories(draw, max_batch, min_batch=1):
    """{"x": rows, "y": rows}, each row a list of bytes tokens (known ids, unknown ids, "" padding).

    Hypothesis picks the sizes, the mix and the odd strings; numpy (seeded by hypothesis) fills
    rows of up to MAX_LENGTH tokens, which would be slow to draw token by token."""
    batch = draw(st.one_of(st.integers(min_batch, 4), st.sampled_from([min_batch, 1, max_batch])))
    longest = draw(st.one_of(st.integers(0, 2 * T + 1), st.sampled_from([MAX_LENGTH]), st.integers(0, MAX_LENGTH)))
    pool = draw(st.lists(odd_ids, min_size=1, max_size=6))
    weights = np.array(draw(st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3))), float)
    weights = weights / weights.sum() if weights.sum() else np.array([0.0, 0.0, 1.0])  # known, unknown, ""
    empty = draw(st.sampled_from(["none", "none", "x", "y", "both"]))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    rows = {}
    for d in ("x", "y"):
        unknown = [u for u in pool if u and u not in VOCAB_SET[d]] or [b"not-an-item"]
        rows[d] = []
        for i in range(batch):
            n = 0 if empty in (d, "both") else (longest if i == 0 else int(rng.integers(0, longest + 1)))
            kinds = rng.choice(3, size=n, p=weights)
            known, unk = rng.integers(0, len(VOCAB[d]), n), rng.integers(0, len(unknown), n)
            rows[d].append([VOCAB[d][a] if k == 0 else unknown[b] if k == 1 else b""
                            for k, a, b in zip(kinds, known, unk)])
    return rows, draw(st.integers(0, 3))  # and extra "" columns beyond the longest row


def _long_rows(batch, length):
    cycle = [VOCAB["x"][3], b"", "\u00e9t\u00e9".encode(), VOCAB["x"][7], b"\xff", VOCAB["y"][1], b"item11"]
    return [[cycle[(i + j) % len(cycle)] for j in range(length)] for i in range(batch)]


# Edge cases run on every run, whatever hypothesis draws: an empty batch, a user with nothing (width
# 0), only padding and unknown ids (the popularity fallback), one very long history with a cold
# start in Y, and the largest batch of MAX_LENGTH ids (ids of one domain are unknown in the other).
EDGES = [({"x": [], "y": []}, 0), ({"x": [[]], "y": [[]]}, 0), ({"x": [[b""] * 3], "y": [[b"nope", b""]]}, 2),
         ({"x": [VOCAB["x"] * 40 + [b"\xff"]], "y": [[]]}, 0)]


def padded(rows, extra=0):
    """Rows of bytes -> [B, W] object array padded with b"" (W may be 0)."""
    width = max([len(r) for r in rows] + [0]) + extra
    out = np.full((len(rows), width), b"", dtype=object)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


def call(signature, rows, extra=0):
    out = signature(history_x=tf.constant(padded(rows["x"], extra), tf.string),
                    history_y=tf.constant(padded(rows["y"], extra), tf.string))
    for d in ("x", "y"):
        assert out[f"top_ids_{d}"].dtype == tf.string and out[f"top_scores_{d}"].dtype == tf.float32
        assert out[f"unknown_ids_{d}"].dtype == tf.int32
    return {k: v.numpy() for k, v in out.items()}


def check_contract(out, rows):
    """Shapes and dtypes, then per row and domain: the unseen-item count decides how many ids are
    real, real ids are distinct vocabulary ids outside the last T known ids, with finite scores in
    descending order; the remaining slots are "" with -inf; unknown ids are counted."""
    assert set(out) == OUTPUTS
    batch = len(rows["x"])
    for d in ("x", "y"):
        ids, scores, unknown = out[f"top_ids_{d}"], out[f"top_scores_{d}"], out[f"unknown_ids_{d}"]
        assert ids.shape == (batch, K[d]) and scores.shape == (batch, K[d]) and unknown.shape == (batch,)
        assert ids.dtype == object and scores.dtype == np.float32 and unknown.dtype == np.int32
        for i, row in enumerate(rows[d]):
            seen = set([t for t in row if t in VOCAB_SET[d]][-T:])
            n = min(K[d], len(VOCAB[d]) - len(seen))
            got = list(ids[i])
            assert all(isinstance(t, bytes) for t in got), (d, i, got)
            assert all(got[:n]) and not any(got[n:]), (d, i, got, n)
            assert set(got[:n]) <= VOCAB_SET[d] and len(set(got[:n])) == n and not seen & set(got[:n]), (d, i, got)
            assert np.isfinite(scores[i, :n]).all() and (scores[i, n:] == -np.inf).all(), (d, i, scores[i])
            assert (np.diff(scores[i, :n]) <= 0).all(), (d, i, scores[i])
            assert unknown[i] == sum(1 for t in row if t and t not in VOCAB_SET[d]), (d, i, unknown[i])


def assert_same_recommendations(a, b):
    for d in ("x", "y"):
        np.testing.assert_array_equal(a[f"top_ids_{d}"], b[f"top_ids_{d}"])
        np.testing.assert_allclose(a[f"top_scores_{d}"], b[f"top_scores_{d}"], rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def signature(base_path):
    return tf.saved_model.load(os.path.join(base_path, "1")).signatures["serving_default"]


@pytest.fixture(scope="module")
def server(base_path):
    """`python -m serving.server` in its own process, as deployed: a crash shows as a dead process."""
    proc, target = start_process(base_path, extra_args=["--max-batch-size", str(SERVER_MAX_BATCH),
                                                        "--max-elements", str(SERVER_MAX_ELEMENTS)])
    recommender = client.RecommendClient(target, "i2vae", timeout=60)
    yield proc, target, recommender
    recommender.close()
    proc.terminate()
    proc.wait(timeout=30)


@settings(max_examples=40, **FUZZ)
@given(data=histories(max_batch=256, min_batch=0))
@example(data=EDGES[0])
@example(data=EDGES[1])
@example(data=EDGES[2])
@example(data=EDGES[3])
@example(data=({"x": _long_rows(256, MAX_LENGTH), "y": _long_rows(256, MAX_LENGTH)[::-1]}, 1))
def test_signature_fuzz_contract_and_unknown_ids_ignored(signature, data):
    """The SavedModel signature on its own (plain tf.saved_model.load): the output contract holds for
    any mix of ids, and a batch gives the same recommendations with its unknown ids and padding
    removed, and again with each row cut to its last T known ids (what the model reads); a row
    alone gets what it got inside the batch."""
    rows, extra = data
    out = call(signature, rows, extra)
    check_contract(out, rows)
    known = {d: [[t for t in r if t in VOCAB_SET[d]] for r in rows[d]] for d in rows}
    clean = call(signature, known)
    assert_same_recommendations(out, clean)
    assert not clean["unknown_ids_x"].any() and not clean["unknown_ids_y"].any()
    assert_same_recommendations(out, call(signature, {d: [r[-T:] for r in known[d]] for d in known}))
    if rows["x"]:
        alone = call(signature, {d: rows[d][-1:] for d in rows}, extra)
        assert_same_recommendations({k: v[-1:] for k, v in out.items()}, alone)


def as_client_ids(row, mode):
    """What a caller might hand `recommend`: bytes, or text where the bytes are UTF-8 ("mixed": every
    other token as text)."""
    out = []
    for j, t in enumerate(row):
        if mode == "text" or (mode == "mixed" and j % 2):
            try:
                t = t.decode("utf-8")
            except UnicodeDecodeError:
                pass
        out.append(t)
    return out


@settings(max_examples=30, **FUZZ)
@given(data=histories(max_batch=SERVER_MAX_BATCH, min_batch=0), k=st.integers(0, 12),
       mode=st.sampled_from(["text", "bytes", "mixed"]))
@example(data=EDGES[0], k=10, mode="text")
@example(data=EDGES[1], k=0, mode="bytes")
@example(data=EDGES[2], k=12, mode="mixed")
@example(data=({"x": _long_rows(SERVER_MAX_BATCH, MAX_LENGTH), "y": _long_rows(SERVER_MAX_BATCH, 3)}, 3), k=5,
         mode="bytes")
def test_server_fuzz_valid_requests_match_signature(server, signature, data, k, mode):
    """Raw Predict over gRPC answers exactly what the signature answers in process, with the same
    contract (batch 0 included); `recommend` with text/bytes ids returns the same items, at most k."""
    proc, _, recommender = server
    rows, extra = data
    out = recommender.predict({"history_x": padded(rows["x"], extra), "history_y": padded(rows["y"], extra)})
    check_contract(out, rows)
    want = call(signature, rows, extra)
    assert_same_recommendations(out, want)
    for d in ("x", "y"):
        np.testing.assert_array_equal(out[f"unknown_ids_{d}"], want[f"unknown_ids_{d}"])
    users = recommender.recommend([as_client_ids(r, mode) for r in rows["x"]],
                                  [as_client_ids(r, mode) for r in rows["y"]], k=k)
    assert len(users) == len(rows["x"])
    for i, user in enumerate(users):
        for d in ("x", "y"):
            items = [t.decode() for t in want[f"top_ids_{d}"][i][:k] if t]
            assert [r["item"] for r in user[d]] == items
            assert all(math.isfinite(r["score"]) for r in user[d])
            assert user[f"unknown_ids_{d}"] == want[f"unknown_ids_{d}"][i]
    assert proc.poll() is None


def string_proto(dims, values=(), content=b""):
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, tensor_content=content)
    for size in dims:
        proto.tensor_shape.dim.add(size=size)
    proto.string_val.extend(values)
    return proto


NAMES = ["history_x", "history_y"]
INVALID = grpc.StatusCode.INVALID_ARGUMENT


MALFORMED = ["missing", "extra", "renamed", "numeric dtype", "invalid dtype", "empty tensor", "rank", "unknown rank",
             "negative dim", "batch mismatch", "batch over", "elements over", "declared huge", "too many values",
             "tensor_content", "model", "version", "version label", "signature", "score_items inputs",
             "output filter"]


@st.composite
def malformed_requests(draw, what):
    """(request, expected status code, [fragments of the expected message]): a valid request with
    one thing (`what`) broken. Declared sizes over the limits are either just over them (cheap to
    build if a regression lets them through) or >= 2**36 elements (an allocation that fails at once)."""
    rows, _ = draw(histories(max_batch=4))
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "i2vae"
    request.model_spec.signature_name = draw(st.sampled_from(["", "serving_default"]))
    values = {"history_x": padded(rows["x"]), "history_y": padded(rows["y"])}
    for name, value in values.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    batch = len(rows["x"])
    name = draw(st.sampled_from(NAMES))
    other = NAMES[1 - NAMES.index(name)]
    inputs = request.inputs
    if what == "missing":
        del inputs[name]
        return request, INVALID, ["missing", name]
    if what == "extra":
        extra = draw(st.text(max_size=12).filter(lambda s: s not in NAMES))
        inputs[extra].CopyFrom(tf.make_tensor_proto(values[name]))
        return request, INVALID, ["unexpected", repr([extra])]
    if what == "renamed":
        renamed = draw(st.sampled_from([name.upper(), name + " ", name[:-1] + "z", "inputs", ""]))
        inputs[renamed].CopyFrom(inputs[name])
        del inputs[name]
        return request, INVALID, ["missing", "unexpected", name]
    if what == "numeric dtype":
        dtype = draw(st.sampled_from([np.int32, np.int64, np.float32, np.float64, np.bool_, np.uint8]))
        shape = draw(st.tuples(st.integers(0, 4), st.integers(0, 6)))
        inputs[name].CopyFrom(tf.make_tensor_proto(np.ones(shape, dtype)))
        return request, INVALID, [f"input '{name}' has dtype", "expects string"]
    if what == "invalid dtype":
        inputs[name].dtype = draw(st.sampled_from([0, 99, 107, 999, 2 ** 20]))
        return request, INVALID, [f"input '{name}' has dtype"]
    if what == "empty tensor":
        inputs[name].CopyFrom(tensor_pb2.TensorProto())
        return request, INVALID, [f"input '{name}' has dtype"]
    if what == "rank":
        shape = draw(st.sampled_from([(), (3,), (batch, 2, 1), (1, 1, 1, 1)]))
        inputs[name].CopyFrom(tf.make_tensor_proto(np.full(shape, b"item1", dtype=object)))
        return request, INVALID, [f"input '{name}' has rank {len(shape)}", "expects rank 2"]
    if what == "unknown rank":
        inputs[name].tensor_shape.unknown_rank = True
        return request, INVALID, [f"input '{name}' has unknown rank"]
    if what == "negative dim":
        dims = inputs[name].tensor_shape.dim
        dims[draw(st.integers(0, 1))].size = draw(st.sampled_from([-1, -2, -(2 ** 40)]))
        return request, INVALID, [f"input '{name}'", "negative dimension"]
    if what == "batch mismatch":
        size = draw(st.integers(0, SERVER_MAX_BATCH).filter(lambda b: b != batch))
        inputs[other].CopyFrom(tf.make_tensor_proto(np.full((size, 2), b"item1", dtype=object)))
        return request, INVALID, ["disagree on batch size", str(size), str(batch)]
    if what == "batch over":
        size = draw(st.sampled_from([SERVER_MAX_BATCH + 1, 1000, 2 ** 40]))
        inputs[name].CopyFrom(string_proto([size, 1], [b"item1"] if size > 1000 else [b"item1"] * size))
        return request, INVALID, [f"input '{name}' has batch size {size}", str(SERVER_MAX_BATCH)]
    if what == "elements over":  # every value sent: a big request, still under the gRPC size limit
        rows_over = draw(st.sampled_from([1, 7, SERVER_MAX_BATCH]))
        width = SERVER_MAX_ELEMENTS // rows_over + 1
        for n in NAMES:
            inputs[n].CopyFrom(tf.make_tensor_proto(np.full((rows_over, width), b"item3", dtype=object)))
        return request, INVALID, ["history_x", f"{rows_over * width} elements", str(SERVER_MAX_ELEMENTS)]
    if what == "declared huge":  # a few bytes on the wire, huge once the last value is repeated
        dims = draw(st.sampled_from([[1, SERVER_MAX_ELEMENTS + 1], [2, 2 ** 40], [SERVER_MAX_BATCH, 2 ** 36],
                                     [1, 2 ** 62], [batch, 2 ** 50]]))
        inputs[name].CopyFrom(string_proto(dims, draw(st.sampled_from([[], [b"item1"], [b"", b"x"]]))))
        if dims[0] != batch:
            inputs[other].CopyFrom(string_proto([dims[0], 1], [b""] * dims[0]))
        return request, INVALID, [f"input '{name}' has shape", "elements", str(SERVER_MAX_ELEMENTS)]
    if what == "too many values":
        dims = [batch, draw(st.integers(0, 3))]
        inputs[name].CopyFrom(string_proto(dims, [b"item1"] * (dims[0] * dims[1] + draw(st.integers(1, 3)))))
        return request, INVALID, [f"input '{name}' is not a valid tensor"]
    if what == "tensor_content":
        inputs[name].CopyFrom(string_proto([batch, 1], content=draw(st.binary(min_size=1, max_size=64))))
        return request, INVALID, [f"input '{name}' is not a valid tensor"]
    if what == "model":
        request.model_spec.name = draw(st.text(max_size=12).filter(lambda s: s != "i2vae"))
        return request, grpc.StatusCode.NOT_FOUND, ["Servable not found", "'i2vae'"]
    if what == "version":
        request.model_spec.version.value = draw(st.sampled_from([0, 2, 7, -1, 2 ** 62]))
        return request, grpc.StatusCode.NOT_FOUND, ["Servable not found", "version"]
    if what == "version label":
        request.model_spec.version_label = draw(st.text(min_size=1, max_size=12))
        return request, INVALID, ["version label"]
    if what == "signature":
        request.model_spec.signature_name = draw(st.text(min_size=1, max_size=12).filter(
            lambda s: s not in ("serving_default", "score_items")))
        return request, INVALID, ["not found in signature def", "serving_default"]
    if what == "score_items inputs":  # the evaluator's signature wants index tensors
        request.model_spec.signature_name = "score_items"
        return request, INVALID, ["missing", "pseudo_x"]
    assert what == "output filter"
    request.output_filter.extend(["top_ids_x", draw(st.text(max_size=12).filter(lambda s: s not in OUTPUTS))])
    return request, INVALID, ["output_filter", "unknown outputs"]


@pytest.mark.parametrize("what", MALFORMED)
@settings(max_examples=6, **FUZZ)
@given(data=st.data())
def test_server_fuzz_malformed_requests_get_status_and_server_keeps_serving(server, what, data):
    """Each kind of malformed request (every kind runs, hypothesis varies the rest) gets its status
    code with a message naming the problem (not UNKNOWN from an exception, not an answer), and the
    same process then serves a valid request."""
    proc, _, recommender = server
    request, code, fragments = data.draw(malformed_requests(what), label="request")
    with pytest.raises(grpc.RpcError) as err:
        recommender.stub.Predict(request, timeout=60)
    assert err.value.code() == code, (what, err.value.code(), err.value.details())
    for fragment in fragments:
        assert fragment in err.value.details(), (what, fragment, err.value.details())
    assert proc.poll() is None
    users = recommender.recommend([["item1", "nope"]], [[]], k=3)
    assert [len(users[0]["x"]), len(users[0]["y"]), users[0]["unknown_ids_x"]] == [3, 3, 1]


def test_server_messages_near_and_over_the_grpc_size_limit(server):
    """A request just under the 64 MiB message limit (four ids of ~16 MB, unknown) is served; one
    just over it gets RESOURCE_EXHAUSTED from gRPC, and the server keeps serving."""
    proc, target, recommender = server
    size = (MAX_MESSAGE_BYTES - 2 ** 20) // 4
    near = np.array([[b"a" * size], [b"b" * size]], dtype=object)
    out = recommender.predict({"history_x": near, "history_y": near})
    check_contract(out, {"x": [[near[0, 0]], [near[1, 0]]], "y": [[near[0, 0]], [near[1, 0]]]})
    del near, out
    channel = grpc.insecure_channel(target, options=[("grpc.max_send_message_length", 2 * MAX_MESSAGE_BYTES)])
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "i2vae"
    over = np.array([[b"c" * (MAX_MESSAGE_BYTES // 4 + 2 ** 16)]] * 2, dtype=object)
    for name in NAMES:
        request.inputs[name].CopyFrom(tf.make_tensor_proto(over))
    with pytest.raises(grpc.RpcError) as err:
        prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=60)
    channel.close()
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.value.details()
    assert "larger than max" in err.value.details()
    assert proc.poll() is None
    assert len(recommender.recommend([["item1"]], [["item2"]])[0]["y"]) == NY - 1
