"""Hypothesis fuzzing of the ingest parsers: any input either parses into a well-formed row
or raises IngestError naming the file and line, never another exception; valid rows round-trip."""
import csv
import io
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.ingest import logic

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
    row = logic.parse_paper_line(line.encode("utf-8"), "f.csv", 7)
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
    _parses_or_names_line(logic.parse_paper_line, line, "f.csv", 7)


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
