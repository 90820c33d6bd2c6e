"""batch_mean: the weighted mean of the whole batch, with one replica or several."""
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from models.loss_terms_model import batch_mean
from tests.fresh_process import run_json


def test_one_replica_gives_the_weighted_mean_and_zero_when_nothing_is_selected():
    value = tf.constant([1.0, 2.0, 3.0, 4.0])
    assert float(batch_mean(value, tf.constant([True, False, True, False]))) == pytest.approx(2.0)
    assert float(batch_mean(value, tf.zeros([4], tf.bool))) == 0.0


# Two replicas that hold 3 and 1 of the selected entries: the mean of their losses (what
# the summed, 1/replicas-scaled gradients follow) must be the mean over all 4 entries,
# not the mean of the two replicas' own means.
SCRIPT = textwrap.dedent("""
    import json
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from models.loss_terms_model import batch_mean

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    parts = {0: ([1.0, 2.0, 3.0, 9.0], [1.0, 1.0, 1.0, 0.0]), 1: ([10.0, 7.0, 7.0, 7.0], [1.0, 0.0, 0.0, 0.0])}
    values = strategy.experimental_distribute_values_from_function(
        lambda ctx: (tf.constant(parts[ctx.replica_id_in_sync_group][0]),
                     tf.constant(parts[ctx.replica_id_in_sync_group][1])))
    per_replica = strategy.run(tf.function(lambda v: batch_mean(*v)), args=(values,))
    losses = [float(x) for x in strategy.experimental_local_results(per_replica)]
    print(json.dumps({"losses": losses}))
""")


def test_two_replicas_average_to_the_mean_over_the_whole_batch():
    losses = run_json(SCRIPT)["losses"]
    assert len(losses) == 2
    whole = np.mean([1.0, 2.0, 3.0, 10.0])  # the 4 selected entries of both replicas
    assert np.mean(losses) == pytest.approx(whole)
    assert np.mean(losses) != pytest.approx(np.mean([np.mean([1.0, 2.0, 3.0]), 10.0]))  # per-replica means
