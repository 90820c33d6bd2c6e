"""`i2vae bench retrain`: what warm start saves on a scheduled retraining of a real pair.

The pair's users are split by a seeded hash of the user id: day 1 holds `share` of them
(their rows of train.csv and test.csv), day 2 all of them. Day 1 runs into one run
directory, then day 2 into the same one (the Resolver finds day 1's pushed model, the
generator and the Trainer warm-start from it); day 2 also runs from scratch
(`train.warm_start=false`) into another directory. Printed per day-2 run: the generator's
and the Trainer's training seconds, epochs, the exported model's validation full-ranking
NDCG@10 (mean of both domains: the evaluator's figure, which blessing reads) and test
NDCG@10 per domain; then whether the warm-started run reached the from-scratch run's
validation figure, and at what share of its seconds. `report_only` prints the figures of
the runs already in `work`.
"""
from __future__ import annotations

import csv
import json
import logging
import os
from typing import Dict, List

from components.evaluator.executor import VERDICT_FILE
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


def _run_figures(out: str) -> Dict:
    """The newest day-2 run in the run directory `out`: its generator's and Trainer's
    seconds and epochs, and the exported model's validation and test figures."""
    root = os.path.join(out, "pipeline_root")
    history = json.load(open(os.path.join(newest_output_dir(root, "Trainer", "model_run"), "training_history.json")))
    generator = json.load(open(os.path.join(newest_output_dir(root, "PseudoSequenceGen", "augmented_examples"),
                                            "pseudo_sequence_generator", "training.json")))
    evaluation = newest_output_dir(root, "RankingEvaluator", "evaluation")
    report = json.load(open(os.path.join(evaluation, "metrics.json")))
    kind = next(m for m in report["splits"]["test"] if m not in ("popularity", "served"))

    def ndcg(split, model):
        return [report["splits"][split][model]["full"][d]["all"]["NDCG@10"] for d in metrics.DOMAINS]

    verdict = os.path.join(evaluation, VERDICT_FILE)
    return {"lightgcn_s": generator.get("seconds", 0.0),
            "training_s": history["history"][-1]["seconds"] if history["history"] else 0.0,
            "epochs": history["epochs_run"], "val": sum(ndcg("eval", kind)) / 2, "test": ndcg("test", kind),
            "warm_start": history.get("warm_start"), "generator_warm_start": generator.get("warm_start"),
            "verdict": json.load(open(verdict)) if os.path.exists(verdict) else None}


def retrain(data_dir: str, work: str, share: float, overrides: List[str], report_only: bool = False) -> Dict:
    day_one = os.path.join(os.path.abspath(work), "day_one_data")
    counts = write_day_one(data_dir, day_one, share)
    logger.info(f"[bench] day 1: {counts} rows of {share:.0%} of the users")

    def run(data, out, extra=()):
        cfg = config.load_config(overrides=list(overrides) + list(extra))
        cfg.data_path = data
        run_local(cfg, os.path.join(work, out))

    if not report_only:
        run(day_one, "warm")
        run(data_dir, "scratch", ["train.warm_start=false"])
        run(data_dir, "warm")
    return {"share": share, "day_one_rows": counts, **{name: _run_figures(os.path.join(work, name))
                                                         for name in ("scratch", "warm")}}


def print_retrain(result: Dict) -> None:
    print(f"\nretrain bench: day 1 = {result['share']:.0%} of the users ({result['day_one_rows']}), day 2 = all; "
          "day 2 warm-started from day 1's pushed model, and from scratch\n")
    print("| day-2 run | LightGCN s | training s | epochs | val NDCG@10 (exported) | test NDCG@10 X | test NDCG@10 Y |")
    print("|---|---|---|---|---|---|---|")
    for name in ("scratch", "warm"):
        r = result[name]
        print(f"| {name} | {r['lightgcn_s']:.0f} | {r['training_s']:.0f} | {r['epochs']} | {100 * r['val']:.3f} | "
              f"{100 * r['test'][0]:.2f} | {100 * r['test'][1]:.2f} |")
    warm, scratch = result["warm"], result["scratch"]
    seconds = {n: result[n]["lightgcn_s"] + result[n]["training_s"] for n in ("warm", "scratch")}
    print(f"\nwarm start: model {warm['warm_start']}; generator {warm['generator_warm_start']}")
    print(f"the warm-started run {'reached' if warm['val'] >= scratch['val'] else 'did not reach'} the from-scratch "
          f"run's validation NDCG@10 ({100 * warm['val']:.3f} vs {100 * scratch['val']:.3f}) in "
          f"{seconds['warm']:.0f} s of generator and training against {seconds['scratch']:.0f} s "
          f"({seconds['warm'] / max(seconds['scratch'], 1e-9):.2f}x)")
    print(f"its verdict: {(warm['verdict'] or {}).get('reason')}")
