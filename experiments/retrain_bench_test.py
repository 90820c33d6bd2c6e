"""The retrain bench's day 1: a seeded share of the users, all of their rows, in both files."""
import csv

from experiments.retrain_bench import write_day_one


def test_day_one_keeps_every_row_of_a_seeded_share_of_the_users(tmp_path):
    data = tmp_path / "pair"
    data.mkdir()
    for name in ("train.csv", "test.csv"):
        rows = [["user_id", "seq_d1", "seq_d2", "domain_id"]] + [[str(u), "[1]", "[2]", "0"] for u in range(1000)]
        with open(data / name, "w", newline="") as f:
            csv.writer(f).writerows(rows)
    counts = write_day_one(str(data), str(tmp_path / "day1"), 0.9)
    assert 850 < counts["train.csv"] < 950 and counts["train.csv"] == counts["test.csv"]
    users = [{r[0] for r in csv.reader(open(tmp_path / "day1" / name))} for name in ("train.csv", "test.csv")]
    assert users[0] == users[1]  # a user is on day 1 with all of their rows
    assert write_day_one(str(data), str(tmp_path / "again"), 0.9) == counts
