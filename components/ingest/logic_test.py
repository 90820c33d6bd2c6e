"""Unit tests of ingest rules: parsing, splitting, cold-start marking, long-tail threshold; and
hypothesis fuzzing of the parsers: any input either parses into a well-formed row or raises
IngestError naming the file and line, never another exception; valid rows round-trip."""
import csv
import io
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.ingest import logic
from models.config import DataConfig


def test_parse_paper_line_target_and_histories():
    row = logic.parse_paper_line('7,"[1, 2, 3]","[10, 11]",0\n', "train.csv", 2, 1000)
    assert row["user_id"] == "7" and row["target_domain"] == 0
    target, hx, hy = logic.target_and_histories(row)
    assert (target, hx, hy) == ("3", ["1", "2"], ["10", "11"])
    row = logic.parse_paper_line('7,"[1, 2, 3]","[10, 11]",1', "train.csv", 3, 1000)
    assert logic.target_and_histories(row) == ("11", ["1", "2", "3"], ["10"])


@pytest.mark.parametrize("line,field", [
    ('7,"[1, 2",[],0', "seq_d1"),            # bad JSON
    ('7,"[1, ""a""]",[],0', "seq_d1"),        # non-integer id
    ('7,[1],"{}",0', "seq_d2"),               # not a list
    ('7,[1],[2],2', "domain_id"),             # unknown domain
    (',[1],[2],0', "user_id"),                # empty id
    ('7,[],[2],0', "seq_d1"),                 # target domain empty
])
def test_parse_paper_line_errors_name_file_line_and_field(line, field):
    with pytest.raises(logic.IngestError) as err:
        logic.parse_paper_line(line, "data/train.csv", 12, 1000)
    assert "data/train.csv:12" in str(err.value) and field in str(err.value)


def test_parse_paper_line_wrong_column_count():
    with pytest.raises(logic.IngestError, match="train.csv:5: expected 4 columns"):
        logic.parse_paper_line("7,[1],0", "train.csv", 5, 1000)


def test_paper_header_checked(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("user,seq_d1,seq_d2,domain_id\n1,[1],[2],0\n")
    with pytest.raises(logic.IngestError, match="header must be"):
        list(logic.read_paper_file(str(path)))
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(logic.IngestError, match="empty"):
        list(logic.read_paper_file(str(empty)))


def test_long_table_rows_ordered_by_timestamp_then_file_order():
    events = [(5.0, "f.csv:4", "b", 0, {}), (1.0, "f.csv:9", "a", 0, {}), (5.0, "f.csv:2", "c", 0, {}),
              (3.0, "f.csv:3", "y1", 1, {})]
    rows, rejected = logic.rows_from_user_events("u", events, 1000)
    assert rejected == []
    assert [r["target_domain"] for r in rows] == [0, 1]
    assert rows[0]["seq_x"] == ["a", "c", "b"] and rows[0]["seq_y"] == ["y1"]


def test_long_record_validation():
    with pytest.raises(logic.IngestError, match="f.csv:3: field 'domain'"):
        logic.parse_long_record({"user_id": "u", "item_id": "i", "domain": "z"}, "f.csv:3")
    with pytest.raises(logic.IngestError, match="field 'item_id' is empty"):
        logic.parse_long_record({"user_id": "u", "item_id": " ", "domain": "x"}, "f.csv:3")
    with pytest.raises(logic.IngestError, match="timestamp"):
        logic.parse_long_record({"user_id": "u", "item_id": "i", "domain": "y", "timestamp": "soon"}, "f.csv:3")


def test_splits_are_deterministic_by_user_and_near_configured_shares():
    cfg = DataConfig()
    splits = [logic.split_of_long_user(f"u{i}", cfg) for i in range(20000)]
    assert splits == [logic.split_of_long_user(f"u{i}", cfg) for i in range(20000)]
    share = {s: splits.count(s) / len(splits) for s in logic.SPLITS}
    assert abs(share["train"] - 0.8) < 0.02 and abs(share["eval"] - 0.1) < 0.01 and abs(share["test"] - 0.1) < 0.01
    assert logic.split_of_paper_row("u1", "test", cfg) == "test"
    carved = [logic.split_of_paper_row(f"u{i}", "train", cfg) for i in range(20000)]
    assert abs(carved.count("eval") / len(carved) - cfg.val_fraction) < 0.01


def test_cold_start_marking_hides_target_history_of_overlapping_eval_rows_only():
    cfg = DataConfig(cold_start_fraction=0.2)
    rows = [{"user_id": f"u{i}", "seq_x": ["1", "2", "3"], "seq_y": ["7", "8"], "target_domain": i % 2,
             "file_kind": "long"} for i in range(5000)]
    made = [logic.maybe_make_cold_start(r, "test", cfg) for r in rows]
    cold = [m for m, r in zip(made, rows) if m is not r]
    assert abs(len(cold) / len(rows) - 0.2) < 0.02
    for m in cold:
        target, hx, hy = logic.target_and_histories(m)
        history_target, history_other = (hx, hy) if m["target_domain"] == 0 else (hy, hx)
        assert history_target == [] and history_other and logic.is_cold_start(history_target, history_other)
    assert all(logic.maybe_make_cold_start(r, "train", cfg) is r for r in rows)
    single = {"user_id": "s", "seq_x": ["1", "2"], "seq_y": [], "target_domain": 0, "file_kind": "long"}
    assert logic.maybe_make_cold_start(single, "test", DataConfig(cold_start_fraction=1.0)) is single
    paper_test = dict(rows[0], file_kind="test")
    assert logic.maybe_make_cold_start(paper_test, "test", DataConfig(cold_start_fraction=1.0)) is paper_test


def test_long_tail_threshold_is_mean_of_shortest_share():
    lengths = [1, 1, 2, 2, 3, 3, 4, 10, 20, 50]
    assert logic.long_tail_threshold(lengths, 0.8) == pytest.approx((1 + 1 + 2 + 2 + 3 + 3 + 4 + 10) / 8)
    assert logic.long_tail_threshold([], 0.8) == 0.0
    assert logic.is_long_tailed(3, 3.25, cold_start=False)
    assert not logic.is_long_tailed(4, 3.25, cold_start=False)
    assert not logic.is_long_tailed(0, 3.25, cold_start=True)


def test_build_example_features_maps_ids_and_flags():
    vx = {"1": 1, "2": 2, "3": 3}
    vy = {"7": 1, "8": 2}
    row = {"user_id": "u", "seq_x": ["3"], "seq_y": ["7", "8"], "target_domain": 0}
    f = logic.build_example_features(row, vx, vy, threshold=2.0)
    assert f == {"user_id": "u", "history_x": [], "history_y": [1, 2], "target_item": 3, "target_domain": 0,
                 "is_cold_start": 1, "is_long_tailed": 0}
    row = {"user_id": "u", "seq_x": ["1", "3"], "seq_y": [], "target_domain": 0}
    f = logic.build_example_features(row, vx, vy, threshold=2.0)
    assert f["is_cold_start"] == 0 and f["is_long_tailed"] == 1 and f["history_x"] == [1]


def test_vocab_order_is_deterministic():
    assert logic.build_vocab(["10", "9", "x2", "x10", "9"]) == ["9", "10", "x10", "x2"]


def test_density_sweep_keeps_targets_and_about_the_share_of_items():
    cfg = DataConfig(train_density=0.5)
    kept = total = 0
    for u in range(300):
        row = {"user_id": f"u{u}", "seq_x": [str(i) for i in range(10)], "seq_y": ["a", "b"], "target_domain": 0}
        out, removed = logic.thin_train_row(row, cfg)
        assert out["seq_x"][-1] == "9"  # the target stays
        assert removed == 12 - len(out["seq_x"]) - len(out["seq_y"])
        kept += len(out["seq_x"]) - 1 + len(out["seq_y"])
        total += 11
    assert 0.45 < kept / total < 0.55
    full = {"user_id": "u", "seq_x": ["1", "2"], "seq_y": [], "target_domain": 0}
    assert logic.thin_train_row(full, DataConfig()) == (full, 0)


def test_overlap_sweep_makes_a_user_single_domain_consistently():
    cfg = DataConfig(train_overlap=0.0)  # no overlapping user stays overlapping
    for u in range(50):
        rows = [{"user_id": f"u{u}", "seq_x": ["1", "2", "3"], "seq_y": ["a", "b"], "target_domain": d}
                for d in (0, 1)]
        out = [logic.thin_train_row(r, cfg) for r in rows]
        kept = [r for r, _ in out if r is not None]
        assert len(kept) == 1  # the row of the dropped domain is removed ...
        r = kept[0]
        assert (r["seq_x"] == []) != (r["seq_y"] == [])  # ... and the other row loses that domain
        assert sum(n for _, n in out) == (2 + 3 if r["seq_x"] == [] else 1 + 2)  # history items removed
    keep_all = DataConfig(train_overlap=1.0)
    row = {"user_id": "u", "seq_x": ["1"], "seq_y": ["a"], "target_domain": 0}
    assert logic.thin_train_row(row, keep_all) == (row, 0)


def test_remove_held_out_strips_targets_and_cold_start_histories():
    rows = [{"user_id": "u", "seq_x": ["1", "2"], "seq_y": ["7", "9"], "target_domain": 0, "split": "train",
             "source": "train.csv:2"},
            {"user_id": "u", "seq_x": ["1", "2"], "seq_y": ["7", "9"], "target_domain": 1, "split": "test",
             "source": "test.csv:2"}]
    kept, counts, touched = logic.remove_held_out(rows)
    assert kept[0]["seq_y"] == ["7"] and kept[1] == rows[1]  # the test target 9 is gone from train only
    assert counts == {"train_items": 1} and touched == [{"user_id": "u", "target_domain": 1, "split": "test"}]
    cold = dict(rows[1], seq_y=["9"])  # cold-start in Y: the whole Y history is hidden
    kept, counts, _ = logic.remove_held_out([rows[0], cold])
    assert kept[0]["seq_y"] == [] and counts == {"train_items": 2}
    train_y = dict(rows[0], target_domain=1)  # a train row whose target domain empties is dropped
    kept, counts, _ = logic.remove_held_out([train_y, cold])
    assert kept == [cold] and counts == {"train_items": 2, "train_rows": 1}
    kept, counts, touched = logic.remove_held_out([train_y, cold], apply=False)
    assert kept == [train_y, cold] and counts == {} and len(touched) == 1


def test_any_two_named_domains():
    seen = [("kitchen", "t.csv:3"), ("food", "t.csv:2")]
    assert logic.domain_mapping(seen) == {"food": 0, "kitchen": 1}  # sorted: food is X
    assert logic.domain_names(logic.domain_mapping(seen)) == ["food", "kitchen"]
    assert logic.domain_mapping(seen, ["Kitchen", "food"]) == {"kitchen": 0, "food": 1}  # configured order
    assert logic.domain_mapping([("x", "t.csv:2"), ("1", "t.csv:4")]) == logic.DOMAIN_VALUES
    mapping = logic.domain_mapping(seen + [("garden", "t.csv:9")])  # a third label is a bad row, not a domain
    assert mapping == {"food": 0, "kitchen": 1}
    assert logic.parse_long_record({"user_id": "u", "item_id": "i", "domain": " Food "}, "t.csv:2", mapping)[1][3] == 0
    with pytest.raises(logic.IngestError, match="t.csv:9: field 'domain' must be one of food/kitchen, found 'garden'"):
        logic.parse_long_record({"user_id": "u", "item_id": "i", "domain": "garden"}, "t.csv:9", mapping)
    assert logic.domain_mapping([("x", "t.csv:2"), ("z", "t.csv:3")]) == logic.DOMAIN_VALUES  # z: a bad row


# ----- fuzzing the parsers
FUZZ = settings(max_examples=300, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


ids = st.lists(st.integers(min_value=0, max_value=10**9), max_size=30)


def csv_line(fields):
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(fields)
    return out.getvalue()


@FUZZ
@given(user=st.text(min_size=1).filter(lambda u: u.strip() and "\x00" not in u), seq_x=ids, seq_y=ids,
       domain=st.sampled_from([0, 1]))
def test_valid_paper_rows_round_trip(user, seq_x, seq_y, domain):
    if not (seq_x, seq_y)[domain]:
        seq_x, seq_y = (seq_x or [1], seq_y) if domain == 0 else (seq_x, seq_y or [1])
    line = csv_line([user, json.dumps(seq_x), json.dumps(seq_y), str(domain)])
    row = logic.parse_paper_line(line.encode("utf-8"), "f.csv", 7, 1000)
    assert row["user_id"] == user.strip() and row["target_domain"] == domain
    assert row["seq_x"] == [str(i) for i in seq_x] and row["seq_y"] == [str(i) for i in seq_y]


def _parses_or_names_line(parse, *args):
    try:
        return parse(*args)
    except logic.IngestError as e:
        assert str(e).startswith("f.csv:7"), str(e)
        assert e.reason in {"bad_json", "bad_id", "columns", "domain", "no_target", "too_long", "encoding",
                            "timestamp", "csv"}
        return None


@FUZZ
@given(st.binary(max_size=200))
def test_any_bytes_line_parses_or_raises_ingest_error(raw):
    row = _parses_or_names_line(logic.parse_paper_line, raw, "f.csv", 7, 50)
    if row is not None:  # whatever got through is a well-formed row
        assert row["target_domain"] in (0, 1) and row["user_id"]
        assert all(i.isdigit() for i in row["seq_x"] + row["seq_y"])
        assert (row["seq_x"], row["seq_y"])[row["target_domain"]]
        assert max(len(row["seq_x"]), len(row["seq_y"])) <= 50


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() |
                           st.text(st.characters(blacklist_characters="\x00"), max_size=5),
                           lambda inner: st.lists(inner, max_size=4), max_leaves=10)


@FUZZ
@given(seq=json_values, user=st.text(st.characters(blacklist_characters="\x00"), max_size=8),
       domain=st.text(st.characters(blacklist_characters="\x00"), max_size=3))
def test_odd_json_fields_parse_or_raise_ingest_error(seq, user, domain):
    line = csv_line([user, json.dumps(seq), "[1]", domain])
    _parses_or_names_line(logic.parse_paper_line, line, "f.csv", 7, 1000)


long_values = st.none() | st.text(max_size=6) | st.integers() | st.floats() | st.binary(max_size=6)


@FUZZ
@given(record=st.fixed_dictionaries({"user_id": long_values, "item_id": long_values, "domain": long_values},
                                    optional={"timestamp": long_values}))
def test_any_long_record_parses_or_raises_ingest_error(record):
    parsed = _parses_or_names_line(logic.parse_long_record, record, "f.csv:7")
    if parsed is not None:
        user_id, (timestamp, where, item_id, domain, _) = parsed
        assert user_id and item_id and domain in (0, 1) and where == "f.csv:7"
        assert timestamp is None or timestamp == timestamp  # never NaN


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 3), st.sampled_from(["a", "b", "c"]), st.integers(0, 1)), max_size=25),
       st.integers(1, 6))
def test_user_events_are_kept_or_rejected_never_lost(events, cap):
    """Every event of a user ends up in the rows' sequences or in the rejected list."""
    evs = [(float(t), f"f.csv:{i + 2}", item, d, {"i": i}) for i, (t, item, d) in enumerate(events)]
    rows, rejected = logic.rows_from_user_events("u", evs, cap)
    kept = {d: len(next((r["seq_x"] if d == 0 else r["seq_y"] for r in rows), [])) for d in (0, 1)}
    assert kept[0] + kept[1] + len(rejected) == len(evs)
    assert all(len(r["seq_x"]) <= cap and len(r["seq_y"]) <= cap for r in rows)
