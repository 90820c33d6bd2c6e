"""The embedded default dataset: a seeded synthetic two-domain interaction log.

Why synthetic: the demo and the end-to-end tests need data that ships with the code and
has known structure. Each user holds one latent interest shared by both domains
(planted cross-domain interest), so a model that transfers interest from the other
domain can rank a cold-start user's target far better than popularity can. Sequences
also follow a within-interest item order (a sequential signal) and have geometric
lengths, so most users are long-tailed. Overlapping and single-domain users are mixed;
the splitter then hides the target-domain history of 20% of overlapping eval/test rows
(cold-start users).

Output: a generic long table `user_id,item_id,domain,timestamp` (CSV), the same format
users bring, so the demo exercises the generic ingest path.
"""
from __future__ import annotations

import csv
import dataclasses
import os

import numpy as np


@dataclasses.dataclass
class SyntheticConfig:
    """Size and structure of the synthetic log.

    Args:
      num_users: users in the log.
      num_items_x / num_items_y: items per domain.
      num_interests: latent interests shared across domains.
      overlap_share: share of users with both domains; the rest have one domain.
      on_interest: probability that an item comes from the user's interest.
      follow_order: probability that an on-interest item is the successor of the previous one.
      mean_length: mean history length per domain (geometric, at least 1).
      max_length: cap on a domain's sequence length.
      seed: the one seed of the generator.
    """

    num_users: int = 3000
    num_items_x: int = 400
    num_items_y: int = 300
    num_interests: int = 12
    overlap_share: float = 0.5
    on_interest: float = 0.85
    follow_order: float = 0.5
    mean_length: float = 5.0
    max_length: int = 40
    seed: int = 7


def _domain_sequence(rng, interest, items_by_interest, num_items, cfg, length):
    own = items_by_interest[interest]
    seq, prev_rank = [], None
    for _ in range(length):
        if rng.random() < cfg.on_interest:
            if prev_rank is not None and rng.random() < cfg.follow_order:
                prev_rank = (prev_rank + 1) % len(own)
            else:  # mildly skewed choice within the interest: rank = floor(n * u^2)
                prev_rank = int(len(own) * rng.random() ** 2)
            seq.append(int(own[prev_rank]))
        else:
            prev_rank = None
            seq.append(int(rng.integers(num_items)))
    return seq


def generate(cfg: SyntheticConfig = SyntheticConfig()):
    """Returns a list of (user_id, item_id, domain, timestamp) tuples, deterministic in cfg.seed."""
    rng = np.random.default_rng(cfg.seed)
    by_interest = []
    for num_items in (cfg.num_items_x, cfg.num_items_y):
        perm = rng.permutation(num_items)
        by_interest.append([perm[k::cfg.num_interests] for k in range(cfg.num_interests)])
    rows = []
    for u in range(cfg.num_users):
        interest = int(rng.integers(cfg.num_interests))
        r = rng.random()
        domains = (0, 1) if r < cfg.overlap_share else ((0,) if r < (1 + cfg.overlap_share) / 2 else (1,))
        events = []
        for d in domains:
            length = min(cfg.max_length, int(rng.geometric(1.0 / cfg.mean_length)))
            num_items = cfg.num_items_x if d == 0 else cfg.num_items_y
            seq = _domain_sequence(rng, interest, by_interest[d], num_items, cfg, length)
            # at least two items in a one-domain user's log so each row has an input history
            if len(domains) == 1 and len(seq) < 2:
                seq += _domain_sequence(rng, interest, by_interest[d], num_items, cfg, 1)
            events.append((d, seq))
        t = 0
        pending = [(d, list(seq)) for d, seq in events]
        while any(seq for _, seq in pending):
            choices = [i for i, (_, seq) in enumerate(pending) if seq]
            d, seq = pending[choices[int(rng.integers(len(choices)))]]
            item = seq.pop(0)
            prefix = "x" if d == 0 else "y"
            rows.append((f"u{u}", f"{prefix}{item}", "xy"[d], t))
            t += 1
    return rows


def write_csv(path: str, cfg: SyntheticConfig = SyntheticConfig()) -> str:
    """Writes the log as a generic long table CSV and returns its path."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["user_id", "item_id", "domain", "timestamp"])
        writer.writerows(generate(cfg))
    return path
