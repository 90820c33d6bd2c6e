"""Pure ingest logic: parsing, splitting, cold-start and long-tail marking, example building.

Kept free of Beam and TFX so every rule is unit-tested on hand-made rows; the Beam
component in `component.py` only wires these functions together.

A *row* is one (user, target domain) prediction task, as in the paper's CSV:
`{"user_id", "seq_x", "seq_y", "target_domain", "source"}` where `seq_*` are lists of raw
item id strings whose last target-domain element is the target item.
"""
from __future__ import annotations

import base64
import csv
import json
import os
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from models.seeding import stable_fraction

PAPER_HEADER = ["user_id", "seq_d1", "seq_d2", "domain_id"]
LONG_REQUIRED = ["user_id", "item_id", "domain"]
DOMAIN_VALUES = {"0": 0, "1": 1, "x": 0, "y": 1}
SPLITS = ("train", "eval", "test")


class IngestError(ValueError):
    """A bad input row or file; the message names the file, line and field.

    `reason` is a short code, counted per reason when the `skip` policy quarantines rows.
    """

    def __init__(self, message: str, reason: str = "invalid"):
        super().__init__(message)
        self.reason = reason


BAD_ROW_POLICIES = ("stop", "skip")


def bad_record(where: str, error: IngestError, raw) -> Dict:
    """One quarantine entry: where it was, why, and the raw input, so nothing is lost.

    Text stays text; bytes that are not UTF-8 are kept exactly as base64 (with a readable
    escaped copy), so the entry is plain JSON and the input can be restored.
    """
    return {"source": where, "reason": getattr(error, "reason", "invalid"), "error": str(error), "raw": _jsonable(raw)}


def _jsonable(raw):
    if isinstance(raw, dict):
        return {str(k): _jsonable(v) for k, v in raw.items()}
    if isinstance(raw, list):
        return [_jsonable(v) for v in raw]
    if isinstance(raw, bytes):
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(raw).decode("ascii"), "text": raw.decode("utf-8", "backslashreplace")}
    return raw


def _decode(raw, where: str) -> str:
    """Input is decoded per line or value, so one badly encoded line is one bad row, not a bad file."""
    if not isinstance(raw, bytes):
        return raw
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise IngestError(f"{where}: byte 0x{raw[e.start]:02x} at column {e.start + 1} is not valid UTF-8 "
                          "(mixed encodings? files must be UTF-8)", "encoding") from None


def _parse_id_list(text: str, where: str, field: str, max_length: int) -> List[str]:
    try:
        values = json.loads(text)
    except json.JSONDecodeError as e:
        raise IngestError(f"{where}: field '{field}' is not a JSON list: {text[:60]!r} ({e.msg})", "bad_json") from None
    if not isinstance(values, list):
        raise IngestError(f"{where}: field '{field}' is not a JSON list: {text[:60]!r}", "bad_json")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise IngestError(f"{where}: field '{field}' holds {v!r}; item ids must be non-negative integers",
                              "bad_id")
        out.append(str(v))
    if len(out) > max_length:
        raise IngestError(f"{where}: field '{field}' holds {len(out)} items, more than data.max_history_length="
                          f"{max_length} (raise the cap if such histories are real)", "too_long")
    return out


def detect_format(data_path: str, isdir: Callable[[str], bool] = os.path.isdir,
                  exists: Callable[[str], bool] = os.path.exists) -> str:
    """'paper' for a folder with train.csv and test.csv, 'long' for one CSV/Parquet file. The
    file system is passed in, so the command line checks a local path before TensorFlow loads."""
    if isdir(data_path):
        if all(exists(os.path.join(data_path, f)) for f in ("train.csv", "test.csv")):
            return "paper"
        raise IngestError(f"{data_path}: a folder must hold the paper's train.csv and test.csv")
    if exists(data_path) and data_path.endswith((".csv", ".parquet")):
        return "long"
    raise IngestError(f"{data_path}: not found, or not a folder / .csv / .parquet file")


def parse_paper_line(line, path: str, lineno: int, max_history_length: int) -> Dict:
    """Parses one data line (bytes or text) of the paper's CSV (`user_id,seq_d1,seq_d2,domain_id`)."""
    where = f"{path}:{lineno}"
    line = _decode(line, where)
    try:
        fields = next(csv.reader([line]))
    except csv.Error as e:  # e.g. a NUL byte
        raise IngestError(f"{where}: not a CSV line ({e})", "csv") from None
    if len(fields) != len(PAPER_HEADER):
        raise IngestError(f"{where}: expected {len(PAPER_HEADER)} columns {PAPER_HEADER}, found {len(fields)}",
                          "columns")
    user_id, seq_d1, seq_d2, domain_id = (f.strip() for f in fields)
    if not user_id:
        raise IngestError(f"{where}: field 'user_id' is empty", "bad_id")
    if domain_id not in ("0", "1"):
        raise IngestError(f"{where}: field 'domain_id' must be 0 or 1, found {domain_id!r}", "domain")
    row = {
        "user_id": user_id,
        "seq_x": _parse_id_list(seq_d1, where, "seq_d1", max_history_length),
        "seq_y": _parse_id_list(seq_d2, where, "seq_d2", max_history_length),
        "target_domain": int(domain_id),
        "source": where,
    }
    field = "seq_d1" if row["target_domain"] == 0 else "seq_d2"
    if not row["seq_x" if row["target_domain"] == 0 else "seq_y"]:
        raise IngestError(f"{where}: field '{field}' is empty but domain_id={domain_id} makes its last item the target",
                          "no_target")
    return row


def duplicate_key(row: Dict) -> Tuple:
    """The paper's CSV has one row per (user, target domain) per file; a second one is a duplicate."""
    return row.get("file_kind", ""), row["user_id"], row["target_domain"]


def split_duplicates(rows: Sequence[Dict]) -> Tuple[Dict, List[Tuple[Dict, IngestError]]]:
    """Keeps the first row (in file order) of a duplicate group; the rest get an error naming both lines."""
    ordered = sorted(rows, key=lambda r: source_order_key(r["source"]))
    first = ordered[0]
    errors = [(r, IngestError(f"{r['source']}: duplicate row: user_id {r['user_id']!r} with domain_id "
                              f"{r['target_domain']} is already at {first['source']}", "duplicate"))
              for r in ordered[1:]]
    return first, errors


def check_paper_header(line, path: str) -> None:
    line = _decode(line, f"{path}:1")
    header = [h.strip() for h in next(csv.reader([line.lstrip("\ufeff")]))]
    if header != PAPER_HEADER:
        missing = [c for c in PAPER_HEADER if c not in header]
        extra = [c for c in header if c not in PAPER_HEADER]
        raise IngestError(f"{path}:1: header must be {','.join(PAPER_HEADER)}, found {line.strip()!r}"
                          + (f"; missing column(s) {missing}" if missing else "")
                          + (f"; unexpected column(s) {extra}" if extra else ""), "columns")


def _raw_lines(path: str) -> Iterable[bytes]:
    import tensorflow as tf  # tf.io.gfile: local paths and gs:// alike

    with tf.io.gfile.GFile(path, "rb") as f:
        yield from f


def read_paper_file(path: str) -> Iterable[Tuple[str, int, bytes]]:
    """Yields (path, line number, raw bytes) for each non-blank data line; checks the header.

    File-level problems (empty file, bad header, no data rows) always stop the run: no
    row-level policy can make sense of them.
    """
    lines = _raw_lines(path)
    header = next(lines, b"")
    if not header.strip():
        raise IngestError(f"{path}: the file is empty (expected the header {','.join(PAPER_HEADER)})", "empty_file")
    check_paper_header(header, path)
    data_lines = 0
    for lineno, line in enumerate(lines, start=2):
        if line.strip():
            data_lines += 1
            yield path, lineno, line
    if data_lines == 0:
        raise IngestError(f"{path}: the file has a header but no data rows", "empty_file")


def domain_label(value) -> str:
    """A `domain` value as compared: text, stripped, lower case."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value).strip().lower()


def domain_mapping(seen: Sequence[Tuple[str, str]], configured: Sequence[str] = ()) -> Dict[str, int]:
    """{label: 0 for domain X, 1 for Y} from the labels of a long table's `domain` column.

    `seen` holds (label, where it first appears). `configured` (`data.domain_names`) names X
    and Y. Otherwise 0/1 and x/y keep their meaning when the column uses them, and else the
    first two labels in file order are the domains, X the one that sorts first. A row with
    any other label is a bad row (`parse_domain` names its line), as a typo should be.
    """
    if configured:
        names = [domain_label(n) for n in configured]
        if len(names) != 2 or names[0] == names[1]:
            raise IngestError(f"data.domain_names must name two different domains, found {list(configured)}", "domain")
        return {names[0]: 0, names[1]: 1}
    in_order = [label for label, _ in sorted(seen, key=lambda lw: source_order_key(lw[1]))]
    if not in_order or set(in_order) & set(DOMAIN_VALUES):
        return dict(DOMAIN_VALUES)
    return {label: i for i, label in enumerate(sorted(in_order[:2]))}


def domain_names(mapping: Dict[str, int]) -> List[str]:
    """The names of X and Y for reports: the labels the mapping gives 0 and 1 ("x", "y" for 0/1/x/y)."""
    if mapping == DOMAIN_VALUES:
        return ["x", "y"]
    return [label for label, _ in sorted(mapping.items(), key=lambda kv: kv[1])]


def parse_domain(value, where: str, mapping: Dict[str, int] = DOMAIN_VALUES) -> int:
    key = domain_label(value)
    if key not in mapping:
        allowed = "/".join(domain_names(mapping)) if mapping != DOMAIN_VALUES else "0/1/x/y"
        raise IngestError(f"{where}: field 'domain' must be one of {allowed}, found {value!r}", "domain")
    return mapping[key]


def parse_long_record(record: Dict, where: str, mapping: Dict[str, int] = DOMAIN_VALUES) -> Tuple[str, Tuple]:
    """Validates one long-table record -> (user_id, (timestamp or None, where, item_id, domain, record)).

    The record rides along so a user quarantined later (duplicates, too long) keeps its raw input.
    """
    if None in record:  # csv.DictReader puts values beyond the header under the key None
        raise IngestError(f"{where}: {len(record[None])} value(s) more than the header's {len(record) - 1} columns",
                          "columns")
    record = dict(record)
    for column, value in record.items():
        if value is None and column in LONG_REQUIRED + ["timestamp"]:
            raise IngestError(f"{where}: field '{column}' is missing or null (a CSV line with fewer values than the "
                              "header?)", "columns")
        record[column] = _decode(value, f"{where}: field '{column}'")
    user_id = str(record["user_id"]).strip()
    item_id = str(record["item_id"]).strip()
    if not user_id:
        raise IngestError(f"{where}: field 'user_id' is empty", "bad_id")
    if not item_id:
        raise IngestError(f"{where}: field 'item_id' is empty", "bad_id")
    domain = parse_domain(record["domain"], where, mapping)
    timestamp = None
    if "timestamp" in record:
        try:
            timestamp = float(record["timestamp"])
        except (TypeError, ValueError):
            raise IngestError(f"{where}: field 'timestamp' is not a number: {record['timestamp']!r}",
                              "timestamp") from None
        if timestamp != timestamp:
            raise IngestError(f"{where}: field 'timestamp' is NaN", "timestamp")
    return user_id, (timestamp, where, item_id, domain, record)


def read_long_table(path: str) -> Iterable[Tuple[str, Dict]]:
    """Yields (where, raw record) from a generic CSV or Parquet long table; checks the columns.

    File-level problems (empty, missing or unexpected columns, no data rows) always stop the run.
    """
    count = 0
    if path.endswith(".parquet"):
        import pyarrow as pa
        import pyarrow.parquet as pq
        import tensorflow as tf

        with tf.io.gfile.GFile(path, "rb") as f:  # pyarrow cannot use a GFile: read_table loads it all anyway
            table = pq.read_table(pa.BufferReader(f.read()))
        _check_long_columns(table.column_names, path)
        for i, record in enumerate(table.to_pylist()):
            count += 1
            yield f"{path}:row {i + 1}", record
    else:
        # surrogateescape keeps undecodable bytes; each such value is turned back into bytes
        # below, so the bad value (not the file) is rejected and Beam can move the record
        reader = csv.DictReader(line.decode("utf-8", "surrogateescape") for line in _raw_lines(path))
        if reader.fieldnames is None:
            raise IngestError(f"{path}: the file is empty (expected a header with {LONG_REQUIRED})", "empty_file")
        _decode(",".join(reader.fieldnames).encode("utf-8", "surrogateescape"), f"{path}:1")
        columns = [c.strip().lstrip("\ufeff") for c in reader.fieldnames]
        _check_long_columns(columns, path)
        reader.fieldnames = columns
        try:
            for record in reader:
                count += 1
                yield f"{path}:{reader.line_num}", {k: _undecoded(v) for k, v in record.items()}
        except csv.Error as e:  # the reader cannot go on past it: the file is not a text CSV
            raise IngestError(f"{path}:{reader.line_num + 1}: not a CSV line ({e})", "csv") from None
    if count == 0:
        raise IngestError(f"{path}: the file has a header but no data rows", "empty_file")


def _undecoded(value):
    """A CSV value holding undecodable bytes (surrogates) becomes bytes again; other values are unchanged."""
    if isinstance(value, str) and any("\udc80" <= ch <= "\udcff" for ch in value):
        return value.encode("utf-8", "surrogateescape")
    return value


def _check_long_columns(columns: Sequence[str], path: str) -> None:
    missing = [c for c in LONG_REQUIRED if c not in columns]
    extra = [c for c in columns if c not in LONG_REQUIRED + ["timestamp"]]
    if missing or extra or len(set(columns)) != len(columns):
        raise IngestError(f"{path}:1: a long table needs the columns {LONG_REQUIRED} and optionally 'timestamp'; "
                          f"missing {missing}, unexpected {extra}, found {list(columns)}", "columns")


def rows_from_user_events(user_id: str, events: Iterable[Tuple], max_history_length: int
                          ) -> Tuple[List[Dict], List[Tuple[str, Dict, IngestError]]]:
    """Turns one user's events into one row per domain the user has items in.

    Events are ordered by timestamp, ties by file position. The last item of a domain
    is that row's target; the other domain's full sequence is its other history.
    Returns (rows, rejected events as (where, raw record, error)): a repeat of an event
    with the same item, domain and timestamp is a duplicate (without timestamps a repeat
    is a real re-interaction), and a user whose history in a domain is longer than
    `max_history_length` is rejected whole.
    """
    ordered = sorted(events, key=lambda e: (e[0] or 0.0, source_order_key(e[1])))
    seen, kept, rejected = {}, [], []
    for event in ordered:
        timestamp, where, item, domain, record = event
        key = (timestamp, item, domain)
        if timestamp is not None and key in seen:
            rejected.append((where, record, IngestError(
                f"{where}: duplicate row: user {user_id!r}, item {item!r}, domain {domain}, timestamp {timestamp} "
                f"is already at {seen[key]}", "duplicate")))
            continue
        seen.setdefault(key, where)
        kept.append(event)
    seqs = ([], [])
    for _, _, item, domain, _ in kept:
        seqs[domain].append(item)
    for d in (0, 1):
        if len(seqs[d]) > max_history_length:
            first = kept[0][1]
            error = IngestError(f"{first}: user {user_id!r} has {len(seqs[d])} items in domain {d}, more than "
                                f"data.max_history_length={max_history_length} (raise the cap if such histories "
                                f"are real)", "too_long")
            return [], rejected + [(e[1], e[4], error) for e in kept]
    source = kept[0][1] if kept else ""
    rows = [{"user_id": user_id, "seq_x": list(seqs[0]), "seq_y": list(seqs[1]), "target_domain": d, "source": source}
            for d in (0, 1) if seqs[d]]
    return rows, rejected


def source_order_key(where: str):
    """Sorts "file:line" (or "file:row N") locations by file, then by line number as a number,
    so reports list rows in input order whichever Beam worker met them first."""
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


def long_tail_threshold(lengths: Sequence[int], share: float) -> float:
    """Mean length of the shortest `share` of rows (the long-tailed group of docs/method.md)."""
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


def held_out_items(rows: Sequence[Dict]) -> Dict[str, Tuple[set, set, List[bool]]]:
    """What each held-out split hides of one user: {split: (X items, Y items, [whole X, whole Y])}.

    An eval or test row hides its target; a cold-start row hides the whole history of its
    target domain (docs/method.md, data, split and leakage).
    """
    hidden: Dict[str, Tuple[set, set, List[bool]]] = {}
    for row in rows:
        if row["split"] == "train":
            continue
        items_x, items_y, whole = hidden.setdefault(row["split"], (set(), set(), [False, False]))
        target, hx, hy = target_and_histories(row)
        (items_x if row["target_domain"] == 0 else items_y).add(target)
        own, other = (hx, hy) if row["target_domain"] == 0 else (hy, hx)
        if is_cold_start(own, other):
            whole[row["target_domain"]] = True
    return hidden


# which held-out splits a row of each split must not see: train sees neither, eval not test
HIDDEN_FROM = {"train": ("eval", "test"), "eval": ("test",), "test": ()}


def remove_held_out(rows: Sequence[Dict], apply: bool = True) -> Tuple[List[Dict], Dict[str, int], List[Dict]]:
    """Leak-free rows of one user: no row shows what a later split's row of that user hides.

    Returns (rows, counts, touched): `counts` holds items removed and rows dropped per edited
    split (`train_items`, `train_rows`, `eval_items`, `eval_rows`); `touched` the held-out
    rows whose hidden items some other row showed (reported as the `leak_touched` group).
    A row whose target-domain list empties is dropped. With `apply=False` the rows are
    returned unchanged (the paper's raw split) and only `touched` is computed.
    """
    hidden = held_out_items(rows)
    counts: Dict[str, int] = {}
    touched_splits = set()
    out = []
    for row in rows:
        seqs, removed = [list(row["seq_x"]), list(row["seq_y"])], 0
        for split in HIDDEN_FROM[row["split"]]:
            if split not in hidden:
                continue
            items_x, items_y, whole = hidden[split]
            for d, items in ((0, items_x), (1, items_y)):
                kept = [] if whole[d] else [i for i in seqs[d] if i not in items]
                if len(kept) < len(seqs[d]):
                    touched_splits.add((split, d))
                removed += len(seqs[d]) - len(kept)
                seqs[d] = kept
        if not apply or removed == 0:
            out.append(row)
            continue
        counts[f"{row['split']}_items"] = counts.get(f"{row['split']}_items", 0) + removed
        if not seqs[row["target_domain"]]:
            counts[f"{row['split']}_rows"] = counts.get(f"{row['split']}_rows", 0) + 1
            continue
        out.append(dict(row, seq_x=seqs[0], seq_y=seqs[1]))
    touched = [{"user_id": r["user_id"], "target_domain": r["target_domain"], "split": r["split"]}
               for r in rows if (r["split"], r["target_domain"]) in touched_splits]
    return out, counts, touched
