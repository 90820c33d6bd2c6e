"""The Beam ingest graph (in-memory DirectRunner) on small paper-format and long-table inputs.

Bad input: every case stops with file, line and field by default; the `skip` policy
quarantines exactly the bad rows, byte for byte, and read = used + quarantined. These run
the real Beam graph, since that is where a user meets these errors."""
import base64
import json
import os

import pytest

from components.ingest import executor, logic, synthetic
from models import data, feature_spec
from models.config import DataConfig
from tests.ingest_cases import GOOD_TEST, GOOD_TRAIN, HEADER, PAPER_CASES, run_ingest, split_rows, write_paper_pair


def test_paper_format_rows_splits_and_vocab(tmp_path):
    src = write_paper_pair(tmp_path / "pair", 200)
    report = run_ingest(str(src), str(tmp_path / "out"))
    assert report["data_format"] == "paper"
    assert sum(report["rows_by_split"].values()) == 202  # nothing dropped
    assert report["rows_by_split"]["test"] == 2
    assert 0 < report["rows_by_split"]["eval"] < 60
    test_rows = {r["user_id"]: r for r in split_rows(str(tmp_path / "out"), "test")}
    assert test_rows["900"]["is_cold_start"] == 1 and test_rows["900"]["history_x"] == []
    assert len(test_rows["901"]["history_y"]) == 1 and test_rows["901"]["is_cold_start"] == 0
    vocab_x = feature_spec.read_vocab(str(tmp_path / "out" / feature_spec.VOCAB_DIR / "vocab_x.txt"))
    assert vocab_x == logic.build_vocab(vocab_x) and "1" in vocab_x
    row = test_rows["901"]
    assert set(row) == set(feature_spec.INGEST_FEATURES)


def test_long_table_csv_and_parquet_give_same_examples(tmp_path):
    csv_path = synthetic.write_csv(str(tmp_path / "log.csv"), synthetic.SyntheticConfig(num_users=150, seed=3))
    import pandas as pd

    parquet_path = str(tmp_path / "log.parquet")
    pd.read_csv(csv_path, dtype=str).to_parquet(parquet_path)
    a = run_ingest(csv_path, str(tmp_path / "a"))
    b = run_ingest(parquet_path, str(tmp_path / "b"))
    assert a["rows"] == b["rows"]
    key = lambda r: (r["user_id"], r["target_domain"])  # noqa: E731
    for split in logic.SPLITS:
        assert sorted(split_rows(str(tmp_path / "a"), split), key=key) == sorted(
            split_rows(str(tmp_path / "b"), split), key=key)


def test_bad_input_stops_with_file_and_line(tmp_path):
    src = tmp_path / "pair"
    src.mkdir()
    (src / "train.csv").write_text('user_id,seq_d1,seq_d2,domain_id\n1,"[1]","[2]",0\n2,"[1, x]","[2]",0\n')
    (src / "test.csv").write_text('user_id,seq_d1,seq_d2,domain_id\n3,"[1]","[2]",0\n')
    with pytest.raises(Exception, match=r"train.csv:3: field 'seq_d1'"):
        run_ingest(str(src), str(tmp_path / "out"))
    with pytest.raises(logic.IngestError, match="not found"):
        executor.detect_format(str(tmp_path / "missing.csv"))


def write_leaky_pair(src):
    """A paper-format pair with planted leaks, as in the paper's files: user 7's train row
    (target X) lists the test target 555 last in Y; user 8's test row is cold-start in X,
    and user 8's train rows hold that whole X history (a train row targets X)."""
    src.mkdir()
    train = ["user_id,seq_d1,seq_d2,domain_id"]
    for u in range(60):
        train.append(f'{u + 100},"[{u % 7 + 1}, {u % 5 + 20}]","[{u % 3 + 100}, {u % 4 + 110}]",{u % 2}')
    train += ['7,"[1, 2, 3]","[101, 102, 555]",0',
              '8,"[4, 5, 666]","[103, 104]",0', '8,"[4, 5, 666]","[103, 104, 105]",1']
    (src / "train.csv").write_text("\n".join(train) + "\n")
    (src / "test.csv").write_text('user_id,seq_d1,seq_d2,domain_id\n7,"[1, 2, 3]","[101, 102, 555]",1\n'
                                  '8,"[666]","[103, 104, 105]",0\n')
    return src


def _cfg(**kw):
    return DataConfig(val_fraction=0.0, **kw)  # every train row stays in train


def test_no_trace_of_a_held_out_target_reaches_training(tmp_path):
    """Ingest's train split is all that LightGCN's graph, the pseudo-sequences and every model
    train on (the graph also leaves out the train rows' own targets: components/pseudo_sequences/executor_test.py)."""
    report = run_ingest(str(write_leaky_pair(tmp_path / "pair")), str(tmp_path / "out"), cfg=_cfg())
    out = str(tmp_path / "out")
    vocab_dir = os.path.join(out, feature_spec.VOCAB_DIR)
    vocab_x = {item: i + 1 for i, item in enumerate(feature_spec.read_vocab(os.path.join(vocab_dir, "vocab_x.txt")))}
    vocab_y = {item: i + 1 for i, item in enumerate(feature_spec.read_vocab(os.path.join(vocab_dir, "vocab_y.txt")))}
    train = split_rows(out, "train")
    by_user = {}
    for r in train:
        by_user.setdefault(r["user_id"], []).append(r)
    # user 7: the test target (Y 555) is gone from the train row; the row itself stays
    assert [r["history_y"] for r in by_user["7"]] == [[vocab_y["101"], vocab_y["102"]]]
    # user 8: cold-start in X at test, so no X item of theirs is in train: the row targeting X
    # is dropped, the row targeting Y keeps only its Y items
    assert [(r["target_domain"], r["history_x"]) for r in by_user["8"]] == [(1, [])]
    assert report["held_out_removed"]["train"] == {"items": 1 + 3 + 3, "rows_dropped": 1}
    held_out = {("7", 1, vocab_y["555"])} | {("8", 0, vocab_x[i]) for i in ("4", "5", "666")}
    for r in train:
        shown = {(r["user_id"], 0, i) for i in r["history_x"]} | {(r["user_id"], 1, i) for i in r["history_y"]}
        shown.add((r["user_id"], r["target_domain"], r["target_item"]))
        assert not shown & held_out
    touched = json.load(open(os.path.join(out, feature_spec.LEAK_TOUCHED_FILE)))
    assert {(t["user_id"], t["target_domain"]) for t in touched} == {("7", 1), ("8", 0)}


def test_no_validation_row_shows_what_a_test_row_hides(tmp_path):
    """Validation rows (every train user carved out here) follow the same rule: no eval row's
    history or target is an item the same user's test row hides."""
    report = run_ingest(str(write_leaky_pair(tmp_path / "pair")), str(tmp_path / "out"),
                        cfg=DataConfig(val_fraction=1.0))
    out = str(tmp_path / "out")
    vocab_dir = os.path.join(out, feature_spec.VOCAB_DIR)
    vocab_x = {item: i + 1 for i, item in enumerate(feature_spec.read_vocab(os.path.join(vocab_dir, "vocab_x.txt")))}
    vocab_y = {item: i + 1 for i, item in enumerate(feature_spec.read_vocab(os.path.join(vocab_dir, "vocab_y.txt")))}
    evals = split_rows(out, "eval")
    assert not split_rows(out, "train") and {r["user_id"] for r in evals} >= {"7", "8"}
    held_out = {("7", 1, vocab_y["555"])} | {("8", 0, vocab_x[i]) for i in ("4", "5", "666")}
    for r in evals:
        shown = {(r["user_id"], 0, i) for i in r["history_x"]} | {(r["user_id"], 1, i) for i in r["history_y"]}
        shown.add((r["user_id"], r["target_domain"], r["target_item"]))
        assert not shown & held_out, r
    assert report["held_out_removed"]["eval"]["items"] == 1 + 3 + 3


def test_the_raw_split_stays_one_switch_away(tmp_path):
    report = run_ingest(str(write_leaky_pair(tmp_path / "pair")), str(tmp_path / "out"), cfg=_cfg(leak_free=False))
    assert report["leak_free"] is False and report["held_out_removed"]["train"] == {"items": 0, "rows_dropped": 0}
    rows = {(r["user_id"], r["target_domain"]): r for r in split_rows(str(tmp_path / "out"), "train")}
    assert len(rows[("7", 0)]["history_y"]) == 3 and ("8", 0) in rows
    touched = json.load(open(os.path.join(str(tmp_path / "out"), feature_spec.LEAK_TOUCHED_FILE)))
    assert {(t["user_id"], t["target_domain"]) for t in touched} == {("7", 1), ("8", 0)}


# ----- bad input: stop by default, or quarantine with `skip`
CAP = DataConfig(max_history_length=8)


def write_pair(root, train_lines, test_lines=GOOD_TEST, train_header=HEADER):
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.csv").write_bytes(train_header + b"".join(train_lines))
    (root / "test.csv").write_bytes(HEADER + b"".join(test_lines))
    return str(root)


def quarantined(out_dir):
    with open(os.path.join(out_dir, executor.QUARANTINE_FILE)) as f:
        return [json.loads(line) for line in f]


def raw_bytes(raw):
    """The quarantined input as bytes: text as UTF-8, undecodable input from its base64 copy."""
    return base64.b64decode(raw["base64"]) if isinstance(raw, dict) else raw.encode("utf-8")


def examples_written(out_dir):
    return sum(len(data.read_split(out_dir, s)) for s in ("train", "eval", "test"))


# one Beam pipeline per case: a line-level, a cross-row and a per-user case run by default, the
# others in `make test-slow` (every case also goes through the graph in the skip-policy test below)
@pytest.mark.parametrize("name,line,phrase,reason", [
    pytest.param(*case, marks=[] if case[0] in ("unknown_domain", "duplicate", "too_long") else [pytest.mark.slow])
    for case in PAPER_CASES], ids=[c[0] for c in PAPER_CASES])
def test_paper_bad_row_stops_by_default_naming_file_line_and_field(tmp_path, name, line, phrase, reason):
    pair_dir = write_pair(tmp_path / "pair", GOOD_TRAIN[:3] + [line] + GOOD_TRAIN[3:])
    with pytest.raises(Exception) as err:
        run_ingest(pair_dir, str(tmp_path / "out"), cfg=CAP)
    # the bad row is data line 4, i.e. line 5 of the file (after the header)
    message = str(err.value)
    assert "train.csv:5: " in message and phrase in message, message[-500:]


def test_paper_skip_policy_quarantines_every_bad_row_and_loses_nothing(tmp_path):
    bad_lines = [line for _, line, _, _ in PAPER_CASES]
    pair_dir = write_pair(tmp_path / "pair", GOOD_TRAIN + bad_lines)
    out = str(tmp_path / "out")
    report = run_ingest(pair_dir, out, cfg=DataConfig(max_history_length=8, on_bad_rows="skip"))
    records = report["input_records"]
    good = len(GOOD_TRAIN) + len(GOOD_TEST)
    assert records["read"] == good + len(bad_lines) == records["used"] + records["quarantined"]
    assert records["quarantined"] == len(bad_lines) and records["used"] == good
    assert records["quarantined_by_reason"] == {r: sum(c[3] == r for c in PAPER_CASES) for _, _, _, r in PAPER_CASES}
    assert examples_written(out) == good  # every good row became an example
    entries = quarantined(out)
    first_bad_line = 2 + len(GOOD_TRAIN)
    assert [e["source"] for e in entries] == [f"{pair_dir}/train.csv:{first_bad_line + i}"
                                              for i in range(len(bad_lines))]
    for entry, (name, line, phrase, reason) in zip(entries, PAPER_CASES):
        assert entry["reason"] == reason and phrase in entry["error"], (name, entry)
        assert raw_bytes(entry["raw"]) == line  # byte for byte, even the latin-1 one


@pytest.mark.parametrize("train,phrase", [
    (b"", "train.csv: the file is empty"),
    (HEADER, "train.csv: the file has a header but no data rows"),
    (b"user_id,seq_d1,domain_id\n" + GOOD_TRAIN[0], "missing column(s) ['seq_d2']"),
    (b"user_id,seq_d1,seq_d2,domain_id,extra\n" + GOOD_TRAIN[0], "unexpected column(s) ['extra']"),
], ids=["empty", "header_only", "header_missing_column", "header_extra_column"])
def test_file_level_problems_stop_even_with_skip(tmp_path, train, phrase):
    root = tmp_path / "pair"
    root.mkdir()
    (root / "train.csv").write_bytes(train)
    (root / "test.csv").write_bytes(HEADER + b"".join(GOOD_TEST))
    with pytest.raises(Exception, match=phrase.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
                       .replace("]", r"\]")):
        run_ingest(str(root), str(tmp_path / "out"), cfg=DataConfig(on_bad_rows="skip"))


LONG_HEADER = b"user_id,item_id,domain,timestamp\n"


LONG_GOOD = [b"u1,a,x,1\n", b"u1,b,x,2\n", b"u1,p,y,3\n", b"u2,a,x,1\n", b"u2,q,y,2\n", b"u2,p,y,3\n"]


# (name, bad records, phrase, reason); line numbers follow the good ones
LONG_CASES = [
    ("unknown_domain", [b"u3,a,z,1\n"], "field 'domain' must be one of 0/1/x/y", "domain"),
    ("empty_item_id", [b"u3,,x,1\n"], "field 'item_id' is empty", "bad_id"),
    ("bad_timestamp", [b"u3,a,x,soon\n"], "field 'timestamp' is not a number", "timestamp"),
    ("extra_values", [b"u3,a,x,1,zzz\n"], "more than the header's 4 columns", "columns"),
    ("missing_values", [b"u3,a\n"], "field 'domain' is missing", "columns"),
    ("latin1_bytes", [b"u\xe93,a,x,1\n"], "byte 0xe9 at column 2", "encoding"),
    ("duplicate", [b"u1,b,x,2\n"], "duplicate row: user 'u1', item 'b'", "duplicate"),
    ("too_long", [b"u4,i%d,x,%d\n" % (i, i) for i in range(9)], "user 'u4' has 9 items in domain 0", "too_long"),
]


@pytest.mark.slow  # nine Beam pipelines, one per case; `make test-slow`
def test_long_table_bad_records_stop_by_default_and_skip_quarantines(tmp_path):
    for name, lines, phrase, reason in LONG_CASES:
        path = tmp_path / f"{name}.csv"
        path.write_bytes(LONG_HEADER + b"".join(LONG_GOOD + lines))
        with pytest.raises(Exception) as err:
            run_ingest(str(path), str(tmp_path / f"out-{name}"), cfg=CAP)
        assert f"{name}.csv:{len(LONG_GOOD) + 2}" in str(err.value) and phrase in str(err.value), name

    path = tmp_path / "all.csv"
    bad = [line for _, lines, _, _ in LONG_CASES for line in lines]
    path.write_bytes(LONG_HEADER + b"".join(LONG_GOOD + bad))
    out = str(tmp_path / "out-all")
    report = run_ingest(str(path), out, cfg=DataConfig(max_history_length=8, on_bad_rows="skip"))
    records = report["input_records"]
    assert records["read"] == len(LONG_GOOD) + len(bad) == records["used"] + records["quarantined"]
    assert records["quarantined"] == len(bad) and records["used"] == len(LONG_GOOD)
    assert records["quarantined_by_reason"]["too_long"] == 9
    entries = quarantined(out)
    assert [e["source"] for e in entries] == [f"{path}:{len(LONG_GOOD) + 2 + i}" for i in range(len(bad))]
    assert raw_bytes(entries[5]["raw"]["user_id"]) == b"u\xe93"
    assert examples_written(out) == 4  # u1 and u2, one row per domain each


@pytest.mark.slow  # about 13 s of Beam runs; `make test-slow`
def test_long_table_header_problems_stop(tmp_path):
    for header, phrase in ((b"user_id,item_id\n", "missing ['domain']"),
                           (b"user_id,item_id,domain,rating\n", "unexpected ['rating']"),
                           (b"user_id,item_id,domain\nu1,b,x\n", "t.csv:3: not a CSV line")):
        path = tmp_path / "t.csv"
        path.write_bytes(header + b"u1,a\x00,x\n")  # a NUL byte: the CSV reader cannot go on
        with pytest.raises(Exception, match=phrase.replace("[", r"\[").replace("]", r"\]")):
            run_ingest(str(path), str(tmp_path / "out"), cfg=DataConfig(on_bad_rows="skip"))


def test_clean_input_writes_an_empty_quarantine_and_full_counts(tmp_path):
    pair_dir = write_pair(tmp_path / "pair", GOOD_TRAIN)
    out = str(tmp_path / "out")
    records = run_ingest(pair_dir, out, cfg=DataConfig())["input_records"]
    assert records["read"] == records["used"] == 7 and records["quarantined"] == 0
    assert quarantined(out) == []
