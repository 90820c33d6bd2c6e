"""The Beam ingest graph on small paper-format and long-table inputs (in-memory DirectRunner)."""
import json
import os

import apache_beam as beam
import pytest

from components.ingest import executor, logic, synthetic
from models import data, feature_spec
from models.config import DataConfig


def run_ingest(data_path, out_dir, data_format="auto", cfg=DataConfig()):
    with beam.Pipeline() as p:
        executor.build_ingest(p, data_path, data_format, cfg, out_dir)
    with open(os.path.join(out_dir, "ingest_report.json")) as f:
        return json.load(f)


def split_rows(out_dir, split):
    return data.read_split(out_dir, split)


def write_paper_pair(src, train_users: int):
    """A paper-format folder: `train_users` patterned train rows and two test rows (users 900, 901)."""
    src.mkdir()
    train = ["user_id,seq_d1,seq_d2,domain_id"]
    for u in range(train_users):
        train.append(f'{u},"[{u % 7 + 1}, {u % 5 + 20}]","[{u % 3 + 100}, {u % 4 + 110}]",{u % 2}')
    (src / "train.csv").write_text("\n".join(train) + "\n")
    (src / "test.csv").write_text('user_id,seq_d1,seq_d2,domain_id\n900,"[1]","[100, 101]",0\n901,"[2, 3]","[111, 112]",1\n')
    return src


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


def test_the_raw_split_stays_one_switch_away(tmp_path):
    report = run_ingest(str(write_leaky_pair(tmp_path / "pair")), str(tmp_path / "out"), cfg=_cfg(leak_free=False))
    assert report["leak_free"] is False and report["held_out_removed"]["train"] == {"items": 0, "rows_dropped": 0}
    rows = {(r["user_id"], r["target_domain"]): r for r in split_rows(str(tmp_path / "out"), "train")}
    assert len(rows[("7", 0)]["history_y"]) == 3 and ("8", 0) in rows
    touched = json.load(open(os.path.join(str(tmp_path / "out"), feature_spec.LEAK_TOUCHED_FILE)))
    assert {(t["user_id"], t["target_domain"]) for t in touched} == {("7", 1), ("8", 0)}
