"""The report of `i2vae reproduce`: `<results>/<pair>.md` with its tables and plots, rewritten
from all result files present (so partial results are always readable)."""
from __future__ import annotations

import json
import os
from typing import Dict, List, Optional

import numpy as np

from experiments.reproduce_runner import load_results_by_pair
from experiments.reproduce_settings import (
    BY_NAME,
    REPRODUCTION_BASE,
    SETTINGS,
    TUNED_MODELS,
    K,
    candidates,
    selected,
    selected_across_pairs,
    shared_seeds,
    validation_score,
)

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


def main_names(results: Dict[str, List[Dict]], by_pair: Optional[Dict[str, Dict[str, List[Dict]]]] = None) -> List[str]:
    """Table 2's columns: each main model's package default, the candidate with the best
    validation over every pair in `by_pair` (one rule for every model; this pair's own pick
    without it)."""
    def default(model):
        return selected_across_pairs(by_pair, model) if by_pair else selected(results, model)
    return [n for n in (default(s.name) for s in SETTINGS if s.table == "main" and s.name in results) if results.get(n)]


def _stat(values) -> str:
    v = 100 * np.asarray([x for x in values if x is not None and np.isfinite(x)], np.float64)
    if len(v) == 0:
        return "–"
    return f"{v.mean():.2f} ± {_sample_std(v):.2f}" if len(v) > 1 else f"{v.mean():.2f}"


def _sample_std(values) -> float:
    """The tables' spread (sample std, ddof=1); 0 for a single seed."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _values(runs, protocol, d, g, metric, split="test"):
    return [r[split][protocol][d][g][metric] for r in runs]


def rows_error(runs, d: str, g: str, metric: str, split: str = "test", protocol: str = "full") -> str:
    """One standard error of a figure from the rows it averages over (not the seeds: every seed
    ranks the same rows), with the row count: at most sqrt(m (1 - m) / n) for a mean m over n
    rows, exact for a hit rate and a bound for NDCG (per-row values in [0, 1]; the result
    files keep no per-row values to compute it exactly)."""
    values = [v for v in _values(runs, protocol, d, g, metric, split) if v is not None and np.isfinite(v)]
    n = runs[0][split][protocol][d][g].get("rows", 0) if runs else 0
    if not values or not n:
        return "–"
    m = float(np.mean(values))
    return f"±{100 * np.sqrt(m * (1 - m) / n):.2f} ({n})"


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
    weight = f", w {run['decoder_weight']['selected']}" if run.get("decoder_weight") else ""  # train.decoder_weight_grid
    graph = f", g {run['graph_blend']['selected']}" if run.get("graph_blend") else ""  # train.graph_blend_grid
    return f"{run['epochs_run']} ({'/'.join(map(str, selected_epochs(run)))}{weight}{graph})"


def _runs_line(results, names) -> str:
    parts = []
    for n in names:
        runs = results.get(n, [])
        if not runs:
            continue
        if any(r["epochs_run"] for r in runs):  # trained (a LightGCN file may predate its cap's record)
            cap = runs[0]["max_epochs"] or runs[0]["config"]["lightgcn"]["max_epochs"]
            epochs = [r["epochs_run"] for r in runs]
            best = [e for r in runs for e in selected_epochs(r)]
            resumed = sum(1 for r in runs if r.get("resumed_at"))
            parts.append(f"{BY_NAME[n].label}: {len(runs)} seed(s), {min(epochs)}–{max(epochs)} epochs run "
                         f"(cap {cap}), selected epoch {min(best)}–{max(best)}"
                         + (f", {resumed} resumed from an epoch backup" if resumed else ""))
        else:
            parts.append(f"{BY_NAME[n].label}: {len(runs)} run, no training")
    return "Behind each figure: " + "; ".join(parts) + "." if parts else ""


def _groups(results, names):
    """The user groups of a table (all, long-tailed, cold-start)."""
    return GROUPS


def main_table(pair, results, protocol="full", paper=False, value=None, names=None, split="test",
               runs_line=True) -> str:
    names = names or main_names(results)
    value = value or (lambda runs, d, g, m: _stat(_values(runs, protocol, d, g, m, split)))
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
    return "\n".join(lines) + ("\n\n" + _runs_line(results, names) if runs_line else "")


def settings_table(pair, results, table: str, extra_first: Optional[str] = "i2vae", protocol="full",
                   only: Optional[List[str]] = None) -> str:
    names = ([extra_first] if extra_first in results else []) + [s.name for s in SETTINGS
                                                                  if s.table == table and s.name in results
                                                                  and (only is None or s.name in only)]
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


def per_pair_section(pair: str, results: Dict[str, List[Dict]], defaults: List[str]) -> List[str]:
    """Where this pair's own validation picked another candidate than a model's package
    default, the per-pair picks' test figures, labelled as such (the tables above compare
    defaults with defaults)."""
    own = main_names(results)
    if own == defaults:
        return []
    changed = [f"{BY_NAME[d].label} → {BY_NAME[o].label}" for d, o in zip(defaults, own) if d != o]
    return ["## Per-pair picks (test, full ranking)", "",
            "This pair's own validation alone would pick other candidates (" + "; ".join(changed) + "). Not the "
            "package defaults: shown for reading only.", "", main_table(pair, results, names=own), ""]


def tuning_table(pair, results, by_pair=None) -> str:
    """Each model's candidates that ran, with their validation scores on their shared seeds
    (the same criterion as epoch selection). Validation only: test is read once, for the
    selected defaults in the tables above."""
    dx, dy = DOMAIN_NAMES.get(pair, ("X", "Y"))
    cols = ["overrides", "seeds", "epochs run (selected)", f"val NDCG@{K} {dx}", f"val NDCG@{K} {dy}", "val mean"] + [
        f"val {m}@{K} {dn} {g.replace('_', '-')}" for dn in (dx, dy) for g in GROUPS for m in ("HR", "NDCG")]
    lines = ["| candidate | " + " | ".join(cols) + " |", "|" + "---|" * (1 + len(cols))]
    for model in TUNED_MODELS:
        names = candidates(results, model)
        if len(names) < 2:
            continue
        seeds, own = shared_seeds(results, names), selected(results, model)
        best = selected_across_pairs(by_pair, model) if by_pair else own
        for n in names:
            runs = [r for r in results[n] if r["seed"] in seeds]
            label = {"i2vae": "i2VAE (base)", "sasrec": "SASRec (base)", "lightgcn": "LightGCN (base)"}.get(
                n, BY_NAME[n].label)
            cells = [("**default** " if n == best else "") + ("(this pair's pick) " if n == own != best else "") + label,
                     "<br>".join(f"`{o}`" for o in BY_NAME[n].overrides) or "–",
                     ",".join(map(str, seeds)), ", ".join(_epochs_text(r) for r in runs)]
            cells += [f"{100 * np.mean([r['eval']['full'][d]['all'][f'NDCG@{K}'] for r in runs]):.2f}"
                      for d in ("x", "y")]
            cells.append(f"{100 * np.mean([validation_score(r) for r in runs]):.2f}")
            cells += [f"{100 * np.mean([r['eval']['full'][d][g][f'{m}@{K}'] for r in runs]):.2f}"
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


def plots(pair, results, out_dir, names: List[str]) -> List[str]:
    """Learning curves (validation and test NDCG@10 per epoch) and the per-group comparison."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    # the trained models' defaults first, then the paper's i2VAE the ablations share
    order = [n for n in names if n not in ("lightgcn", "popularity")] + ["i2vae", "causal_encoder"]
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


def write_report(pair: str, results_dir: str, command: str, base_config: Optional[str] = None) -> str:
    by_pair = load_results_by_pair(os.path.dirname(results_dir))  # read once: this pair's and the default's
    results = by_pair.get(os.path.basename(os.path.normpath(results_dir)), {})
    with_config = ""
    if base_config:  # `--config`: applied on top of the base, under every setting's overrides
        with open(base_config) as f:
            with_config = (f" Then `{base_config}` applies on top of the base, under every setting's overrides: "
                           f"`{json.dumps(json.load(f), separators=(', ', ': '))}`. Each result file records the "
                           "config it ran.")
    out_dir = os.path.dirname(results_dir)
    md = os.path.join(out_dir, f"{pair}.md")
    compute = sum(r["seconds"] for runs in results.values() for r in runs)
    last = max((r["finished"] for runs in results.values() for r in runs), default="–")
    commits = sorted({r.get("commit", "unknown")[:12] for runs in results.values() for r in runs})
    names = main_names(results, by_pair)
    pngs = plots(pair, results, out_dir, names)
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
        "negatives are fixed. Every setting's overrides apply on top of the reproduction base "
        f"{', '.join(f'`{o}`' for o in REPRODUCTION_BASE)}: the paper's i2VAE with a 20-epoch budget and patience 3, "
        "the package defaults before the selected i2VAE candidate became the default (the tuning tables call it "
        "\"base\")." + with_config,
        "",
        "## All users, long-tailed and cold-start (test, full ranking, leak-free split)",
        "",
        main_table(pair, results, names=names),
        "",
        "How many test rows stand behind each figure above, and one standard error from those rows alone, which "
        "the seeds' spread does not show (every seed ranks the same rows): at most √(m(1 − m)/n) for a figure m "
        "over n rows, exact for HR@10 and a bound for NDCG@10. Two models rank the same rows, so the error of "
        "their difference can be smaller than either figure's when their hits fall on the same rows; the result "
        "files keep no per-row values to measure that, and `i2vae compare` measures it from two runs' ranks.",
        "",
        main_table(pair, results, names=names, value=rows_error, runs_line=False),
        "",
        "The same models and groups on the validation split (full ranking, at the selected epoch): the figures "
        "selection saw. Where a group's gap between two models changes sign between validation and test, "
        "neither split resolves it.",
        "",
        main_table(pair, results, names=names, split="eval", runs_line=False),
        "",
        "## The paper's protocol (test, 999 sampled negatives, leak-free split)",
        "",
        "999 negatives per row from a fixed seed, never the user's own items, ties counted against the "
        "positive. The paper's column is its best test value over epochs on the raw split, not a "
        "validation-selected figure: compare it with the paper-protocol table at the end.",
        "",
        main_table(pair, results, names=names, protocol="sampled", paper=True),
        "",
    ]
    parts += per_pair_section(pair, results, names)
    leaks = leak_table(pair, results)
    if leaks:
        parts += ["## The leak: rows it touched, raw split against leak-free split (test)", "",
                  "The paper's raw split (`data.leak_free=false`) shows some test rows' hidden items in another row "
                  "of the same user (a train row's other-domain list ends with the test target; for a cold-start "
                  "row, the whole hidden history). `rows` counts those test rows; each model was trained once on "
                  "each split (the same settings otherwise).", "", leaks, ""]
    if "i2vae" in results:
        best = names[0]
        parts += [f"## i2VAE at every cutoff (test): {BY_NAME[best].label}, the package default", "",
                  cutoffs_table(pair, results[best]), ""]
    if any(s.table == "ablation" and s.name in results for s in SETTINGS):
        ran = [s.name for s in SETTINGS if s.table == "ablation" and s.name in results]
        # the paper's ablations change its model (the "i2vae" setting); a candidate's
        # (`Setting.base`, the i2vae_default_* ones) change that candidate, beside which they are shown
        parts += ["## Ablations (test, full ranking)", "",
                  "; ".join(f"{BY_NAME[n].label}: {BY_NAME[n].about}" for n in ran) + ".", ""]
        bases = list(dict.fromkeys(BY_NAME[n].base or "i2vae" for n in ran))
        for first in bases:
            group = [n for n in ran if (BY_NAME[n].base or "i2vae") == first]
            parts += [settings_table(pair, results, "ablation", extra_first=first, only=group), ""]
    if any(s.table == "tuning" and s.name in results for s in SETTINGS):
        parts += ["## Tuning on the validation split", "",
                  "Per model, the candidate with the best mean validation full-ranking NDCG@10 of both domains, "
                  "over the seeds all its candidates share and averaged over the pairs, is the package default "
                  "(a tie keeps the earlier row); the tables above show the defaults. Validation only: test is "
                  "read once, for the defaults. \"w\" after a selected "
                  "epoch is the decoder's weight that validation kept (`train.decoder_weight_grid`), \"g\" the "
                  "generator graph's (`train.graph_blend_grid`).",
                  "", tuning_table(pair, results, by_pair), ""]
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
              main_table(pair, results, protocol="sampled", paper=True, names=names,
                         value=lambda runs, d, g, m: _stat([paper_protocol(r, d, g, m) for r in runs])), ""]
    for png in pngs:
        parts += [f"![{os.path.basename(png)}]({os.path.relpath(png, out_dir)})", ""]
    with open(md, "w") as f:
        f.write("\n".join(parts))
    return md
