"""AtomicPusher: TFX's standard Pusher with the executor in `executor.py`, which copies the
SavedModel under a hidden name and renames it into place, so TF Serving never sees a
partial version."""
from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec

from components.pusher import executor


def AtomicPusher(model, model_blessing, infra_blessing, base_directory: str) -> tfx.components.Pusher:
    """Pushes the `model` blessed by the evaluator and the serving check to
    `<base_directory>/<version>/` (TF Serving's layout)."""
    return tfx.components.Pusher(
        model=model,
        model_blessing=model_blessing,
        infra_blessing=infra_blessing,
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=base_directory)),
        custom_executor_spec=executor_spec.ExecutorClassSpec(executor.Executor),
    )
