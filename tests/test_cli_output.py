"""What a user sees from the `i2vae` command: a bad input row ends the run with one
`error: <file>:<line>: ...` line and exit status 2 (no traceback), and a long table's own
domain names reach the metrics table. Runs the real command in a subprocess."""
import os
import subprocess
import sys

import pytest

from components.ingest import synthetic
from tests.ingest_cases import GOOD_TEST, GOOD_TRAIN, HEADER, PAPER_CASES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--set", "train.epochs=1", "--set", "model.embedding_dim=16", "--set", "model.latent_dim=8",
        "--set", "model.num_heads=2", "--set", "model.num_blocks=1", "--set", "lightgcn.max_epochs=2",
        "--set", "lightgcn.eval_every=1", "--set", "data.max_len=6", "--set", "data.pseudo_len=10"]


def i2vae(*args):
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=600)


@pytest.mark.parametrize("args, message", [
    (["--data", "/does-not-exist"], "error: /does-not-exist: not found, or not a folder / .csv / .parquet file"),
    (["--data", "tests", "--set", "train.epochs=-3"], "error: train.epochs must be >= 0, found -3"),
    (["--data", "tests"], "error: tests: a folder must hold the paper's train.csv and test.csv"),
    (["--data", "x.csv", "--config", "missing.json"], "error: missing.json: no such config file")])
def test_a_bad_argument_is_one_error_line_before_tensorflow_loads(tmp_path, args, message):
    """Arguments, config values and a local data path are checked before TFX and TensorFlow
    load: one `error:` line, exit status 2, nothing written."""
    probe = ("import sys; from pipeline import cli; code = cli.main(sys.argv[1:]); "
             "sys.exit(code + 10 * any(m in sys.modules for m in ('tensorflow', 'tfx', 'apache_beam')))")
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", PYTHONPATH=ROOT)
    done = subprocess.run([sys.executable, "-c", probe, "run", *args, "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])  # 12: TensorFlow, TFX or Beam loaded
    assert done.stderr.strip().splitlines() == [message] and not done.stdout
    assert not (tmp_path / "run").exists()


@pytest.mark.slow  # one pipeline run in a fresh process per case; `make test-slow`
@pytest.mark.parametrize("name, line, phrase, reason", PAPER_CASES)
def test_a_bad_row_is_one_error_line_and_exit_status_2(tmp_path, name, line, phrase, reason):
    pair = tmp_path / "pair"
    pair.mkdir()
    (pair / "train.csv").write_bytes(HEADER + b"".join(GOOD_TRAIN[:3]) + line + b"".join(GOOD_TRAIN[3:]))
    (pair / "test.csv").write_bytes(HEADER + b"".join(GOOD_TEST))
    done = i2vae("run", "--data", str(pair), "--out", str(tmp_path / "run"), *TINY,
                 "--set", "data.max_history_length=8")  # the cap of the too_long case
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr + done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {pair / 'train.csv'}:") and phrase in lines[0], lines


@pytest.mark.slow  # one more pipeline run
def test_a_long_table_with_named_domains_runs_end_to_end(tmp_path):
    data = synthetic.write_csv(str(tmp_path / "log.csv"), synthetic.SyntheticConfig(num_users=300, seed=3))
    text = open(data).read().splitlines()
    named = [text[0]] + [",".join(v if i != 2 else {"x": "Food", "y": "kitchen "}[v.strip()]
                                  for i, v in enumerate(line.split(","))) for line in text[1:]]
    (tmp_path / "named.csv").write_text("\n".join(named) + "\n")
    done = i2vae("run", "--data", str(tmp_path / "named.csv"), "--out", str(tmp_path / "run"), *TINY)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| Food | all |" in done.stdout and "| Kitchen | all |" in done.stdout
    assert "val NDCG@10 Food" in done.stdout and done.stderr == ""
    assert len(done.stdout.splitlines()) < 80
