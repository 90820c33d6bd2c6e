"""Running `i2vae reproduce`: the run order, one local pipeline run per (pair, setting, seed),
its result file `<results>/<pair>/runs/<setting>-seed<k>.json`, and the git calls (the code's
commit in every result, `--commit` after every run).

A run whose result file exists is skipped, so the command can be stopped and started again.
Settings share one pipeline directory per data variant, so TFX's cache reuses ingest and
the pseudo-sequence generator across models and seeds.
"""
from __future__ import annotations

import glob
import json
import os
import subprocess
import time
from typing import Dict, List, Optional

from experiments.reproduce_settings import (
    REPRODUCTION_BASE,
    SETTINGS,
    TUNED_MODELS,
    Setting,
    selected,
    selected_across_pairs,
)
from models import config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def plan(seeds: int, sweep_seeds: int, only: Optional[List[str]] = None,
         results: Optional[Dict[str, List[Dict]]] = None,
         results_by_pair: Optional[Dict[str, Dict[str, List[Dict]]]] = None) -> List[tuple]:
    """Run order: every table first with seed 1 (main, ablations, the validation tuning
    candidates), then the main comparison's further seeds, then the further seeds of the
    tuning candidates that validation selected over their model's default (known from the
    seed-1 `results`), and of each model's candidate its package default follows (selected
    over every pair in `results_by_pair`, which may not be this pair's pick: the README
    reports it on every pair), then the ablations' further seeds, sweeps last. So partial results
    answer the headline question first."""
    chosen = [s for s in SETTINGS if not only or s.name in only]
    runs = [(s, 1) for s in chosen if s.table in ("main", "raw", "ablation", "tuning")] if seeds >= 1 else []
    winners = {selected(results or {}, s.name) for s in SETTINGS if s.table == "main"}
    if results_by_pair:
        winners.update(selected_across_pairs(results_by_pair, model) for model in TUNED_MODELS)
    for group in (lambda s: s.table == "main" and s.seeded, lambda s: s.table == "tuning" and s.name in winners,
                  lambda s: s.table == "raw" and s.seeded,
                  lambda s: s.table == "ablation" and s.seeded):
        runs += [(s, seed) for seed in range(2, seeds + 1) for s in chosen if group(s)]
    for seed in range(1, sweep_seeds + 1):
        runs += [(s, seed) for s in chosen if s.table in ("density", "overlap")]
    return runs


def _commit() -> str:
    """The commit the run's code came from ("+dirty" when the tree had changes)."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()

    head = git("rev-parse", "HEAD")
    return head + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "") if head else "unknown"


def result_path(results_dir: str, setting: Setting, seed: int) -> str:
    return os.path.join(results_dir, "runs", f"{setting.name}-seed{seed}.json")


def max_epochs(cfg) -> int:
    """The epoch cap of the model a config trains (0: nothing is trained)."""
    return {"i2vae": cfg.train.epochs, "sasrec": cfg.train.epochs, "lightgcn": cfg.lightgcn.max_epochs}.get(
        cfg.model.kind, 0)


def run_one(pair: str, data_path: str, setting: Setting, seed: int, base_config: Optional[str], work_dir: str,
            results_dir: str) -> Dict:
    """Runs the pipeline for one (setting, seed) and writes its result file."""
    from pipeline.local_runner import run_local

    backup = os.path.join(work_dir, "backups", f"{setting.name}-seed{seed}")  # a killed run resumes at its next epoch
    # the study's runs share a run directory (its ingest and generator are cached across them):
    # no run may warm-start from, or be judged against, another run's model
    cfg = config.load_config(base_config, setting.overrides + [f"train.seed={seed}", "eval.track_test_per_epoch=true",
                                                               "train.warm_start=false", "eval.compare_with_served=false",
                                                               f"train.backup_dir={json.dumps(backup)}"],
                             base=config.load_config(overrides=REPRODUCTION_BASE))
    cfg.data_path = data_path
    start = time.time()
    paths = run_local(cfg, os.path.join(work_dir, setting.data_variant))
    if not paths.get("metrics"):
        raise RuntimeError(f"{pair}/{setting.name} seed {seed}: the pipeline wrote no metrics")
    with open(os.path.join(os.path.dirname(paths["metrics"]), "metrics.json")) as f:
        report = json.load(f)
    with open(paths["training_history"]) as f:
        history = json.load(f)
    kind = cfg.model.kind
    result = {
        "pair": pair, "setting": setting.name, "seed": seed, "overrides": setting.overrides,
        "seconds": round(time.time() - start + history.get("seconds_before_resume", 0.0), 1), "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "epochs_run": history["epochs_run"], "best_epoch": history["best_epoch"],
        **({"best_epochs": history["best_epochs"]} if "best_epochs" in history else {}),
        **({"resumed_at": history["resumed_at"]} if "resumed_at" in history else {}),
        **{name: history[name] for name in ("decoder_weight", "graph_blend") if name in history},
        "max_epochs": max_epochs(cfg),
        "test": report["splits"]["test"][kind], "eval": report["splits"]["eval"][kind],
        "history": [{k: e.get(k) for k in ("epoch", "loss", "val_ndcg", "metrics", "test_metrics")}
                    for e in history["history"]],
        "config": config.to_dict(cfg),
        "commit": _commit(),
    }
    path = result_path(results_dir, setting, seed)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(result, f, indent=1, default=float)
    os.replace(path + ".tmp", path)  # a result file is complete or absent
    return result


def load_results(results_dir: str) -> Dict[str, List[Dict]]:
    out: Dict[str, List[Dict]] = {}
    for path in sorted(glob.glob(os.path.join(results_dir, "runs", "*.json"))):
        with open(path) as f:
            r = json.load(f)
        out.setdefault(r["setting"], []).append(r)
    return out


def load_results_by_pair(results_root: str) -> Dict[str, Dict[str, List[Dict]]]:
    """Every pair's results under `results_root` (`<root>/<pair>/runs/*.json`)."""
    pairs = sorted({os.path.basename(os.path.dirname(os.path.dirname(p)))
                    for p in glob.glob(os.path.join(results_root, "*", "runs", "*.json"))})
    return {pair: load_results(os.path.join(results_root, pair)) for pair in pairs}


def commit_results(report_path: str, pair: str, setting: Setting, seed: int) -> None:
    """`--commit`: commits the report's folder (the page, plots and result files) after a run."""
    subprocess.run(["git", "add", os.path.dirname(report_path)], cwd=REPO, check=True)
    subprocess.run(["git", "commit", "-q", "-m", f"reproduce: {pair} {setting.name} seed {seed}"], cwd=REPO,
                   check=False)
