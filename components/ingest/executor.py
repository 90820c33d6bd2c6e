"""Beam graph of InteractionExampleGen: files -> validated rows -> split TFRecords + vocabularies.

The DoFns are module-level functions so Beam's multi-processing DirectRunner (and
Dataflow, Flink, Spark) can import them.
"""
from __future__ import annotations

import json
import os
from typing import Dict, List, Tuple

import apache_beam as beam
import tensorflow as tf

from components.ingest import logic
from models import feature_spec

QUARANTINE_DIR = "quarantine"
QUARANTINE_FILE = os.path.join(QUARANTINE_DIR, "bad_rows.jsonl")


def detect_format(data_path: str) -> str:
    """'paper' for a folder with train.csv and test.csv, 'long' for one CSV/Parquet file (any
    tf.io.gfile path, e.g. gs://)."""
    return logic.detect_format(data_path, tf.io.gfile.isdir, tf.io.gfile.exists)


BAD = "bad"  # tagged output of every step that can reject a row
USED = "used"  # tagged output: number of input records behind the rows a step let through


def _reject(error: logic.IngestError, where: str, raw, policy: str):
    """`stop`: the run ends with the error. `skip`: the row goes to quarantine, counted."""
    if policy == "stop":
        raise error
    return beam.pvalue.TaggedOutput(BAD, logic.bad_record(where, error, raw))


def _paper_lines(file_and_kind: Tuple[str, str]):
    path, kind = file_and_kind
    for path, lineno, line in logic.read_paper_file(path):
        yield path, lineno, line, kind


def _parse_paper(element, policy: str, max_history_length: int):
    path, lineno, line, kind = element
    try:
        row = logic.parse_paper_line(line, path, lineno, max_history_length)
    except logic.IngestError as e:
        yield _reject(e, f"{path}:{lineno}", line, policy)
        return
    row["file_kind"] = kind
    row["raw"] = line
    yield row


def _first_of_duplicates(keyed_rows, policy: str):
    _, rows = keyed_rows
    first, errors = logic.split_duplicates(list(rows))
    for row, error in errors:
        yield _reject(error, row["source"], row["raw"], policy)
    yield beam.pvalue.TaggedOutput(USED, 1)
    yield {k: v for k, v in first.items() if k != "raw"}


def _domain_label(element):
    """(label, where) of a record whose domain is text; a missing or undecodable one is the
    record's own error, reported when it is parsed."""
    where, record = element
    value = record.get("domain")
    if isinstance(value, str) and value.strip():
        yield logic.domain_label(value), where


def _parse_long(element, policy: str, mapping):
    where, record = element
    try:
        yield logic.parse_long_record(record, where, mapping)
    except logic.IngestError as e:
        yield _reject(e, where, record, policy)


def _long_rows(user_events, policy: str, max_history_length: int):
    user_id, events = user_events
    events = list(events)
    rows, rejected = logic.rows_from_user_events(user_id, events, max_history_length)
    for where, record, error in rejected:
        yield _reject(error, where, record, policy)
    yield beam.pvalue.TaggedOutput(USED, len(events) - len(rejected))
    for row in rows:
        row["file_kind"] = "long"
        yield row


def _with_split(row: Dict, cfg) -> List[Dict]:
    """Assigns the split, makes cold-start rows, and thins train rows for the density and
    overlap sweeps. A row the overlap sweep removes comes out as a `removed` marker, so the
    report can count it."""
    if row["file_kind"] == "long":
        split = logic.split_of_long_user(row["user_id"], cfg)
    else:
        split = logic.split_of_paper_row(row["user_id"], row["file_kind"], cfg)
    row = logic.maybe_make_cold_start(row, split, cfg)
    removed = 0
    if split == "train":
        row, removed = logic.thin_train_row(row, cfg)
    if row is None:
        return [{"split": "removed", "removed_items": removed}]
    return [dict(row, split=split, removed_items=removed)]


LEAK = "leak"  # tagged output: (count name, n) of held-out items removed per split
TOUCHED = "touched"  # tagged output: the held-out rows whose hidden items another row showed


def _held_out(user_rows, apply: bool):
    """One user's rows, leak-free (`logic.remove_held_out`), with what was removed as counts."""
    _, rows = user_rows
    kept, counts, touched = logic.remove_held_out(sorted(rows, key=lambda r: logic.source_order_key(r["source"])),
                                                  apply)
    for name, n in counts.items():
        yield beam.pvalue.TaggedOutput(LEAK, (name, n))
    for row in touched:
        yield beam.pvalue.TaggedOutput(TOUCHED, row)
    yield from kept


def _write_touched(touched: List[Dict], output_dir: str) -> None:
    """The held-out rows the paper's raw split leaks into other rows, so reports can show them
    as a group (`leak_touched`) whether or not the leak was removed."""
    rows = sorted(touched, key=lambda r: (r["split"], r["user_id"], r["target_domain"]))
    with tf.io.gfile.GFile(os.path.join(output_dir, feature_spec.LEAK_TOUCHED_FILE), "w") as f:
        json.dump(rows, f)


def _thinning_key(row: Dict):
    yield "train_items_removed", row["removed_items"]
    if row["split"] == "removed":
        yield "train_rows_removed", 1


class _ToExample(beam.DoFn):
    """Builds the example; the vocab index maps are built once per worker, not per row."""

    def process(self, row, vocab_x, vocab_y, threshold):
        if getattr(self, "_key", None) != (len(vocab_x), len(vocab_y)):
            self._index_x = {item: i + 1 for i, item in enumerate(vocab_x)}
            self._index_y = {item: i + 1 for i, item in enumerate(vocab_y)}
            self._key = (len(vocab_x), len(vocab_y))
        feats = logic.build_example_features(row, self._index_x, self._index_y, threshold)
        yield row["split"], feats


def _write_vocabs(vocabs, output_dir: str):
    vocab_x, vocab_y = vocabs
    tf.io.gfile.makedirs(os.path.join(output_dir, feature_spec.VOCAB_DIR))
    for name, vocab in zip(feature_spec.VOCAB_FILES, (vocab_x, vocab_y)):
        feature_spec.write_lines(os.path.join(output_dir, feature_spec.VOCAB_DIR, name), vocab)


def _write_domain_names(names, output_dir: str):
    feature_spec.write_domain_names(output_dir, names)


def _count_key(split_feats) -> Tuple[str, str]:
    split, feats = split_feats
    group = ("cold_start" if feats[feature_spec.IS_COLD_START]
             else "long_tailed" if feats[feature_spec.IS_LONG_TAILED] else "other")
    return f"{split}/{'xy'[feats[feature_spec.TARGET_DOMAIN]]}/{group}"


def _write_quarantine(bad_rows: List[Dict], output_dir: str) -> None:
    """All rejected rows in file order, one JSON object per line; written even when empty, so
    a reader can tell "nothing rejected" from "not written"."""
    tf.io.gfile.makedirs(os.path.join(output_dir, QUARANTINE_DIR))
    lines = [json.dumps(bad) + "\n" for bad in sorted(bad_rows, key=lambda b: logic.source_order_key(b["source"]))]
    with tf.io.gfile.GFile(os.path.join(output_dir, QUARANTINE_FILE), "w") as f:
        f.write("".join(lines))  # one write, also when empty: GFile creates no file until written to


def _records_report(read: int, used: int, bad_rows: List[Dict], policy: str, output_dir: str) -> Dict:
    reasons: Dict[str, int] = {}
    for bad in bad_rows:
        reasons[bad["reason"]] = reasons.get(bad["reason"], 0) + 1
    report = {"bad_rows_policy": policy, "read": read, "used": used, "quarantined": len(bad_rows),
              "quarantined_by_reason": dict(sorted(reasons.items())),
              "quarantine_file": os.path.join(output_dir, QUARANTINE_FILE)}
    if read != used + len(bad_rows):  # every input record is used or quarantined, never lost
        raise RuntimeError(f"ingest lost input records: read {read} != used {used} + quarantined {len(bad_rows)}")
    return report


def _write_report(counts, vocabs, threshold, thinning, output_dir: str, data_path: str, data_format: str,
                  cfg=None, records=None, leaks=None):
    report = {
        "data_path": data_path,
        "data_format": data_format,
        "rows": dict(sorted(counts)),
        "rows_by_split": {},
        "num_items_x": len(vocabs[0]),
        "num_items_y": len(vocabs[1]),
        # The paper's id space is shared; an id in both lists is kept once per domain vocabulary.
        "item_ids_in_both_domains": len(set(vocabs[0]) & set(vocabs[1])),
        "long_tail_threshold": threshold,
        # the density / overlap sweeps (data.train_density, data.train_overlap); 0 when off
        "train_density": getattr(cfg, "train_density", 1.0),
        "train_overlap": getattr(cfg, "train_overlap", 1.0),
        "train_items_removed": int(thinning.get("train_items_removed", 0)),
        "train_rows_removed": int(thinning.get("train_rows_removed", 0)),
        # input records (paper: CSV data lines; long: table records): read = used + quarantined
        "input_records": records,
        # leak-free split (data.leak_free): held-out items removed from the rows of each split
        # that must not see them (train: eval and test targets; eval: test targets), and the
        # rows dropped because their target-domain list emptied
        "leak_free": getattr(cfg, "leak_free", True),
        "held_out_removed": {split: {"items": int((leaks or {}).get(f"{split}_items", 0)),
                                     "rows_dropped": int((leaks or {}).get(f"{split}_rows", 0))}
                             for split in ("train", "eval")},
    }
    for key, n in counts:
        split = key.split("/")[0]
        report["rows_by_split"][split] = report["rows_by_split"].get(split, 0) + n
    with tf.io.gfile.GFile(os.path.join(output_dir, "ingest_report.json"), "w") as f:
        json.dump(report, f, indent=2)


def report_lines(report: Dict) -> List[str]:
    """The progress lines of an ingest report (the component logs them after Beam is done,
    in its own process: Beam's workers keep their output to themselves)."""
    threshold, records, data_path, data_format = (report["long_tail_threshold"], report["input_records"],
                                                  report["data_path"], report["data_format"])
    lines = [f"[ingest] {data_path} ({data_format}): rows {report['rows_by_split']}, "
             f"items X={report['num_items_x']} Y={report['num_items_y']}, long-tail threshold {threshold:.2f}"]
    if records and records["quarantined"]:
        lines.append(f"[ingest] quarantined {records['quarantined']} of {records['read']} input records "
                     f"{records['quarantined_by_reason']} -> {records['quarantine_file']}")
    removed = report["held_out_removed"]
    if any(v for counts in removed.values() for v in counts.values()):
        lines.append(f"[ingest] leak-free split: removed {removed['train']['items']} held-out items from train rows "
                     f"({removed['train']['rows_dropped']} rows dropped) and {removed['eval']['items']} from eval "
                     f"rows ({removed['eval']['rows_dropped']} dropped)")
    if report["train_items_removed"] or report["train_rows_removed"]:
        lines.append(f"[ingest] density/overlap sweep removed {report['train_items_removed']} train history items "
                     f"and {report['train_rows_removed']} train rows (D_s={report['train_density']}, "
                     f"K_o={report['train_overlap']})")
    return lines


def build_ingest(p: beam.Pipeline, data_path: str, data_format: str, cfg, output_dir: str) -> None:
    """Adds the ingest graph to `p`; outputs go under `output_dir` in TFX Examples layout."""
    if data_format == "auto":
        data_format = detect_format(data_path)
    policy, cap = cfg.on_bad_rows, cfg.max_history_length
    if data_format == "paper":
        files = [(os.path.join(data_path, "train.csv"), "train"), (os.path.join(data_path, "test.csv"), "test")]
        records = (p | "Files" >> beam.Create(files)
                     | "ReadLines" >> beam.FlatMap(_paper_lines)
                     | "Spread" >> beam.Reshuffle())
        parsed = records | "Parse" >> beam.FlatMap(_parse_paper, policy, cap).with_outputs(BAD, main="rows")
        deduped = (parsed.rows | "KeyRow" >> beam.Map(lambda r: (logic.duplicate_key(r), r))
                               | "ByUserDomain" >> beam.GroupByKey()
                               | "Dedupe" >> beam.FlatMap(_first_of_duplicates, policy).with_outputs(
                                   BAD, USED, main="rows"))
        rows, grouped = deduped.rows, deduped
        (p | "PaperNames" >> beam.Create([list(cfg.domain_names) or ["x", "y"]])
           | "WriteNames" >> beam.Map(_write_domain_names, output_dir=output_dir))
    elif data_format == "long":
        records = (p | "Files" >> beam.Create([data_path])
                     | "ReadRecords" >> beam.FlatMap(logic.read_long_table)
                     | "Spread" >> beam.Reshuffle())
        # the domain column's labels, each with the first line that has it, decide X and Y
        mapping = (records | "DomainLabels" >> beam.FlatMap(_domain_label)
                           | "FirstLine" >> beam.CombinePerKey(lambda ws: min(ws, key=logic.source_order_key))
                           | "AllLabels" >> beam.combiners.ToList()
                           | "Mapping" >> beam.Map(logic.domain_mapping, configured=cfg.domain_names))
        names = mapping | "Names" >> beam.Map(logic.domain_names)
        parsed = records | "Parse" >> beam.FlatMap(_parse_long, policy, beam.pvalue.AsSingleton(mapping)).with_outputs(
            BAD, main="events")
        grouped = (parsed.events | "ByUser" >> beam.GroupByKey()
                                 | "Rows" >> beam.FlatMap(_long_rows, policy, cap).with_outputs(BAD, USED, main="rows"))
        rows = grouped.rows
        names | "WriteNames" >> beam.Map(_write_domain_names, output_dir=output_dir)
    else:
        raise logic.IngestError(f"data_format must be 'paper', 'long' or 'auto', found {data_format!r}")
    bad_rows = ((parsed[BAD], grouped[BAD]) | "AllBad" >> beam.Flatten() | "BadList" >> beam.combiners.ToList())
    bad_rows | "Quarantine" >> beam.Map(_write_quarantine, output_dir=output_dir)
    read_count = records | "CountRead" >> beam.combiners.Count.Globally()
    used_count = grouped[USED] | "CountUsed" >> beam.CombineGlobally(sum)
    record_report = (bad_rows | "RecordReport" >> beam.Map(
        lambda bad, read, used: _records_report(read, used, bad, policy, output_dir),
        read=beam.pvalue.AsSingleton(read_count), used=beam.pvalue.AsSingleton(used_count)))

    marked = rows | "Split" >> beam.FlatMap(_with_split, cfg=cfg)
    thinning = (marked | "ThinCount" >> beam.FlatMap(_thinning_key)
                       | "ThinSum" >> beam.CombinePerKey(sum)
                       | "ThinAll" >> beam.combiners.ToDict())
    kept = marked | "Kept" >> beam.Filter(lambda r: r["split"] != "removed")
    leak_free = (kept | "KeyUser" >> beam.Map(lambda r: (r["user_id"], r))
                      | "RowsByUser" >> beam.GroupByKey()
                      | "HoldOut" >> beam.FlatMap(_held_out, apply=cfg.leak_free).with_outputs(LEAK, TOUCHED,
                                                                                               main="rows"))
    rows = leak_free.rows
    leaks = (leak_free[LEAK] | "LeakSum" >> beam.CombinePerKey(sum) | "LeakAll" >> beam.combiners.ToDict())
    (leak_free[TOUCHED] | "TouchedList" >> beam.combiners.ToList()
                        | "WriteTouched" >> beam.Map(_write_touched, output_dir=output_dir))

    def vocab(index):
        return (rows | f"Items{index}" >> beam.FlatMap(lambda r, i=index: logic.domain_items(r)[i])
                     | f"Distinct{index}" >> beam.Distinct()
                     | f"Collect{index}" >> beam.combiners.ToList()
                     | f"Sort{index}" >> beam.Map(logic.build_vocab))

    vocab_x, vocab_y = vocab(0), vocab(1)
    threshold = (rows | "TrainOnly" >> beam.Filter(lambda r: r["split"] == "train")
                      | "HistLen" >> beam.Map(logic.row_history_length)
                      | "AllLens" >> beam.combiners.ToList()
                      | "Threshold" >> beam.Map(logic.long_tail_threshold, share=cfg.long_tail_share))

    examples = rows | "ToExample" >> beam.ParDo(
        _ToExample(), beam.pvalue.AsSingleton(vocab_x), beam.pvalue.AsSingleton(vocab_y),
        beam.pvalue.AsSingleton(threshold))
    for split in logic.SPLITS:
        (examples | f"Only-{split}" >> beam.Filter(lambda kv, s=split: kv[0] == s)
                  | f"Serialize-{split}" >> beam.Map(lambda kv: feature_spec.to_example(kv[1]))
                  | f"Write-{split}" >> beam.io.WriteToTFRecord(
                      os.path.join(output_dir, feature_spec.SPLIT_DIR.format(split), "data"),
                      file_name_suffix=feature_spec.RECORD_SUFFIX))

    pair = (p | "One" >> beam.Create([None])
              | "Pair" >> beam.Map(lambda _, vx, vy: (vx, vy), vx=beam.pvalue.AsSingleton(vocab_x),
                                   vy=beam.pvalue.AsSingleton(vocab_y)))
    pair | "WriteVocab" >> beam.Map(_write_vocabs, output_dir=output_dir)
    counts = (examples | "CountKey" >> beam.Map(_count_key)
                       | "Count" >> beam.combiners.Count.PerElement()
                       | "AllCounts" >> beam.combiners.ToList())
    counts | "Report" >> beam.Map(_write_report, vocabs=beam.pvalue.AsSingleton(pair),
                                  threshold=beam.pvalue.AsSingleton(threshold),
                                  thinning=beam.pvalue.AsSingleton(thinning), output_dir=output_dir,
                                  data_path=data_path, data_format=data_format, cfg=cfg,
                                  records=beam.pvalue.AsSingleton(record_report),
                                  leaks=beam.pvalue.AsSingleton(leaks))
