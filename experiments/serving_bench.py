"""Serving latency and throughput over gRPC on loopback, against the in-process signature.

    python -m experiments.serving_bench --model-base-path runs/cloth_sport/serving_model/i2vae \
        --data ../shared/data/amazon-cdsr/cloth_sport

Starts `python -m serving.server` in its own process (as deployed), replays real test
histories of the paper's data with the gRPC client at batch 1 (p50 / p99 latency) and
batch 64 (users per second), then calls the same signature in this process on the same
requests, and prints both with their ratio. Both run in the same session on the same
machine, so the ratio is the figure to trust on a noisy box.

Last, the first request to a freshly loaded version: the server is started `--loads` times
on a copy of the version with its TF Serving warmup records
(`assets.extra/tf_serving_warmup_requests`, replayed on load) and as many times on a copy
without them; the median time of the first request and of the load are printed for both.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from typing import List, Tuple

import numpy as np
import tensorflow as tf

from models.config import DataConfig
from serving.client import RecommendClient, pad_histories
from serving.server import start_process


def test_histories(data_dir: str, limit: int) -> List[Tuple[List[str], List[str]]]:
    """Raw-id histories (target removed) of the paper's test rows, in file order."""
    from components.ingest import logic

    out = []
    path = os.path.join(data_dir, "test.csv")
    for path, lineno, line in logic.read_paper_file(path):
        row = logic.parse_paper_line(line, path, lineno, DataConfig().max_history_length)
        _, hx, hy = logic.target_and_histories(row)
        out.append((hx[-20:], hy[-20:]))
        if len(out) == limit:
            break
    return out


def _percentiles(seconds):
    ms = 1000 * np.asarray(seconds)
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def run(base_path: str, data_dir: str, model_name: str, requests: int, batch: int, warmup: int = 20) -> dict:
    histories = test_histories(data_dir, max(requests, batch * 20))
    singles = [([hx], [hy]) for hx, hy in histories[:requests]]
    batches = [([h[0] for h in histories[i:i + batch]], [h[1] for h in histories[i:i + batch]])
               for i in range(0, len(histories) - batch + 1, batch)][:20]
    proc, target = start_process(base_path, model_name)
    try:
        client = RecommendClient(target, model_name, timeout=30)
        for hx, hy in singles[:warmup]:
            client.recommend(hx, hy)
        grpc_single = []
        for hx, hy in singles:
            t = time.perf_counter()
            client.recommend(hx, hy)
            grpc_single.append(time.perf_counter() - t)
        t = time.perf_counter()
        for hx, hy in batches:
            client.recommend(hx, hy)
        grpc_users_per_s = len(batches) * batch / (time.perf_counter() - t)
        client.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    version = max(int(d) for d in os.listdir(base_path) if d.isdigit())
    signature = tf.saved_model.load(os.path.join(base_path, str(version))).signatures["serving_default"]

    def call(hx, hy):
        out = signature(history_x=tf.constant(pad_histories(hx).astype(bytes)),
                        history_y=tf.constant(pad_histories(hy).astype(bytes)))
        return {k: v.numpy() for k, v in out.items()}

    for hx, hy in singles[:warmup]:
        call(hx, hy)
    local_single = []
    for hx, hy in singles:
        t = time.perf_counter()
        call(hx, hy)
        local_single.append(time.perf_counter() - t)
    t = time.perf_counter()
    for hx, hy in batches:
        call(hx, hy)
    local_users_per_s = len(batches) * batch / (time.perf_counter() - t)
    g50, g99 = _percentiles(grpc_single)
    l50, l99 = _percentiles(local_single)
    return {"requests": len(singles), "batch": batch, "batches": len(batches),
            "grpc_p50_ms": g50, "grpc_p99_ms": g99, "local_p50_ms": l50, "local_p99_ms": l99,
            "grpc_users_per_s": grpc_users_per_s, "local_users_per_s": local_users_per_s}


WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")


def first_requests(base_path: str, data_dir: str, model_name: str, loads: int) -> dict:
    """Median seconds of loading a fresh server and of its first request, with and without
    the version's warmup records (each load a new process on a new copy of the version)."""
    version = max(int(d) for d in os.listdir(base_path) if d.isdigit())
    histories = test_histories(data_dir, loads)
    out = {}
    for warmed in (True, False):
        load_s, first_s = [], []
        for n in range(loads):
            base = tempfile.mkdtemp(prefix="first_request_")
            try:
                copy = shutil.copytree(os.path.join(base_path, str(version)), os.path.join(base, "1"))
                if not warmed and os.path.exists(os.path.join(copy, WARMUP_FILE)):
                    os.remove(os.path.join(copy, WARMUP_FILE))
                start = time.perf_counter()
                proc, target = start_process(base, model_name)
                load_s.append(time.perf_counter() - start)
                try:
                    client = RecommendClient(target, model_name, timeout=120)
                    hx, hy = histories[n % len(histories)]
                    start = time.perf_counter()
                    client.recommend([hx], [hy])
                    first_s.append(time.perf_counter() - start)
                    client.close()
                finally:
                    proc.terminate()
                    proc.wait(timeout=30)
            finally:
                shutil.rmtree(base, ignore_errors=True)
        out["with" if warmed else "without"] = {"load_s": float(np.median(load_s)),
                                                "first_ms": 1000 * float(np.median(first_s))}
    return out


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m experiments.serving_bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-base-path", required=True, help="the pushed model's directory (<version>/ inside)")
    p.add_argument("--data", default=os.path.join("..", "shared", "data", "amazon-cdsr", "cloth_sport"),
                   help="paper-format folder whose test.csv histories are replayed")
    p.add_argument("--model-name", default="i2vae")
    p.add_argument("--requests", type=int, default=500, help="batch-1 requests")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--loads", type=int, default=5, help="fresh loads per case of the first-request figure")
    args = p.parse_args(argv)
    r = run(args.model_base_path, args.data, args.model_name, args.requests, args.batch)
    print(f"serving bench: {args.model_base_path}, {r['requests']} batch-1 requests, {r['batches']} batches of "
          f"{r['batch']} (real test histories of {args.data})")
    print("| path | p50 ms (batch 1) | p99 ms (batch 1) | users/s (batch %d) |" % r["batch"])
    print("|---|---|---|---|")
    print(f"| gRPC loopback (serving.server + serving.client) | {r['grpc_p50_ms']:.2f} | {r['grpc_p99_ms']:.2f} | "
          f"{r['grpc_users_per_s']:.0f} |")
    print(f"| in-process signature | {r['local_p50_ms']:.2f} | {r['local_p99_ms']:.2f} | "
          f"{r['local_users_per_s']:.0f} |")
    print(f"| ratio gRPC / in-process | {r['grpc_p50_ms'] / r['local_p50_ms']:.2f}x | "
          f"{r['grpc_p99_ms'] / r['local_p99_ms']:.2f}x | {r['local_users_per_s'] / r['grpc_users_per_s']:.2f}x slower |")
    if args.loads > 0:
        first = first_requests(args.model_base_path, args.data, args.model_name, args.loads)
        print(f"\nfirst request to a freshly loaded version (median of {args.loads} loads, a new server process each)")
        print("| version | load s (start to serving) | first request ms |")
        print("|---|---|---|")
        for case in ("with", "without"):
            print(f"| {case} warmup records | {first[case]['load_s']:.1f} | {first[case]['first_ms']:.1f} |")
        print(f"| ratio without / with | | {first['without']['first_ms'] / first['with']['first_ms']:.1f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
