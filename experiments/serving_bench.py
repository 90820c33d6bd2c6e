"""Serving latency and throughput over gRPC on loopback, against the in-process signature.

    python -m experiments.serving_bench --model-base-path runs/cloth_sport/serving_model/i2vae \
        --data ../shared/data/amazon-cdsr/cloth_sport

Starts `python -m serving.server` in its own process (as deployed), replays real test
histories of the paper's data with the gRPC client at batch 1 (p50 / p99 latency) and
batch 64 (users per second), then calls the same signature in this process on the same
requests, and prints both with their ratio. Both run in the same session on the same
machine, so the ratio is the figure to trust on a noisy box.
"""
from __future__ import annotations

import argparse
import os
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


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m experiments.serving_bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-base-path", required=True, help="the pushed model's directory (<version>/ inside)")
    p.add_argument("--data", default=os.path.join("..", "shared", "data", "amazon-cdsr", "cloth_sport"),
                   help="paper-format folder whose test.csv histories are replayed")
    p.add_argument("--model-name", default="i2vae")
    p.add_argument("--requests", type=int, default=500, help="batch-1 requests")
    p.add_argument("--batch", type=int, default=64)
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
