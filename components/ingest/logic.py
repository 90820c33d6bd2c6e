"""Pure ingest logic: parsing, splitting, cold-start and long-tail marking, example building.

Kept free of Beam and TFX so every rule is unit-tested on hand-made rows; the Beam
component in `component.py` only wires these functions together.

A *row* is one (user, target domain) prediction task, as in the paper's CSV:
`{"user_id", "seq_x", "seq_y", "target_domain", "source"}` where `seq_*` are lists of raw
item id strings whose last target-domain element is the target item.
"""
from __future__ import annotations

import csv
import hashlib
import json
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

PAPER_HEADER = ["user_id", "seq_d1", "seq_d2", "domain_id"]
LONG_REQUIRED = ["user_id", "item_id", "domain"]
DOMAIN_VALUES = {"0": 0, "1": 1, "x": 0, "y": 1}
SPLITS = ("train", "eval", "test")


class IngestError(ValueError):
    """A bad input row; the message names the file, line and field."""


def stable_fraction(*parts) -> float:
    """A deterministic number in [0, 1) from the parts (seeded hashing, no global RNG)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def _parse_id_list(text: str, where: str, field: str) -> List[str]:
    try:
        values = json.loads(text)
    except json.JSONDecodeError as e:
        raise IngestError(f"{where}: field '{field}' is not a JSON list: {text[:60]!r} ({e.msg})") from None
    if not isinstance(values, list):
        raise IngestError(f"{where}: field '{field}' is not a JSON list: {text[:60]!r}")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int):
            raise IngestError(f"{where}: field '{field}' holds a non-integer item id {v!r}")
        out.append(str(v))
    return out


def parse_paper_line(line: str, path: str, lineno: int) -> Dict:
    """Parses one data line of the paper's CSV (`user_id,seq_d1,seq_d2,domain_id`)."""
    where = f"{path}:{lineno}"
    fields = next(csv.reader([line]))
    if len(fields) != len(PAPER_HEADER):
        raise IngestError(f"{where}: expected {len(PAPER_HEADER)} columns {PAPER_HEADER}, found {len(fields)}")
    user_id, seq_d1, seq_d2, domain_id = (f.strip() for f in fields)
    if not user_id:
        raise IngestError(f"{where}: field 'user_id' is empty")
    if domain_id not in ("0", "1"):
        raise IngestError(f"{where}: field 'domain_id' must be 0 or 1, found {domain_id!r}")
    row = {
        "user_id": user_id,
        "seq_x": _parse_id_list(seq_d1, where, "seq_d1"),
        "seq_y": _parse_id_list(seq_d2, where, "seq_d2"),
        "target_domain": int(domain_id),
        "source": where,
    }
    field = "seq_d1" if row["target_domain"] == 0 else "seq_d2"
    if not row["seq_x" if row["target_domain"] == 0 else "seq_y"]:
        raise IngestError(f"{where}: field '{field}' is empty but domain_id={domain_id} makes its last item the target")
    return row


def check_paper_header(line: str, path: str) -> None:
    header = [h.strip() for h in next(csv.reader([line]))]
    if header != PAPER_HEADER:
        raise IngestError(f"{path}:1: header must be {','.join(PAPER_HEADER)}, found {line.strip()!r}")


def read_paper_file(path: str) -> Iterable[Tuple[str, int, str]]:
    """Yields (path, line number, text) for each data line; checks the header."""
    with open(path, encoding="utf-8") as f:
        header = f.readline()
        if not header:
            raise IngestError(f"{path}: the file is empty")
        check_paper_header(header, path)
        for lineno, line in enumerate(f, start=2):
            if line.strip():
                yield path, lineno, line


def parse_domain(value: str, where: str) -> int:
    key = str(value).strip().lower()
    if key not in DOMAIN_VALUES:
        raise IngestError(f"{where}: field 'domain' must be one of 0/1/x/y, found {value!r}")
    return DOMAIN_VALUES[key]


def parse_long_record(record: Dict, where: str, has_timestamp: bool) -> Tuple[str, Tuple]:
    """Validates one long-table record -> (user_id, (timestamp, order, item_id, domain))."""
    user_id = str(record["user_id"]).strip() if record["user_id"] is not None else ""
    item_id = str(record["item_id"]).strip() if record["item_id"] is not None else ""
    if not user_id:
        raise IngestError(f"{where}: field 'user_id' is empty")
    if not item_id:
        raise IngestError(f"{where}: field 'item_id' is empty")
    domain = parse_domain(record["domain"], where)
    timestamp = 0.0
    if has_timestamp:
        try:
            timestamp = float(record["timestamp"])
        except (TypeError, ValueError):
            raise IngestError(f"{where}: field 'timestamp' is not a number: {record['timestamp']!r}") from None
    return user_id, (timestamp, where, item_id, domain)


def read_long_table(path: str) -> Iterable[Tuple[str, Tuple]]:
    """Yields parsed (user_id, event) pairs from a generic CSV or Parquet long table."""
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        columns = table.column_names
        _check_long_columns(columns, path)
        has_ts = "timestamp" in columns
        for i, record in enumerate(table.to_pylist()):
            yield parse_long_record(record, f"{path}:row {i + 1}", has_ts)
        return
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None:
            raise IngestError(f"{path}: the file is empty")
        columns = [c.strip() for c in reader.fieldnames]
        _check_long_columns(columns, path)
        reader.fieldnames = columns
        has_ts = "timestamp" in columns
        for record in reader:
            yield parse_long_record(record, f"{path}:{reader.line_num}", has_ts)


def _check_long_columns(columns: Sequence[str], path: str) -> None:
    missing = [c for c in LONG_REQUIRED if c not in columns]
    if missing:
        raise IngestError(f"{path}:1: missing column(s) {missing}; a long table needs {LONG_REQUIRED} and optionally 'timestamp'")


def rows_from_user_events(user_id: str, events: Iterable[Tuple]) -> List[Dict]:
    """Turns one user's events into one row per domain the user has items in.

    Events are ordered by timestamp, ties by file position. The last item of a domain
    is that row's target; the other domain's full sequence is its other history.
    """
    ordered = sorted(events, key=lambda e: (e[0], _order_key(e[1])))
    seqs = ([], [])
    for _, _, item, domain in ordered:
        seqs[domain].append(item)
    source = ordered[0][1] if ordered else ""
    return [
        {"user_id": user_id, "seq_x": list(seqs[0]), "seq_y": list(seqs[1]), "target_domain": d, "source": source}
        for d in (0, 1)
        if seqs[d]
    ]


def _order_key(where: str):
    path, _, pos = where.rpartition(":")
    digits = "".join(ch for ch in pos if ch.isdigit())
    return (path, int(digits) if digits else 0)


def split_of_long_user(user_id: str, cfg) -> str:
    """80/10/10 by user (configurable), from a seeded hash of the user id."""
    u = stable_fraction("split", cfg.seed, user_id)
    if u < cfg.eval_fraction:
        return "eval"
    if u < cfg.eval_fraction + cfg.test_fraction:
        return "test"
    return "train"


def split_of_paper_row(user_id: str, file_kind: str, cfg) -> str:
    """The paper's test rows stay test; train users are carved into train / eval by user."""
    if file_kind == "test":
        return "test"
    return "eval" if stable_fraction("val", cfg.seed, user_id) < cfg.val_fraction else "train"


def target_and_histories(row: Dict) -> Tuple[str, List[str], List[str]]:
    """Splits a row into (target item, history_x, history_y): the target is the last target-domain item."""
    seq_x, seq_y = row["seq_x"], row["seq_y"]
    if row["target_domain"] == 0:
        return seq_x[-1], seq_x[:-1], list(seq_y)
    return seq_y[-1], list(seq_x), seq_y[:-1]


def maybe_make_cold_start(row: Dict, split: str, cfg) -> Dict:
    """Hides the target-domain history of a share of overlapping eval rows.

    The paper built its test.csv this way (20% of overlapping rows); the generic table's
    eval and test splits and the paper's carved validation split get the same treatment,
    so model selection sees cold-start rows too. The paper's test.csv is already made.
    """
    if split == "train" or row.get("file_kind") == "test":
        return row
    target, hx, hy = target_and_histories(row)
    if not hx or not hy:
        return row
    if stable_fraction("cold", cfg.seed, row["user_id"], row["target_domain"]) >= cfg.cold_start_fraction:
        return row
    out = dict(row)
    if row["target_domain"] == 0:
        out["seq_x"] = [target]
    else:
        out["seq_y"] = [target]
    return out


def thin_train_row(row: Dict, cfg) -> Tuple[Optional[Dict], int]:
    """Applies the density (D_s) and overlap (K_o) sweeps to one train row.

    Returns (row or None when the row is removed, number of history items removed). The
    decisions hash (seed, user, ...), so a user's two rows are thinned consistently.
    """
    removed = 0
    seqs = [list(row["seq_x"]), list(row["seq_y"])]
    if cfg.train_overlap < 1.0 and seqs[0] and seqs[1] and \
            stable_fraction("overlap", cfg.seed, row["user_id"]) >= cfg.train_overlap:
        dropped = 0 if stable_fraction("overlap-domain", cfg.seed, row["user_id"]) < 0.5 else 1
        if dropped == row["target_domain"]:
            return None, len(seqs[dropped]) - 1
        removed += len(seqs[dropped])
        seqs[dropped] = []
    if cfg.train_density < 1.0:
        for d in (0, 1):
            last = len(seqs[d]) - 1 if d == row["target_domain"] else -1  # the target always stays
            kept = [item for i, item in enumerate(seqs[d]) if i == last or
                    stable_fraction("density", cfg.seed, row["user_id"], d, i) < cfg.train_density]
            removed += len(seqs[d]) - len(kept)
            seqs[d] = kept
    if removed == 0:
        return row, 0
    return dict(row, seq_x=seqs[0], seq_y=seqs[1]), removed


def is_cold_start(history_target: Sequence, history_other: Sequence) -> bool:
    """Cold-start in the target domain: no history there, a history in the other domain."""
    return len(history_target) == 0 and len(history_other) > 0


def long_tail_threshold(lengths: Sequence[int], share: float = 0.8) -> float:
    """Mean length of the shortest `share` of rows (DESIGN.md's long-tailed definition)."""
    if len(lengths) == 0:
        return 0.0
    ordered = np.sort(np.asarray(lengths, dtype=np.float64))
    count = max(1, int(np.floor(share * len(ordered))))
    return float(ordered[:count].mean())


def row_history_length(row: Dict) -> int:
    """Input history length of a row in its target domain (what long-tailed is measured on)."""
    _, hx, hy = target_and_histories(row)
    return len(hx) if row["target_domain"] == 0 else len(hy)


def is_long_tailed(history_len: int, threshold: float, cold_start: bool) -> bool:
    """Long-tailed: a short but non-empty target-domain history; cold-start rows are their own group."""
    return (not cold_start) and 1 <= history_len <= threshold


def build_vocab(items: Iterable[str]) -> List[str]:
    """Deterministic vocabulary order: numeric ids by value, then other ids by text."""
    return sorted(set(items), key=lambda s: (0, int(s), s) if s.isdigit() else (1, 0, s))


def build_example_features(row: Dict, vocab_x: Dict[str, int], vocab_y: Dict[str, int], threshold: float) -> Dict:
    """Maps a row to the example's features (item indices are 1-based; 0 is padding)."""
    target, hx, hy = target_and_histories(row)
    domain = row["target_domain"]
    target_vocab = vocab_x if domain == 0 else vocab_y
    h_target, h_other = (hx, hy) if domain == 0 else (hy, hx)
    cold = is_cold_start(h_target, h_other)
    return {
        "user_id": row["user_id"],
        "history_x": [vocab_x[i] for i in hx],
        "history_y": [vocab_y[i] for i in hy],
        "target_item": target_vocab[target],
        "target_domain": domain,
        "is_cold_start": int(cold),
        "is_long_tailed": int(is_long_tailed(len(h_target), threshold, cold)),
    }


def domain_items(row: Dict) -> Tuple[List[str], List[str]]:
    return row["seq_x"], row["seq_y"]
