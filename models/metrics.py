"""Ranking evaluation: fixed sampled candidates, ranks, HR@K / NDCG@K / MRR per domain and group.

Ties are broken against the positive: a negative scoring equal to the target counts as
ranked above it, so a model that scores everything equal gets no credit. A NaN score is
the lowest possible (-inf): a NaN positive ranks last, never first.
"""
from __future__ import annotations

import hashlib
from typing import Dict, Iterable, Optional, Sequence, Union

import numpy as np

DOMAINS = ("x", "y")
GROUPS = ("all", "cold_start", "long_tailed")


def row_seed(seed: int, user_id: str, domain: int) -> int:
    digest = hashlib.sha256(f"{seed}\x1f{user_id}\x1f{domain}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def sample_candidates(num_items: int, target: int, exclude: Iterable[int], num_negatives: int, seed: int) -> np.ndarray:
    """Negatives drawn uniformly from items 1..num_items that are not the target nor in `exclude`.

    Deterministic in `seed`, so every model is ranked against the same candidates. When
    fewer items are available, all of them are returned.
    """
    banned = set(int(i) for i in exclude) | {int(target)}
    available = num_items - len({i for i in banned if 1 <= i <= num_items})
    n = min(num_negatives, available)
    rng = np.random.default_rng(seed)
    if n >= available or n * 4 > num_items:
        pool = np.setdiff1d(np.arange(1, num_items + 1), np.fromiter(banned, np.int64))
        return rng.choice(pool, size=n, replace=False) if n < len(pool) else pool
    # rounds of 2x the missing count; each round keeps its draws' first occurrences in draw
    # order that are neither banned nor picked, in numpy rather than a Python loop per draw
    taken = np.zeros(num_items + 1, bool)
    taken[[i for i in banned if 0 <= i <= num_items]] = True
    picked = np.zeros(0, np.int64)
    while len(picked) < n:
        draws = rng.integers(1, num_items + 1, size=2 * (n - len(picked)))
        draws = draws[~taken[draws]]
        _, first = np.unique(draws, return_index=True)
        new = draws[np.sort(first)][: n - len(picked)]
        taken[new] = True
        picked = np.concatenate([picked, new])
    return picked


def candidate_matrix(rows: Sequence[Dict], num_items: Sequence[int], num_negatives: int, seed: int) -> np.ndarray:
    """[R, num_negatives] negatives per row (padded with -1), excluding the user's own items."""
    out = np.full((len(rows), num_negatives), -1, np.int64)
    for r, row in enumerate(rows):
        d = row["target_domain"]
        own = row["history_x"] if d == 0 else row["history_y"]
        negs = sample_candidates(num_items[d], row["target_item"], own, num_negatives,
                                 row_seed(seed, row["user_id"], d))
        out[r, : len(negs)] = negs
    return out


def finite_scores(scores: np.ndarray) -> np.ndarray:
    """NaN scores as -inf, so a NaN never wins a comparison (NaN >= x is False for every x)."""
    scores = np.asarray(scores, np.float64)
    nan = np.isnan(scores)
    return np.where(nan, -np.inf, scores) if nan.any() else scores  # no copy of a finite array


def sampled_ranks(scores: np.ndarray, targets: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """0-based rank of each target among its negatives (-1 entries are ignored); ties count against it."""
    scores = finite_scores(scores)
    pos = np.take_along_axis(scores, targets[:, None], axis=1)[:, 0]
    neg = np.take_along_axis(scores, np.maximum(negatives, 0), axis=1)
    return ((neg >= pos[:, None]) & (negatives > 0)).sum(axis=1)


def metric_values(ranks: np.ndarray, ks: Union[int, Sequence[int]] = (5, 10, 20)) -> Dict[str, float]:
    """HR@K and NDCG@K for each K, and MRR, from 0-based ranks (NaN for an empty group)."""
    ranks = np.asarray(ranks)
    ks = [ks] if isinstance(ks, int) else list(ks)
    out: Dict[str, float] = {}
    for k in ks:
        for metric in ("HR", "NDCG"):
            out[f"{metric}@{k}"] = float(row_values(ranks, metric, k).mean()) if len(ranks) else float("nan")
    out["MRR"] = float((1.0 / (ranks + 1.0)).mean()) if len(ranks) else float("nan")
    out["rows"] = int(len(ranks))
    return out


def row_values(ranks: np.ndarray, metric: str, k: int) -> np.ndarray:
    """Each row's HR@K or NDCG@K (0-based ranks), the values whose mean `metric_values` reports."""
    ranks = np.asarray(ranks, np.float64)
    if metric == "HR":
        return (ranks < k).astype(np.float64)
    if metric == "NDCG":
        return np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0)
    raise ValueError(f"metric must be 'HR' or 'NDCG', found {metric!r}")


def paired_difference(a: np.ndarray, b: np.ndarray, draws: int = 2000, seed: int = 0) -> Dict[str, float]:
    """Mean of a - b over rows two models both ranked, its standard error and a 95% bootstrap
    interval (rows resampled with replacement). Paired, because both models rank the same rows:
    their hits often fall on the same rows, so the difference is known better than the two
    means' separate errors suggest."""
    diff = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    n = len(diff)
    out = {"rows": n, "a": float(np.mean(a)) if n else float("nan"), "b": float(np.mean(b)) if n else float("nan"),
           "difference": float(diff.mean()) if n else float("nan")}
    if n < 2:
        return dict(out, standard_error=float("nan"), low=float("nan"), high=float("nan"))
    rng = np.random.default_rng(seed)
    means = np.concatenate([diff[rng.integers(0, n, (min(500, draws - done), n))].mean(axis=1)
                            for done in range(0, draws, 500)])
    low, high = np.percentile(means, [2.5, 97.5])
    return dict(out, standard_error=float(diff.std(ddof=1) / np.sqrt(n)), low=float(low), high=float(high))


def grouped_metrics(ranks: np.ndarray, domains: np.ndarray, cold: np.ndarray, long_tail: np.ndarray,
                    ks: Union[int, Sequence[int]] = (5, 10, 20),
                    extra: Optional[Dict[str, np.ndarray]] = None) -> Dict[str, Dict[str, Dict[str, float]]]:
    """{domain: {group: metrics}} for groups all, cold_start, long_tailed, plus any `extra`
    groups given as boolean row masks."""
    out = {}
    for d, name in enumerate(DOMAINS):
        in_d = domains == d
        out[name] = {
            "all": metric_values(ranks[in_d], ks),
            "cold_start": metric_values(ranks[in_d & (cold > 0)], ks),
            "long_tailed": metric_values(ranks[in_d & (long_tail > 0)], ks),
        }
        for group, mask in (extra or {}).items():
            out[name][group] = metric_values(ranks[in_d & np.asarray(mask, bool)], ks)
    return out


def format_table(results: Dict[str, Dict], k: int, title: str = "", names: Sequence[str] = ("X", "Y")) -> str:
    """A markdown table: one row per (domain, group), one column pair per model; `names`
    are the domains' display names."""
    models = list(results)
    header = "| domain | group | rows | " + " | ".join(f"{m} HR@{k} | {m} NDCG@{k}" for m in models) + " |"
    lines = ([f"### {title}", ""] if title else []) + [header, "|" + "---|" * (3 + 2 * len(models))]
    first = results[models[0]]
    for domain, name in zip(DOMAINS, names):
        for group in first[domain]:
            if first[domain][group]["rows"] == 0 and group not in GROUPS:  # an extra group with no rows here
                continue
            cells = [name, group, str(first[domain][group]["rows"])]
            for m in models:
                v = results[m][domain][group]
                cells += [f"{100 * v[f'HR@{k}']:.2f}", f"{100 * v[f'NDCG@{k}']:.2f}"]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
