"""A run killed during training completes when the same command is run again, reusing
TFX's cached upstream outputs, and the killed Trainer's partial output is never taken
as the model.

The command is the CLI's `run` on a tiny synthetic long table, in its own process group;
the whole group is SIGKILLed once the trainer has printed its first epoch,
then run again unchanged. ML Metadata (metadata.db) must then show: the first run's
Trainer never completed; in the second run every upstream component CACHED and the
Trainer, evaluator and Pusher COMPLETE; one LIVE Model, the second Trainer's, which is
the one the evaluator and the Pusher read. On disk, the killed Trainer's directory is
left unpublished and without `training_history.json` (written last by run_fn).
"""
import glob
import os
import signal
import subprocess
import sys
import threading

import pytest
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as mlmd
from tfx import v1 as tfx

from components.ingest import synthetic
from pipeline.local_runner import latest_output, latest_version

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTINGS = ["train.epochs=3", "train.batch_size=64", "model.embedding_dim=8", "model.latent_dim=4", "model.num_heads=2",
            "model.num_blocks=1", "lightgcn.max_epochs=2", "lightgcn.eval_every=2", "data.max_len=4",
            "data.pseudo_len=6", "eval.num_negatives=50"]
UPSTREAM = ("InteractionExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "PseudoSequenceGen",
            "TrainingOverrides")


def run_cli(args, kill_at=None, timeout=600):
    """Runs `python -m pipeline.cli ARGS` in a new process group; with `kill_at`, SIGKILLs
    the whole group as soon as a line starts with it. Returns (exit code, output)."""
    env = dict(os.environ, PYTHONPATH=ROOT, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli"] + args, cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    watchdog = threading.Timer(timeout, os.killpg, (proc.pid, signal.SIGKILL))
    watchdog.start()
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if kill_at and line.startswith(kill_at):
                os.killpg(proc.pid, signal.SIGKILL)
                break
        proc.wait()
    finally:
        watchdog.cancel()
        proc.stdout.close()
    return proc.returncode, "".join(lines)


def executions_by_run(store):
    """[{component: execution}] per pipeline run, oldest run first."""
    runs = sorted(store.get_contexts_by_type("pipeline_run"), key=lambda c: c.create_time_since_epoch)
    node_type = store.get_context_type("node").id
    out = []
    for run in runs:
        by_node = {}
        for execution in store.get_executions_by_context(run.id):
            node = [c.name for c in store.get_contexts_by_execution(execution.id) if c.type_id == node_type]
            by_node[node[0].split(".", 1)[1]] = execution  # "<pipeline>.<component>"
        out.append(by_node)
    return out


def model_inputs(store, execution):
    ids = [e.artifact_id for e in store.get_events_by_execution_ids([execution.id]) if e.type == mlmd.Event.INPUT]
    return {a.id for a in store.get_artifacts_by_id(ids) if a.type == "Model"}


@pytest.mark.long  # two pipeline runs, one killed mid-training; `make test-long` (about 2 min each; not in CI)
def test_killed_training_completes_on_rerun_from_cache_without_taking_the_partial_model(tmp_path):
    data = synthetic.write_csv(str(tmp_path / "interactions.csv"),
                               synthetic.SyntheticConfig(num_users=600, num_items_x=40, num_items_y=30, seed=5))
    out = tmp_path / "run"
    # Beam in-process (a documented CLI flag) only to save ~20 s of worker start-up
    args = (["run", "--data", data, "--out", str(out), "--beam-arg=--direct_running_mode=in_memory",
             "--beam-arg=--direct_num_workers=1"] + [a for s in SETTINGS for a in ("--set", s)])

    code, first = run_cli(args, kill_at="[train] epoch 1:")
    assert code == -signal.SIGKILL, first[-3000:]
    assert "[train] epoch 1:" in first and "SavedModel written" not in first  # killed mid-training

    code, second = run_cli(args)
    assert code == 0, second[-3000:]
    assert "i2VAE pipeline finished" in second

    store = metadata_store.MetadataStore(tfx.orchestration.metadata.sqlite_metadata_connection_config(
        str(out / "metadata.db")))
    killed, rerun = executions_by_run(store)
    State = mlmd.Execution
    assert killed["Trainer"].last_known_state == State.RUNNING  # never completed nor published
    assert "RankingEvaluator" not in killed and "Pusher" not in killed
    for name in UPSTREAM:
        assert killed[name].last_known_state == State.COMPLETE, name
        assert rerun[name].last_known_state == State.CACHED, name
    for name in ("Trainer", "RankingEvaluator", "Pusher"):
        assert rerun[name].last_known_state == State.COMPLETE, name

    live = [a for a in store.get_artifacts_by_type("Model") if a.state == mlmd.Artifact.LIVE]
    assert len(live) == 1
    produced = [e for e in store.get_events_by_artifact_ids([live[0].id]) if e.type == mlmd.Event.OUTPUT]
    assert [e.execution_id for e in produced] == [rerun["Trainer"].id]
    killed_outputs = [e.artifact_id for e in store.get_events_by_execution_ids([killed["Trainer"].id])
                      if e.type == mlmd.Event.OUTPUT]
    assert all(a.state != mlmd.Artifact.LIVE for a in store.get_artifacts_by_id(killed_outputs))
    assert model_inputs(store, rerun["RankingEvaluator"]) == {live[0].id}
    assert model_inputs(store, rerun["Pusher"]) == {live[0].id}

    # on disk: the killed Trainer's directory (its TensorBoard logs) is left, unpublished and
    # without the history run_fn writes last; everything read downstream is the re-run's
    pipeline_root = str(out / "pipeline_root")
    killed_run = os.path.join(pipeline_root, "Trainer", "model_run", str(killed["Trainer"].id))
    assert glob.glob(os.path.join(killed_run, "**", "events.out.tfevents*"), recursive=True)
    assert not os.path.exists(os.path.join(killed_run, "training_history.json"))
    history = latest_output(pipeline_root, "Trainer", "model_run", "training_history.json")
    assert history == os.path.join(pipeline_root, "Trainer", "model_run", str(rerun["Trainer"].id),
                                   "training_history.json")
    assert latest_output(pipeline_root, "RankingEvaluator", "evaluation", "metrics.md")
    pushed = latest_version(str(out / "serving_model" / "i2vae"))
    assert pushed and os.path.exists(os.path.join(pushed, "saved_model.pb"))
    assert live[0].uri.startswith(os.path.join(pipeline_root, "Trainer", "model", str(rerun["Trainer"].id)))
