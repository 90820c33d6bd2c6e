"""`i2vae compare RUN_A RUN_B`: two trained runs on the same rows, per domain and user group,
with the paired difference of HR@K and NDCG@K, its standard error and a 95% bootstrap interval.

Why paired: both runs rank the same test rows, so a gap is known better from the per-row
differences than from the two means' separate errors (the results pages show those, since
their result files keep no per-row values). The rows come from each run's RankingEvaluator
output (`ranks_<split>.csv`, one line per row with its 0-based ranks), matched by user,
target domain and target item; two runs on different splits are an error, not a comparison.

A side may be several runs, comma-separated (the seeds of one model): each row's HR and NDCG
are then that side's mean over its runs, so the interval is over rows of seed-averaged
values, the paired form of a multi-seed table's cell.
"""
from __future__ import annotations

import csv
import glob
import os
from typing import Dict, List, Optional, Tuple

import numpy as np

from models import config, feature_spec, metrics

KEY = ("user_id", "target_domain", "target_item")
GROUP_COLUMNS = {"long_tailed": "is_long_tailed", "cold_start": "is_cold_start"}


def ranks_file(run: str, split: str) -> str:
    """The ranks CSV of `run`: the file itself, the one in an evaluation folder, or the newest
    RankingEvaluator output of a run directory (the `--out` of `i2vae run`) or of its pipeline root."""
    if os.path.isfile(run):
        return run
    if os.path.isfile(os.path.join(run, f"ranks_{split}.csv")):  # one evaluation's folder
        return os.path.join(run, f"ranks_{split}.csv")
    pattern = os.path.join("RankingEvaluator", "evaluation", "*", f"ranks_{split}.csv")
    found = glob.glob(os.path.join(run, "pipeline_root", pattern)) + glob.glob(os.path.join(run, pattern))
    if not found:
        raise config.ConfigError(f"{run}: no ranks_{split}.csv under it (expected a run directory of `i2vae run` "
                                 f"or a ranks CSV file)")
    return max(found, key=lambda p: int(p.split(os.sep)[-2]) if p.split(os.sep)[-2].isdigit() else -1)


def read_ranks(path: str, model: Optional[str], protocol: str) -> Tuple[str, Dict[Tuple, Tuple[int, Dict]]]:
    """(the model column read, {row key: (rank, row)}) of one ranks CSV; `model` None takes the
    file's first model (the trained one; popularity comes after it)."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        suffix = f"_{protocol}_rank"
        models = [c[: -len(suffix)] for c in reader.fieldnames or [] if c.endswith(suffix)]
        missing = [c for c in KEY + tuple(GROUP_COLUMNS.values()) if c not in (reader.fieldnames or [])]
        if missing or not models:
            raise config.ConfigError(f"{path}:1: not a ranks file (missing columns {missing or [f'*{suffix}']})")
        model = model or models[0]
        if model not in models:
            raise config.ConfigError(f"{path}:1: no model {model!r} in it; it holds {models}")
        rows = {}
        for line, row in enumerate(reader, start=2):
            key = tuple(row[c] for c in KEY)
            if key in rows:
                raise config.ConfigError(f"{path}:{line}: the row {dict(zip(KEY, key))} appears twice")
            try:
                rows[key] = (int(row[model + suffix]), row)
            except ValueError:
                raise config.ConfigError(f"{path}:{line}: field {model + suffix} is "
                                         f"{row[model + suffix]!r}, not a rank") from None
    return model, rows


def read_side(runs: str, split: str, model: Optional[str], protocol: str) -> Tuple[List[str], str, Dict[Tuple, list]]:
    """(files, model, {row key: (ranks over the runs, row)}) of one side: `runs` is one run or several,
    comma-separated, which must rank the same rows."""
    paths = [ranks_file(run, split) for run in runs.split(",")]
    name, rows = read_ranks(paths[0], model, protocol)
    side = {key: ([rank], row) for key, (rank, row) in rows.items()}
    for path in paths[1:]:
        other_name, other = read_ranks(path, model, protocol)
        if other_name != name or other.keys() != rows.keys():
            raise config.ConfigError(f"{paths[0]} and {path} are not two runs of one model on the same rows "
                                     f"({name} and {other_name}, {len(rows.keys() ^ other.keys())} rows in one only)")
        for key, (rank, _) in other.items():
            side[key][0].append(rank)
    return paths, name, side


def compare(run_a: str, run_b: str, split: str = "test", k: int = 10, protocol: str = "full",
            model_a: Optional[str] = None, model_b: Optional[str] = None, draws: int = 2000,
            seed: int = 0) -> Dict:
    """{"a", "b": (each side's ranks files, model), "cells": [{domain, group, metric, rows, a, b,
    difference, standard_error, low, high}]} over the rows both sides ranked (they must be the same rows)."""
    paths_a, name_a, rows_a = read_side(run_a, split, model_a, protocol)
    paths_b, name_b, rows_b = read_side(run_b, split, model_b, protocol)
    only_a, only_b = rows_a.keys() - rows_b.keys(), rows_b.keys() - rows_a.keys()
    if only_a or only_b:
        raise config.ConfigError(f"{','.join(paths_a)} and {','.join(paths_b)} rank different rows "
                                 f"({len(only_a)} only in the first, {len(only_b)} only in the second): runs on "
                                 "different data or splits")
    keys = sorted(rows_a)
    ranks_a = np.array([rows_a[key][0] for key in keys])  # [rows, runs of A]
    ranks_b = np.array([rows_b[key][0] for key in keys])
    domain = np.array([int(key[1]) for key in keys])
    flags = {g: np.array([rows_a[key][1][c] == "1" for key in keys]) for g, c in GROUP_COLUMNS.items()}
    cells = []
    for d, name in enumerate(metrics.DOMAINS):
        for group in ("all", "long_tailed", "cold_start"):
            rows = (domain == d) & flags.get(group, np.ones(len(keys), bool))
            for metric in ("HR", "NDCG"):
                values_a, values_b = (metrics.row_values(ranks[rows], metric, k).mean(axis=1)
                                      for ranks in (ranks_a, ranks_b))  # each row's mean over the side's runs
                cells.append(dict(domain=name, group=group, metric=f"{metric}@{k}",
                                  **metrics.paired_difference(values_a, values_b, draws, seed)))
    return {"a": (paths_a, name_a), "b": (paths_b, name_b), "split": split, "protocol": protocol, "cells": cells}


def format_comparison(result: Dict, names: Tuple[str, str] = ("X", "Y")) -> str:
    """The comparison as a Markdown table, figures in %."""
    (paths_a, model_a), (paths_b, model_b) = result["a"], result["b"]
    lines = [f"A: {model_a} in {','.join(paths_a)}", f"B: {model_b} in {','.join(paths_b)}",
             f"{result['split']} split, {result['protocol']} ranking; A - B with its paired standard error and "
             "95% bootstrap interval over rows, in %", "",
             "| domain | group | metric | rows | A | B | A - B | standard error | 95% interval |",
             "|---|---|---|---|---|---|---|---|---|"]
    labels = dict(zip(metrics.DOMAINS, names))
    for c in result["cells"]:
        if not c["rows"]:
            continue
        lines.append(f"| {labels[c['domain']]} | {c['group'].replace('_', '-')} | {c['metric']} | {c['rows']} | "
                     f"{100 * c['a']:.2f} | {100 * c['b']:.2f} | {100 * c['difference']:+.2f} | "
                     f"{100 * c['standard_error']:.2f} | [{100 * c['low']:+.2f}, {100 * c['high']:+.2f}] |")
    return "\n".join(lines)


def domain_names(path: str) -> Tuple[str, str]:
    """The domains' display names from the run's ingest output, where the ranks file sits in a
    pipeline root; ("X", "Y") otherwise."""
    root = path.split(os.sep + "RankingEvaluator" + os.sep)[0]
    found = sorted(glob.glob(os.path.join(root, "InteractionExampleGen", "examples", "*")))
    names = feature_spec.read_domain_names(found[-1]) if found else ("x", "y")
    return feature_spec.display_name(names[0]), feature_spec.display_name(names[1])
