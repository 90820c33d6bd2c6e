"""Runs the authors' published PyTorch code (IM-VAE) on the same data and machine, for
`i2vae bench speed --authors-code DIR`.

The operator fetches their repository into a folder outside this one and gives it a
virtual environment with PyTorch (docs/performance.md says how). Nothing of their code is
copied into this project: at bench time their `*.py` files are copied into a scratch
folder, next to the inputs their loader expects, and run there with their own Python.

Their loader reads `dataset/<pair>_train_updated.csv` and `..._test_csu_updated.csv`,
which add each row's pseudo-sequences (`corr_d1`, `corr_d2`); those files are not in their
repository, so each row gets 20 random items per domain, which costs the same as recalled
ones. Four changes make their script runnable and timed on a CPU machine, none of which
touches their model: `.cuda()` becomes a no-op, `random.sample` accepts a set on Python
3.11+ (their code samples from sets, which 3.11 refuses), their main trains once instead
of five times over, and their epoch loop prints its training and evaluation seconds.
"""
from __future__ import annotations

import csv
import json
import logging
import os
import random
import re
import shutil
import subprocess
import sys
import time
from typing import Dict, List, Optional

logger = logging.getLogger(__name__)

ENTRY = "train_our.py"
REPEATS = "    for i in range(5):\n"
PATCHED = "train_bench.py"
# run.sh's cloth_sport settings (the paper's): lr 8e-4, the KL weights, the attention transfer
# encoder and the cold-start setting
SETTINGS = ["--kl_lambda_1", "0.005", "--kl_lambda_2", "0.005", "--kl_lambda_1_t", "0.001", "--kl_lambda_2_t",
            "0.001", "--lr", "8e-4", "--KLD1", "1.5", "--trans_encoder", "attention", "--cs_setting", "True"]
_PRELUDE = """import random as _bench_random
import torch as _bench_torch
_bench_torch.Tensor.cuda = lambda self, *a, **k: self
_bench_torch.nn.Module.cuda = lambda self, *a, **k: self
_bench_sample = _bench_random.sample
def _sample_from_sets(population, k, **kw):
    if isinstance(population, (set, frozenset)):
        population = sorted(population)
    return _bench_sample(population, k, **kw)
_bench_random.sample = _sample_from_sets
"""


class AuthorsBenchError(RuntimeError):
    """The authors' code could not be prepared or run; the message says where and why."""


def authors_python(authors_code: str, python: Optional[str]) -> str:
    """Their interpreter: `python` if given, else a venv beside or inside their folder."""
    candidates = [python] if python else [os.path.join(authors_code, "venv", "bin", "python"),
                                           os.path.join(os.path.dirname(os.path.abspath(authors_code)), "venv", "bin",
                                                        "python")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise AuthorsBenchError(f"{authors_code}: no Python with PyTorch given; pass --authors-python "
                            f"(looked for {', '.join(c for c in candidates if c)})")


def patch_entry(source: str) -> str:
    """Their training script with the CPU prelude and per-epoch timing lines."""
    loop = "    for epoch in range(args_config.epoch):\n"
    if loop not in source or "= test(model,args_config,valLoader)" not in source:
        raise AuthorsBenchError(f"{ENTRY}: the epoch loop or its test() call was not found; "
                                f"the bench knows the published version of their script")
    source = source.replace(loop, loop + "        _bench_t0 = time.time()\n", 1)
    # their main trains the model five times over (`for i in range(5)`); one run is what is timed
    source = source.replace(REPEATS, REPEATS.replace("range(5)", "range(1)"), 1)
    lines = []
    for line in source.split("\n"):
        if "= test(model,args_config,valLoader)" in line and not line.strip().startswith("#"):
            indent = line[:len(line) - len(line.lstrip())]
            lines += [indent + 'print(f"BENCH train_epoch {time.time() - _bench_t0:.2f}", flush=True); '
                               '_bench_t1 = time.time()',
                      line,
                      indent + 'print(f"BENCH eval {time.time() - _bench_t1:.2f}", flush=True)']
        else:
            lines.append(line)
    return _PRELUDE + "\n".join(lines)


def write_inputs(data_dir: str, pair: str, dataset_dir: str, seed: int = 0) -> Dict[str, int]:
    """Their `_updated` CSVs from the paper-format pair: the rows as they are, plus 20 random
    items per domain as the pseudo-sequences. Returns the row count of each split."""
    rng = random.Random(seed)
    rows = {}
    for split in ("train", "test"):
        path = os.path.join(data_dir, f"{split}.csv")
        if not os.path.exists(path):
            raise AuthorsBenchError(f"{path}: not found (--data must be a paper-format pair: train.csv, test.csv)")
        with open(path, newline="") as f:
            rows[split] = list(csv.DictReader(f))
    pools = [set(), set()]
    for split_rows in rows.values():
        for row in split_rows:
            pools[0].update(json.loads(row["seq_d1"]))
            pools[1].update(json.loads(row["seq_d2"]))
    pools = [sorted(p) for p in pools]
    os.makedirs(dataset_dir, exist_ok=True)
    for split, name in (("train", f"{pair}_train_updated.csv"), ("test", f"{pair}_test_csu_updated.csv")):
        with open(os.path.join(dataset_dir, name), "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["user_id", "seq_d1", "seq_d2", "domain_id", "corr_d1", "corr_d2"])
            for row in rows[split]:
                writer.writerow([row["user_id"], row["seq_d1"], row["seq_d2"], row["domain_id"],
                                 json.dumps(rng.sample(pools[0], 20)), json.dumps(rng.sample(pools[1], 20))])
    return {split: len(split_rows) for split, split_rows in rows.items()}


def prepare(authors_code: str, data_dir: str, pair: str, work_dir: str) -> Dict[str, int]:
    """Copies their Python files into `work_dir`, writes the inputs and the patched script."""
    entry = os.path.join(authors_code, ENTRY)
    if not os.path.exists(entry):
        raise AuthorsBenchError(f"{entry}: not found (--authors-code must be their repository's folder)")
    for root, _, files in os.walk(authors_code):
        if any(part in ("venv", ".git") for part in os.path.relpath(root, authors_code).split(os.sep)):
            continue
        for name in files:
            if name.endswith(".py"):
                target = os.path.join(work_dir, os.path.relpath(os.path.join(root, name), authors_code))
                os.makedirs(os.path.dirname(target), exist_ok=True)
                shutil.copyfile(os.path.join(root, name), target)
    with open(entry) as f:
        patched = patch_entry(f.read())
    with open(os.path.join(work_dir, PATCHED), "w") as f:
        f.write(patched)
    os.makedirs(os.path.join(work_dir, "amazon_results", "bench"), exist_ok=True)
    return write_inputs(data_dir, pair, os.path.join(work_dir, "dataset"))


def parse_timings(output: str) -> Dict[str, List[float]]:
    """The BENCH lines of the patched script: seconds per training epoch and per evaluation."""
    found = {"train_epoch": [], "eval": []}
    for kind, seconds in re.findall(r"^BENCH (train_epoch|eval) ([0-9.]+)$", output, flags=re.M):
        found[kind].append(float(seconds))
    return found


# Runs a command and prints the peak resident memory of its largest process (children included), in KB:
# RUSAGE_CHILDREN of a fresh wrapper holds only that command's tree.
_PEAK_RSS_WRAPPER = ("import resource, subprocess, sys; code = subprocess.call(sys.argv[1:]); "
                     "print(f'BENCH peak_rss_kb {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}', flush=True); "
                     "sys.exit(code)")


def run(authors_code: str, data_dir: str, pair: str, work_dir: str, epochs: int = 2,
        python: Optional[str] = None) -> Dict:
    """Trains their model for `epochs` epochs (each followed by their test evaluation) and
    returns the timings, the peak RSS and the row counts."""
    interpreter = authors_python(authors_code, python)
    rows = prepare(authors_code, data_dir, pair, work_dir)
    command = [sys.executable, "-c", _PEAK_RSS_WRAPPER, interpreter, PATCHED, "-m", "amazon_results/bench/",
               "-dm", pair, "--epoch", str(epochs)] + SETTINGS
    logger.info(f"[bench] the authors' code: {epochs} epoch(s) on {pair} with {interpreter} in {work_dir}")
    start = time.perf_counter()
    done = subprocess.run(command, cwd=work_dir, capture_output=True, text=True)
    wall = time.perf_counter() - start
    log_path = os.path.join(work_dir, "bench_output.log")
    with open(log_path, "w") as f:
        f.write(done.stdout + "\n--- stderr ---\n" + done.stderr)
    timings = parse_timings(done.stdout)
    peak = re.search(r"^BENCH peak_rss_kb (\d+)$", done.stdout, flags=re.M)
    if done.returncode != 0 or not timings["train_epoch"]:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise AuthorsBenchError(f"{log_path}: the authors' code failed (exit {done.returncode}): {tail[0]}")
    return {"train_rows": rows["train"], "test_rows": rows["test"], "epoch_s": timings["train_epoch"],
            "eval_s": timings["eval"], "peak_rss_mb": int(peak.group(1)) / 1024 if peak else float("nan"),
            "wall_s": wall, "python": interpreter, "log": log_path}
