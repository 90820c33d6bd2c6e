"""The paper's comparison on its real data, resumable: `i2vae reproduce --pair cloth_sport --seeds 5`.

Every (pair, setting, seed) is one run of the local pipeline and leaves one result file,
`docs/results/<pair>/runs/<setting>-seed<k>.json`; a run whose file exists is skipped, so
the command can be stopped and started again (or run in the background over several
sessions). After every run `docs/results/<pair>.md` and its plots are rewritten from all
result files present, so partial results are always readable.

Settings share one pipeline directory per data variant, so TFX's cache reuses ingest and
the pseudo-sequence generator across models and seeds; the seed varies the model's
initialisation and batch order (`train.seed`), not the data split or LightGCN.
"""
from __future__ import annotations

import dataclasses
import glob
import json
import logging
import os
import subprocess
import time
from typing import Dict, List, Optional

import numpy as np

from models import config

logger = logging.getLogger(__name__)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_ROOT = os.path.join(os.path.dirname(REPO), "shared", "data", "amazon-cdsr")
K = 10

# The paper's Table 2 (IM-VAE; %, HR@10 / NDCG@10; 999 sampled negatives; best test value
# over epochs), as printed in ../shared/data/amazon-cdsr/README.md.
PAPER_TABLE2 = {
    "cloth_sport": {("x", "all"): (5.00, 2.59), ("x", "long_tailed"): (4.73, 2.52), ("x", "cold_start"): (6.77, 3.45),
                    ("y", "all"): (8.53, 4.40), ("y", "long_tailed"): (6.66, 3.36), ("y", "cold_start"): (10.30, 5.43)},
    "phone_elec": {("x", "all"): (10.61, 5.79), ("x", "long_tailed"): (8.17, 4.23), ("x", "cold_start"): (8.63, 4.39),
                   ("y", "all"): (15.28, 9.33), ("y", "long_tailed"): (13.49, 8.00), ("y", "cold_start"): (17.12, 10.26)},
}
DOMAIN_NAMES = {"cloth_sport": ("Cloth", "Sport"), "phone_elec": ("Phone", "Elec")}
GROUPS = ("all", "long_tailed", "cold_start")


@dataclasses.dataclass
class Setting:
    """One column of the paper's tables: a model or ablation and its config overrides."""

    name: str
    overrides: List[str]
    table: str  # "main" (Table 2), "ablation" (Table 3), "density" (Table 4), "overlap" (Table 5)
    seeded: bool = True  # False: deterministic given the data, one run is enough
    label: str = ""
    tunes: str = ""  # a "tuning" candidate: the main model whose settings it varies

    @property
    def data_variant(self) -> str:
        """Runs that see the same ingested data share a pipeline directory (and its cache)."""
        return {"density": self.name, "overlap": self.name, "raw": "raw"}.get(self.table, "full")


SETTINGS = [
    Setting("i2vae", [], "main", label="i2VAE (ours)"),
    Setting("sasrec", ['model.kind="sasrec"'], "main", label="SASRec"),
    Setting("lightgcn", ['model.kind="lightgcn"'], "main", seeded=False, label="LightGCN"),
    Setting("popularity", ['model.kind="popularity"'], "main", seeded=False, label="Popularity"),
    # the causal encoder with every position a target (an extension beyond the paper); the
    # default is the paper's bidirectional encoder, which validation preferred (docs/results/README.md)
    Setting("causal_encoder", ['model.encoder="causal"'], "ablation", label="causal encoder (extension)"),
    Setting("wo_psg", ['lightgcn.pseudo_source="random"'], "ablation", label="w/o PSG"),
    Setting("wo_ifr_dsr", ["train.lambda_t=0.0"], "ablation", label="w/o IF-R & DS-R"),
    Setting("wo_dnr", ["train.lambda_a=0.0"], "ablation", label="w/o DN-R"),
    Setting("wo_cold_loss", ["train.cold_start_loss=false"], "ablation", label="w/o cold-start loss"),
] + [Setting(f"{name}_raw", overrides + ["data.leak_free=false"], "raw", seeded=name != "lightgcn",
             label=f"{label}, raw split")
     for name, overrides, label in (("i2vae", [], "i2VAE"), ("sasrec", ['model.kind="sasrec"'], "SASRec"),
                                    ("lightgcn", ['model.kind="lightgcn"'], "LightGCN"))] \
  + [Setting(f"density_{p}", [f"data.train_density={p / 100}"], "density", label=f"D_s={p}%") for p in (25, 50, 75)] \
  + [Setting(f"overlap_{p}", [f"data.train_overlap={p / 100}"], "overlap", label=f"K_o={p}%") for p in (25, 50, 75)]
# The same tuning budget for both trained models (DESIGN.md): one learning rate of the paper's
# grid below the default, a longer early-stopping budget, and one change to what limits each
# model's scores: i2VAE's decoder [32, 64, 32] caps the rank of its item logits at 32 (SASRec
# scores with all d = 128 dimensions), so a 4x wider decoder; SASRec's sampled softmax uses 256
# shared negatives, so 4x as many, nearer the full softmax. Chosen on validation per model.
SETTINGS += [Setting(f"{m}_{suffix}", (['model.kind="sasrec"'] if m == "sasrec" else []) + overrides, "tuning",
                     label=f"{label} {what}", tunes=m)
             for m, label, own in (("i2vae", "i2VAE", ("wide", ["model.decoder_hidden=[128, 256, 128]"],
                                                        "decoder [128, 256, 128]")),
                                   ("sasrec", "SASRec", ("neg1024", ["model.sasrec_negatives=1024"],
                                                         "1024 negatives")))
             for suffix, overrides, what in (own, ("lr5e-4", ["train.learning_rate=0.0005"], "lr 5e-4"),
                                             ("p10", ["train.early_stopping_patience=10", "train.epochs=40"],
                                              "patience 10, ≤40 epochs"))]
BY_NAME = {s.name: s for s in SETTINGS}


def plan(seeds: int, sweep_seeds: int, only: Optional[List[str]] = None,
         results: Optional[Dict[str, List[Dict]]] = None) -> List[tuple]:
    """Run order: every table first with seed 1 (main, ablations, the validation tuning
    candidates), then the main comparison's further seeds, then the further seeds of the
    tuning candidates that validation selected over their model's default (known from the
    seed-1 `results`), then the ablations' further seeds, sweeps last. So partial results
    answer the headline question first."""
    chosen = [s for s in SETTINGS if not only or s.name in only]
    runs = [(s, 1) for s in chosen if s.table in ("main", "raw", "ablation", "tuning")] if seeds >= 1 else []
    winners = {selected(results or {}, s.name) for s in SETTINGS if s.table == "main"}
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


def run_one(pair: str, data_path: str, setting: Setting, seed: int, base_config: Optional[str], work_dir: str,
            results_dir: str) -> Dict:
    """Runs the pipeline for one (setting, seed) and writes its result file."""
    from pipeline.local_runner import run_local

    backup = os.path.join(work_dir, "backups", f"{setting.name}-seed{seed}")  # a killed run resumes at its next epoch
    cfg = config.load_config(base_config, setting.overrides + [f"train.seed={seed}", "eval.track_test_per_epoch=true",
                                                               f"train.backup_dir={json.dumps(backup)}"])
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
        "max_epochs": cfg.train.epochs if kind in ("i2vae", "sasrec") else 0,
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


# ------------------------------------------------------------------ report
def load_results(results_dir: str) -> Dict[str, List[Dict]]:
    out: Dict[str, List[Dict]] = {}
    for path in sorted(glob.glob(os.path.join(results_dir, "runs", "*.json"))):
        with open(path) as f:
            r = json.load(f)
        out.setdefault(r["setting"], []).append(r)
    return out


def validation_score(run: Dict) -> float:
    """The selection criterion, the same as for the epoch: mean validation full-ranking NDCG@10
    of both domains."""
    return float(np.mean([run["eval"]["full"][d]["all"][f"NDCG@{K}"] for d in ("x", "y")]))


def candidates(results: Dict[str, List[Dict]], model: str) -> List[str]:
    """A main model's default and its tuning candidates that have results."""
    return [n for n in [model] + [s.name for s in SETTINGS if s.tunes == model] if results.get(n)]


def shared_seeds(results: Dict[str, List[Dict]], names: List[str]) -> List[int]:
    seeds = [{r["seed"] for r in results[n]} for n in names]
    return sorted(set.intersection(*seeds)) if seeds else []


def selected(results: Dict[str, List[Dict]], model: str) -> str:
    """The candidate with the best validation score over the seeds all candidates share; the
    default when nothing else has run. A tie keeps the default, else the candidate listed
    first in `SETTINGS` (the earlier row of the tuning table). Test figures play no part."""
    names = candidates(results, model)
    seeds = shared_seeds(results, names)
    if len(names) < 2 or not seeds:
        return model
    score = {n: np.mean([validation_score(r) for r in results[n] if r["seed"] in seeds]) for n in names}
    return max(names, key=lambda n: (score[n], n == model))  # max() keeps the first of equal keys


def main_names(results: Dict[str, List[Dict]]) -> List[str]:
    """Table 2's columns: each main model as selected on validation."""
    return [selected(results, s.name) for s in SETTINGS if s.table == "main" and s.name in results]


def _stat(values) -> str:
    v = 100 * np.asarray([x for x in values if x is not None and np.isfinite(x)], np.float64)
    if len(v) == 0:
        return "–"
    return f"{v.mean():.2f} ± {_sample_std(v):.2f}" if len(v) > 1 else f"{v.mean():.2f}"


def _sample_std(values) -> float:
    """The tables' spread (sample std, ddof=1); 0 for a single seed."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _values(runs, protocol, d, g, metric):
    return [r["test"][protocol][d][g][metric] for r in runs]


def paper_protocol(run: Dict, d: str, g: str, metric: str) -> Optional[float]:
    """The paper's figure: the best test value of `metric` over all epochs (including epoch 0)."""
    tracked = [e["test_metrics"][d] for e in run["history"] if e.get("test_metrics")]
    if not tracked:  # nothing trained (LightGCN, popularity): the one test value
        return run["test"]["sampled"][d][g][metric]
    values = [t[g][metric] for t in tracked if g in t]
    return max(values) if values else None  # a group not tracked per epoch


def selected_epochs(run: Dict) -> List[int]:
    """The selected epoch, or each domain's under `train.epoch_selection="per_domain"`."""
    return list(run["best_epochs"].values()) if run.get("best_epochs") else [run["best_epoch"]]


def _epochs_text(run: Dict) -> str:
    return f"{run['epochs_run']} ({'/'.join(map(str, selected_epochs(run)))})"


def _runs_line(results, names) -> str:
    parts = []
    for n in names:
        runs = results.get(n, [])
        if not runs:
            continue
        if runs[0]["max_epochs"]:
            epochs = [r["epochs_run"] for r in runs]
            best = [e for r in runs for e in selected_epochs(r)]
            resumed = sum(1 for r in runs if r.get("resumed_at"))
            parts.append(f"{BY_NAME[n].label}: {len(runs)} seed(s), {min(epochs)}–{max(epochs)} epochs run "
                         f"(cap {runs[0]['max_epochs']}), selected epoch {min(best)}–{max(best)}"
                         + (f", {resumed} resumed from an epoch backup" if resumed else ""))
        else:
            parts.append(f"{BY_NAME[n].label}: {len(runs)} run, no training")
    return "Behind each figure: " + "; ".join(parts) + "." if parts else ""


def _groups(results, names):
    """The user groups of a table (all, long-tailed, cold-start)."""
    return GROUPS


def main_table(pair, results, protocol="full", paper=False, value=None, names=None) -> str:
    names = names or main_names(results)
    value = value or (lambda runs, d, g, m: _stat(_values(runs, protocol, d, g, m)))
    head = "| domain | group | " + " | ".join(f"{BY_NAME[n].label} HR@10 | {BY_NAME[n].label} NDCG@10" for n in names)
    head += " | paper IM-VAE HR@10 | paper IM-VAE NDCG@10 |" if paper else " |"
    cols = 2 + 2 * len(names) + (2 if paper else 0)
    lines = [head, "|" + "---|" * cols]
    for i, d in enumerate(("x", "y")):
        for g in _groups(results, names):
            cells = [DOMAIN_NAMES.get(pair, ("X", "Y"))[i], g.replace("_", "-")]
            for n in names:
                cells += [value(results[n], d, g, f"HR@{K}"), value(results[n], d, g, f"NDCG@{K}")]
            if paper:
                hr, ndcg = PAPER_TABLE2.get(pair, {}).get((d, g), (None, None))
                cells += [f"{hr:.2f}" if hr is not None else "–", f"{ndcg:.2f}" if ndcg is not None else "–"]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n" + _runs_line(results, names)


def settings_table(pair, results, table: str, extra_first: Optional[str] = "i2vae", protocol="full") -> str:
    names = ([extra_first] if extra_first in results else []) + [s.name for s in SETTINGS
                                                                  if s.table == table and s.name in results]
    label = {"i2vae": "i2VAE (full)" if table == "ablation" else "i2VAE (100%)"}
    head = "| domain | group | " + " | ".join(f"{label.get(n, BY_NAME[n].label)} HR@10 | "
                                               f"{label.get(n, BY_NAME[n].label)} NDCG@10" for n in names) + " |"
    lines = [head, "|" + "---|" * (2 + 2 * len(names))]
    groups = _groups(results, names) if table == "ablation" else ("all",)
    for i, d in enumerate(("x", "y")):
        for g in groups:
            cells = [DOMAIN_NAMES.get(pair, ("X", "Y"))[i], g.replace("_", "-")]
            for n in names:
                cells += [_stat(_values(results[n], protocol, d, g, f"HR@{K}")),
                          _stat(_values(results[n], protocol, d, g, f"NDCG@{K}"))]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n" + _runs_line(results, names)


def tuning_table(pair, results) -> str:
    """Each model's candidates that ran, selected by validation score on their shared seeds
    (the same criterion as epoch selection); test figures shown only for reading."""
    dx, dy = DOMAIN_NAMES.get(pair, ("X", "Y"))
    cols = ["overrides", "seeds", "epochs run (selected)", f"val NDCG@{K} {dx}", f"val NDCG@{K} {dy}", "val mean"] + [
        f"test {m}@{K} {dn} {g.replace('_', '-')}" for dn in (dx, dy) for g in GROUPS for m in ("HR", "NDCG")]
    lines = ["| candidate | " + " | ".join(cols) + " |", "|" + "---|" * (1 + len(cols))]
    for model in ("i2vae", "sasrec"):
        names = candidates(results, model)
        if len(names) < 2:
            continue
        seeds, best = shared_seeds(results, names), selected(results, model)
        for n in names:
            runs = [r for r in results[n] if r["seed"] in seeds]
            label = {"i2vae": "i2VAE (default)", "sasrec": "SASRec (default)"}.get(n, BY_NAME[n].label)
            cells = [("**selected** " if n == best else "") + label,
                     "<br>".join(f"`{o}`" for o in BY_NAME[n].overrides) or "–",
                     ",".join(map(str, seeds)), ", ".join(_epochs_text(r) for r in runs)]
            cells += [f"{100 * np.mean([r['eval']['full'][d]['all'][f'NDCG@{K}'] for r in runs]):.2f}"
                      for d in ("x", "y")]
            cells.append(f"{100 * np.mean([validation_score(r) for r in runs]):.2f}")
            cells += [f"{100 * np.mean([r['test']['full'][d][g][f'{m}@{K}'] for r in runs]):.2f}"
                      for d in ("x", "y") for g in GROUPS for m in ("HR", "NDCG")]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def leak_table(pair, results) -> str:
    """The test rows the paper's raw split leaks (their hidden items are in another row of the
    user), per model: raw split against leak-free split, full ranking and sampled."""
    pairs = [(n, f"{n}_raw") for n in ("i2vae", "sasrec", "lightgcn") if n in results and f"{n}_raw" in results
             and results[n][0]["test"]["full"]["x"].get("leak_touched", {}).get("rows")]
    if not pairs:  # no run pair, or runs from before the group reached the evaluator
        return ""
    lines = ["| domain | model | rows | " + " | ".join(f"{split} {protocol} {m}@{K}" for protocol in ("full", "sampled")
                                                  for split in ("raw", "leak-free") for m in ("HR", "NDCG")) + " |",
             "|" + "---|" * 11]
    for i, d in enumerate(("x", "y")):
        for name, raw in pairs:
            rows = results[name][0]["test"]["full"][d].get("leak_touched", {}).get("rows", 0)
            cells = [DOMAIN_NAMES.get(pair, ("X", "Y"))[i], BY_NAME[name].label, str(rows)]
            for protocol in ("full", "sampled"):
                for runs in (results[raw], results[name]):
                    cells += [_stat([r["test"][protocol][d].get("leak_touched", {}).get(f"{m}@{K}") for r in runs])
                              for m in ("HR", "NDCG")]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cutoffs_table(pair, runs) -> str:
    metrics = [f"{m}@{k}" for m in ("HR", "NDCG") for k in (5, 10, 20)] + ["MRR"]
    lines = ["| domain | group | protocol | " + " | ".join(metrics) + " |", "|" + "---|" * (3 + len(metrics))]
    for i, d in enumerate(("x", "y")):
        for g in GROUPS:
            for protocol in ("sampled", "full"):
                cells = [DOMAIN_NAMES.get(pair, ("X", "Y"))[i], g.replace("_", "-"), protocol]
                cells += [_stat(_values(runs, protocol, d, g, m)) for m in metrics]
                lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _save_figure(plt, fig, axes, path: str) -> str:
    """The two report figures share their finish: % axis, legend on the right panel, PNG."""
    axes[0].set_ylabel("%")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plots(pair, results, out_dir) -> List[str]:
    """Learning curves (validation and test NDCG@10 per epoch) and the per-group comparison."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    # the selected candidates of Table 2 first, then the default i2VAE the ablations share
    order = [selected(results, m) for m in ("i2vae", "sasrec")] + ["i2vae", "causal_encoder"]
    trained = [n for n in dict.fromkeys(order) if n in results]
    if trained:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
        for ax, d, name in zip(axes, ("x", "y"), DOMAIN_NAMES.get(pair, ("X", "Y"))):
            for j, n in enumerate(trained):
                color = f"C{j}"
                for r in results[n]:
                    epochs = [e["epoch"] for e in r["history"]]
                    ax.plot(epochs, [100 * e["metrics"][d]["all"][f"NDCG@{K}"] for e in r["history"]], color=color,
                            alpha=0.8, label=f"{BY_NAME[n].label} val" if r is results[n][0] else None)
                    if r["history"] and r["history"][0].get("test_metrics"):
                        ax.plot(epochs, [100 * e["test_metrics"][d]["all"][f"NDCG@{K}"] for e in r["history"]],
                                color=color, alpha=0.5, linestyle=":",
                                label=f"{BY_NAME[n].label} test" if r is results[n][0] else None)
            ax.set_title(f"{name}: NDCG@{K} (all users; validation full ranking, test sampled)")
            ax.set_xlabel("epoch (0 = untrained)")
        written.append(_save_figure(plt, fig, axes, os.path.join(out_dir, f"{pair}_learning_curves.png")))
    names = main_names(results)
    if names:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
        width = 0.8 / len(names)
        for ax, d, name in zip(axes, ("x", "y"), DOMAIN_NAMES.get(pair, ("X", "Y"))):
            for j, n in enumerate(names):
                means = [100 * np.mean(_values(results[n], "full", d, g, f"NDCG@{K}")) for g in GROUPS]
                stds = [100 * _sample_std(_values(results[n], "full", d, g, f"NDCG@{K}")) for g in GROUPS]
                ax.bar(np.arange(len(GROUPS)) + j * width, means, width, yerr=stds, label=BY_NAME[n].label)
            ax.set_xticks(np.arange(len(GROUPS)) + 0.4 - width / 2, [g.replace("_", "-") for g in GROUPS])
            ax.set_title(f"{name}: test NDCG@{K} by user group (full ranking)")
        written.append(_save_figure(plt, fig, axes, os.path.join(out_dir, f"{pair}_groups.png")))
    return written


def write_report(pair: str, results_dir: str, command: str) -> str:
    results = load_results(results_dir)
    out_dir = os.path.dirname(results_dir)
    md = os.path.join(out_dir, f"{pair}.md")
    compute = sum(r["seconds"] for runs in results.values() for r in runs)
    last = max((r["finished"] for runs in results.values() for r in runs), default="–")
    commits = sorted({r.get("commit", "unknown")[:12] for runs in results.values() for r in runs})
    pngs = plots(pair, results, out_dir)
    parts = [
        f"# Results on {pair}",
        "",
        f"Command: `{command}`",
        "",
        f"Compute behind this page: {compute / 3600:.2f} h of pipeline wall time over "
        f"{sum(len(v) for v in results.values())} runs on a 2-core CPU machine (newest result {last}; code at "
        f"commit(s) {', '.join(commits)}). The page is rewritten from the result files in `{pair}/runs/` after "
        "every run; it shows only settings that have a result file.",
        "",
        "Protocol: the leak-free split (`data.leak_free`, the default: no train row shows what the same user's "
        "eval or test row hides); leave-one-out test rows of the paper's `test.csv`; full ranking over every "
        "item of the target domain except the user's own history, as `serving_default` returns it; the epoch "
        "and the tuning candidate are selected on the validation split (10% of train users) by mean full-ranking "
        "NDCG@10 of both domains, and test is reported once at that epoch. Figures are mean ± sample std over "
        "seeds, in %. The seed varies model initialisation and batch order; the split, LightGCN and the "
        "negatives are fixed.",
        "",
        "## All users, long-tailed and cold-start (test, full ranking, leak-free split)",
        "",
        main_table(pair, results),
        "",
        "## The paper's protocol (test, 999 sampled negatives, leak-free split)",
        "",
        "999 negatives per row from a fixed seed, never the user's own items, ties counted against the "
        "positive. The paper's column is its best test value over epochs on the raw split, not a "
        "validation-selected figure: compare it with the paper-protocol table at the end.",
        "",
        main_table(pair, results, protocol="sampled", paper=True),
        "",
    ]
    leaks = leak_table(pair, results)
    if leaks:
        parts += ["## The leak: rows it touched, raw split against leak-free split (test)", "",
                  "The paper's raw split (`data.leak_free=false`) shows some test rows' hidden items in another row "
                  "of the same user (a train row's other-domain list ends with the test target; for a cold-start "
                  "row, the whole hidden history). `rows` counts those test rows; each model was trained once on "
                  "each split (the same settings otherwise).", "", leaks, ""]
    if "i2vae" in results:
        best = selected(results, "i2vae")
        parts += [f"## i2VAE at every cutoff (test): {BY_NAME[best].label}, as selected", "",
                  cutoffs_table(pair, results[best]), ""]
    if any(s.table == "ablation" and s.name in results for s in SETTINGS):
        labels = {"causal_encoder": "an extension beyond the paper: causal self-attention with every history "
                                    "position a target (`model.encoder=\"causal\"`)",
                  "wo_psg": "random unseen items instead of LightGCN recall, same length",
                  "wo_ifr_dsr": "lambda_t = 0: r^x, r^y learn only through the cold-start loss",
                  "wo_dnr": "lambda_a = 0", "wo_cold_loss": "no cold-start loss: r learns only through the "
                                                            "informative KL"}
        ran = [s.name for s in SETTINGS if s.table == "ablation" and s.name in results]
        parts += ["## Ablations (test, full ranking)", "",
                  "; ".join(f"{BY_NAME[n].label}: {labels[n]}" for n in ran) + ".", "",
                  settings_table(pair, results, "ablation"), ""]
    if any(s.table == "tuning" and s.name in results for s in SETTINGS):
        parts += ["## Tuning on the validation split", "",
                  "Per model, the candidate with the best mean validation full-ranking NDCG@10 of both domains, "
                  "over the seeds all its candidates share, is selected (a tie keeps the default); the tables "
                  "above show the selected one. Test figures are shown for reading only.",
                  "", tuning_table(pair, results), ""]
    for table, title, text in (
            ("density", "Training density D_s", "D_s: share of train history items kept (targets kept); "
                                                 "validation and test untouched."),
            ("overlap", "Overlapping users K_o", "K_o: share of overlapping train users kept overlapping; "
                                                 "each other one loses one domain.")):
        if any(s.table == table and s.name in results for s in SETTINGS):
            parts += [f"## {title} (test, all users, full ranking)", "", text, "",
                      settings_table(pair, results, table), ""]
    parts += ["## The paper's protocol: best test value over epochs (not a valid estimate)", "",
              "For each metric separately, the maximum over all epochs of the sampled test value, as the paper's "
              "figures were made. Shown only to compare with the paper.", "",
              main_table(pair, results, protocol="sampled", paper=True,
                         value=lambda runs, d, g, m: _stat([paper_protocol(r, d, g, m) for r in runs])), ""]
    for png in pngs:
        parts += [f"![{os.path.basename(png)}]({os.path.relpath(png, out_dir)})", ""]
    with open(md, "w") as f:
        f.write("\n".join(parts))
    return md


def reproduce(pair: str, seeds: int, sweep_seeds: int, only: Optional[List[str]], base_config: Optional[str],
              data_root: str, work_root: str, results_root: str, commit: bool, report_only: bool) -> int:
    results_dir = os.path.join(results_root, pair)
    command = (f"i2vae reproduce --pair {pair} --seeds {seeds} --sweep-seeds {sweep_seeds}"
               + (f" --only {','.join(only)}" if only else "") + (f" --config {base_config}" if base_config else ""))
    if report_only:
        logger.info(write_report(pair, results_dir, command))
        return 0
    data_path = os.path.join(data_root, pair)
    if not os.path.isdir(data_path):
        raise config.ConfigError(f"{data_path}: no such pair folder (expected train.csv and test.csv)")
    todo = plan(seeds, sweep_seeds, only, load_results(results_dir))
    done = [(s, k) for s, k in todo if os.path.exists(result_path(results_dir, s, k))]
    logger.info(f"[reproduce] {pair}: {len(todo)} runs planned, {len(done)} already done")
    while True:  # planned again after every run: a tuning candidate selected on seed 1 earns more seeds
        todo = plan(seeds, sweep_seeds, only, load_results(results_dir))
        pending = [(i, s, k) for i, (s, k) in enumerate(todo, 1) if not os.path.exists(result_path(results_dir, s, k))]
        if not pending:
            break
        i, setting, seed = pending[0]
        logger.info(f"[reproduce] ({i}/{len(todo)}) {pair} {setting.name} seed {seed}")
        result = run_one(pair, data_path, setting, seed, base_config, os.path.join(work_root, pair), results_dir)
        logger.info(f"[reproduce] {setting.name} seed {seed} done in {result['seconds']:.0f}s")
        md = write_report(pair, results_dir, command)
        if commit:
            subprocess.run(["git", "add", os.path.dirname(md)], cwd=REPO, check=True)
            subprocess.run(["git", "commit", "-q", "-m", f"reproduce: {pair} {setting.name} seed {seed}"], cwd=REPO,
                           check=False)
    logger.info(f"[reproduce] report: {write_report(pair, results_dir, command)}")
    return 0
