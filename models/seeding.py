"""Seeded decisions that do not depend on a global random state or on processing order.

Beam workers meet rows in any order and in any process; a decision hashed from (seed,
row key) is the same wherever and whenever it is taken.
"""
from __future__ import annotations

import hashlib


def stable_fraction(*parts) -> float:
    """A deterministic number in [0, 1) from the parts (seeded hashing, no global RNG)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64
