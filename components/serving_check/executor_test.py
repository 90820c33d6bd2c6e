"""The serving check's verdict on an answer: [batch, K] ids and scores, finite scores except
the -inf of an empty slot."""
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

from components.serving_check.executor import check_answer
from models import feature_spec


def _exchange(batch, ids, scores):
    request = predict_pb2.PredictRequest()
    request.inputs[feature_spec.HISTORY_X].CopyFrom(tf.make_tensor_proto(np.array([[b"a"]] * batch, dtype=object)))
    response = predict_pb2.PredictResponse()
    for domain in ("x", "y"):
        response.outputs[f"top_ids_{domain}"].CopyFrom(tf.make_tensor_proto(np.array(ids, dtype=object)))
        response.outputs[f"top_scores_{domain}"].CopyFrom(tf.make_tensor_proto(np.array(scores, np.float32)))
    return request, response


def test_a_full_answer_passes_and_an_empty_slot_may_score_minus_infinity():
    assert check_answer(*_exchange(1, [[b"i1", b"i2"]], [[0.5, 0.1]])) == ""
    assert check_answer(*_exchange(1, [[b"i1", b""]], [[0.5, -np.inf]])) == ""


def test_nan_scores_a_wrong_batch_or_a_missing_output_fail():
    assert "not finite" in check_answer(*_exchange(1, [[b"i1", b"i2"]], [[np.nan, 0.1]]))
    assert "not finite" in check_answer(*_exchange(1, [[b"i1", b"i2"]], [[-np.inf, 0.1]]))  # a real id
    assert "not [2, K]" in check_answer(*_exchange(2, [[b"i1", b"i2"]], [[0.5, 0.1]]))
    request, response = _exchange(1, [[b"i1"]], [[0.5]])
    del response.outputs["top_scores_y"]
    assert "has no top_scores_y" in check_answer(request, response)
