"""Bad input at ingest: every case stops with file, line and field by default; the `skip`
policy quarantines exactly the bad rows, byte for byte, and read = used + quarantined.

Runs the real Beam graph (DirectRunner), since that is where a user meets these errors.
"""
import base64
import json
import os

import apache_beam as beam
import pytest
from ingest_cases import GOOD_TEST, GOOD_TRAIN, HEADER, PAPER_CASES

from components.ingest.executor import QUARANTINE_FILE, build_ingest
from models import data
from models.config import DataConfig

CAP = DataConfig(max_history_length=8)


def write_pair(root, train_lines, test_lines=GOOD_TEST, train_header=HEADER):
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.csv").write_bytes(train_header + b"".join(train_lines))
    (root / "test.csv").write_bytes(HEADER + b"".join(test_lines))
    return str(root)


def run_ingest(data_path, out_dir, cfg):
    with beam.Pipeline() as p:
        build_ingest(p, data_path, "auto", cfg, out_dir)
    with open(os.path.join(out_dir, "ingest_report.json")) as f:
        return json.load(f)


def quarantined(out_dir):
    with open(os.path.join(out_dir, QUARANTINE_FILE)) as f:
        return [json.loads(line) for line in f]


def raw_bytes(raw):
    """The quarantined input as bytes: text as UTF-8, undecodable input from its base64 copy."""
    return base64.b64decode(raw["base64"]) if isinstance(raw, dict) else raw.encode("utf-8")


def examples_written(out_dir):
    return sum(len(data.read_split(out_dir, s)) for s in ("train", "eval", "test"))


@pytest.mark.parametrize("name,line,phrase,reason", PAPER_CASES, ids=[c[0] for c in PAPER_CASES])
def test_paper_bad_row_stops_by_default_naming_file_line_and_field(tmp_path, name, line, phrase, reason):
    pair_dir = write_pair(tmp_path / "pair", GOOD_TRAIN[:3] + [line] + GOOD_TRAIN[3:])
    with pytest.raises(Exception) as err:
        run_ingest(pair_dir, str(tmp_path / "out"), CAP)
    # the bad row is data line 4, i.e. line 5 of the file (after the header)
    message = str(err.value)
    assert "train.csv:5: " in message and phrase in message, message[-500:]


def test_paper_skip_policy_quarantines_every_bad_row_and_loses_nothing(tmp_path):
    bad_lines = [line for _, line, _, _ in PAPER_CASES]
    pair_dir = write_pair(tmp_path / "pair", GOOD_TRAIN + bad_lines)
    out = str(tmp_path / "out")
    report = run_ingest(pair_dir, out, DataConfig(max_history_length=8, on_bad_rows="skip"))
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
        run_ingest(str(root), str(tmp_path / "out"), DataConfig(on_bad_rows="skip"))


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


def test_long_table_bad_records_stop_by_default_and_skip_quarantines(tmp_path):
    for name, lines, phrase, reason in LONG_CASES:
        path = tmp_path / f"{name}.csv"
        path.write_bytes(LONG_HEADER + b"".join(LONG_GOOD + lines))
        with pytest.raises(Exception) as err:
            run_ingest(str(path), str(tmp_path / f"out-{name}"), CAP)
        assert f"{name}.csv:{len(LONG_GOOD) + 2}" in str(err.value) and phrase in str(err.value), name

    path = tmp_path / "all.csv"
    bad = [line for _, lines, _, _ in LONG_CASES for line in lines]
    path.write_bytes(LONG_HEADER + b"".join(LONG_GOOD + bad))
    out = str(tmp_path / "out-all")
    report = run_ingest(str(path), out, DataConfig(max_history_length=8, on_bad_rows="skip"))
    records = report["input_records"]
    assert records["read"] == len(LONG_GOOD) + len(bad) == records["used"] + records["quarantined"]
    assert records["quarantined"] == len(bad) and records["used"] == len(LONG_GOOD)
    assert records["quarantined_by_reason"]["too_long"] == 9
    entries = quarantined(out)
    assert [e["source"] for e in entries] == [f"{path}:{len(LONG_GOOD) + 2 + i}" for i in range(len(bad))]
    assert raw_bytes(entries[5]["raw"]["user_id"]) == b"u\xe93"
    assert examples_written(out) == 4  # u1 and u2, one row per domain each


def test_long_table_header_problems_stop(tmp_path):
    for header, phrase in ((b"user_id,item_id\n", "missing ['domain']"),
                           (b"user_id,item_id,domain,rating\n", "unexpected ['rating']"),
                           (b"user_id,item_id,domain\nu1,b,x\n", "t.csv:3: not a CSV line")):
        path = tmp_path / "t.csv"
        path.write_bytes(header + b"u1,a\x00,x\n")  # a NUL byte: the CSV reader cannot go on
        with pytest.raises(Exception, match=phrase.replace("[", r"\[").replace("]", r"\]")):
            run_ingest(str(path), str(tmp_path / "out"), DataConfig(on_bad_rows="skip"))


def test_clean_input_writes_an_empty_quarantine_and_full_counts(tmp_path):
    pair_dir = write_pair(tmp_path / "pair", GOOD_TRAIN)
    out = str(tmp_path / "out")
    records = run_ingest(pair_dir, out, DataConfig())["input_records"]
    assert records["read"] == records["used"] == 7 and records["quarantined"] == 0
    assert quarantined(out) == []
