"""Running a Python snippet in a fresh process with this repository importable: for what must
be set before TensorFlow initialises (logical devices) or differ per process (PYTHONHASHSEED)."""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def environment(**env):
    """This process's environment with the repository importable, Keras 2 and quiet TF logs,
    plus `env`."""
    return dict(os.environ, PYTHONPATH=ROOT, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2", **env)


def run_json(code: str, **env):
    """Runs `code` with `python -c` at the repository root and returns the JSON its last
    stdout line holds; fails with the end of stderr if the process does."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment(**env),
                         cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])
