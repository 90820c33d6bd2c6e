"""`i2vae bench retrain`: what warm start saves on a scheduled retraining of a real pair.

The pair's users are split by a seeded hash of the user id: day 1 holds `share` of them
(their rows of train.csv and test.csv), day 2 all of them. Day 1 runs into one run
directory, then day 2 into the same one (the Resolver finds day 1's pushed model, the
generator and the Trainer warm-start from it); day 2 also runs from scratch
(`train.warm_start=false`) into another directory. Printed per day-2 run: the generator's
and the Trainer's training seconds, epochs, best validation full-ranking NDCG@10 (mean of
both domains), test NDCG@10 per domain, and for the warm-started run the training seconds
at which its validation first reached the from-scratch run's best.
"""
from __future__ import annotations

import csv
import json
import logging
import os
from typing import Dict, List, Optional

from models import config, metrics
from models.seeding import stable_fraction
from pipeline.local_runner import newest_output_dir, run_local

logger = logging.getLogger(__name__)

PAPER_FILES = ("train.csv", "test.csv")


def write_day_one(data_dir: str, out_dir: str, share: float, seed: int = 0) -> Dict[str, int]:
    """The rows of the users whose hash falls below `share`, in the paper's two files."""
    os.makedirs(out_dir, exist_ok=True)
    counts = {}
    for name in PAPER_FILES:
        with open(os.path.join(data_dir, name), newline="") as f:
            rows = list(csv.reader(f))
        kept = [rows[0]] + [r for r in rows[1:] if stable_fraction(seed, "day one", r[0]) < share]
        with open(os.path.join(out_dir, name), "w", newline="") as f:
            csv.writer(f).writerows(kept)
        counts[name] = len(kept) - 1
    return counts


def _run_figures(paths: Dict, target: Optional[float] = None) -> Dict:
    history = json.load(open(paths["training_history"]))
    root = paths["pipeline_root"]
    generator = json.load(open(os.path.join(newest_output_dir(root, "PseudoSequenceGen", "augmented_examples"),
                                            "pseudo_sequence_generator", "training.json")))
    report = json.load(open(os.path.join(os.path.dirname(paths["metrics"]), "metrics.json")))
    kind = next(m for m in report["splits"]["test"] if m not in ("popularity", "served"))
    reached = None
    if target is not None:
        reached = next((e["seconds"] for e in history["history"] if e["val_ndcg"] >= target), None)
    return {"lightgcn_s": generator.get("seconds", 0.0), "lightgcn_epochs": generator.get("epochs"),
            "training_s": history["history"][-1]["seconds"] if history["history"] else 0.0,
            "epochs": history["epochs_run"], "best_val": history["best_val_ndcg"], "reached_s": reached,
            "warm_start": history.get("warm_start"), "pipeline_s": float(paths["seconds"]),
            "test": [report["splits"]["test"][kind]["full"][d]["all"]["NDCG@10"] for d in metrics.DOMAINS],
            "verdict": paths.get("verdict")}


def retrain(data_dir: str, work: str, share: float, overrides: List[str]) -> Dict:
    day_one = os.path.join(os.path.abspath(work), "day_one_data")
    counts = write_day_one(data_dir, day_one, share)
    logger.info(f"[bench] day 1: {counts} rows of {share:.0%} of the users")

    def run(data, out, extra=()):
        cfg = config.load_config(overrides=list(overrides) + list(extra))
        cfg.data_path = data
        return run_local(cfg, os.path.join(work, out))

    run(day_one, "warm")
    scratch = _run_figures(run(data_dir, "scratch", ["train.warm_start=false"]))
    warm = _run_figures(run(data_dir, "warm"), target=scratch["best_val"])
    return {"share": share, "day_one_rows": counts, "scratch": scratch, "warm": warm}


def print_retrain(result: Dict) -> None:
    print(f"\nretrain bench: day 1 = {result['share']:.0%} of the users ({result['day_one_rows']}), day 2 = all; "
          "day 2 warm-started from day 1's pushed model, and from scratch\n")
    print("| day-2 run | LightGCN s | training s | epochs | best val NDCG@10 | test NDCG@10 X | test NDCG@10 Y "
          "| reached scratch's best val at s | pipeline s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in ("scratch", "warm"):
        r = result[name]
        reached = "–" if name == "scratch" else (f"{r['reached_s']:.0f}" if r["reached_s"] is not None else "never")
        print(f"| {name} | {r['lightgcn_s']:.0f} | {r['training_s']:.0f} | {r['epochs']} | {100 * r['best_val']:.2f} | "
              f"{100 * r['test'][0]:.2f} | {100 * r['test'][1]:.2f} | {reached} | {r['pipeline_s']:.0f} |")
    warm = result["warm"]
    total = {n: result[n]["lightgcn_s"] + result[n]["training_s"] for n in ("warm", "scratch")}
    print(f"\nwarm start: {warm['warm_start']}")
    print(f"generator + training seconds, warm / scratch: {total['warm']:.0f} / {total['scratch']:.0f} = "
          f"{total['warm'] / max(total['scratch'], 1e-9):.2f}x; warm-started verdict: "
          f"{(warm['verdict'] or {}).get('reason')}")
