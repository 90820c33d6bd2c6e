"""`i2vae compare`: paired differences of two runs' ranks on the same rows."""
import os

import numpy as np
import pytest

from experiments import compare
from models import config
from pipeline import cli

HEADER = "user_id,target_domain,target_item,is_cold_start,is_long_tailed,leak_touched,{m}_sampled_rank,{m}_full_rank," \
         "popularity_sampled_rank,popularity_full_rank\n"


def write_ranks(path, model, rows):
    """rows: (user, domain, item, cold, long-tailed, full rank); popularity ranks every row 50."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(HEADER.format(m=model))
        for user, d, item, cold, tail, rank in rows:
            f.write(f"{user},{d},{item},{cold},{tail},0,{rank},{rank},50,50\n")
    return path


ROWS_A = [("u1", 0, 5, 0, 1, 0), ("u2", 0, 6, 0, 0, 3), ("u3", 0, 7, 1, 0, 40), ("u4", 1, 2, 0, 1, 1)]
ROWS_B = [("u2", 0, 6, 0, 0, 20), ("u1", 0, 5, 0, 1, 0), ("u3", 0, 7, 1, 0, 2), ("u4", 1, 2, 0, 1, 1)]  # another order


def cell(result, domain, group, metric):
    return next(c for c in result["cells"] if (c["domain"], c["group"], c["metric"]) == (domain, group, metric))


def test_rows_are_matched_by_user_and_target_and_split_by_group(tmp_path):
    a = write_ranks(str(tmp_path / "a" / "ranks_test.csv"), "i2vae", ROWS_A)
    b = write_ranks(str(tmp_path / "b" / "ranks_test.csv"), "sasrec", ROWS_B)
    result = compare.compare(a, b, draws=200)
    assert result["a"] == ([a], "i2vae") and result["b"] == ([b], "sasrec")
    # X, all: A hits u1, u2 (ranks 0, 3); B hits u1, u3 (ranks 0, 2): per row 0, 1, -1
    hr = cell(result, "x", "all", "HR@10")
    assert hr["rows"] == 3 and np.isclose(hr["a"], 2 / 3) and np.isclose(hr["b"], 2 / 3) and hr["difference"] == 0
    assert np.isclose(hr["standard_error"], 1 / np.sqrt(3))  # std (ddof 1) of (0, 1, -1) is 1
    ndcg = cell(result, "x", "all", "NDCG@10")
    assert np.isclose(ndcg["difference"], (1 / np.log2(5) - 1 / np.log2(4)) / 3)
    assert ndcg["low"] <= ndcg["difference"] <= ndcg["high"]
    assert cell(result, "x", "long_tailed", "HR@10")["rows"] == 1 and cell(result, "x", "cold_start", "HR@10")["b"] == 1
    assert cell(result, "y", "all", "HR@10")["difference"] == 0 and cell(result, "y", "cold_start", "HR@10")["rows"] == 0
    table = compare.format_comparison(result, ("Cloth", "Sport"))
    assert "| Cloth | all | HR@10 | 3 | 66.67 | 66.67 | +0.00 | 57.74 |" in table
    assert "| Sport | cold-start |" not in table  # no rows, no line


def test_another_column_of_the_same_file_and_a_run_directory(tmp_path):
    run = tmp_path / "run" / "pipeline_root" / "RankingEvaluator" / "evaluation"
    write_ranks(str(run / "3" / "ranks_test.csv"), "i2vae", [(u, d, i, c, t, 60) for u, d, i, c, t, _ in ROWS_A])
    newest = write_ranks(str(run / "12" / "ranks_test.csv"), "i2vae", ROWS_A)
    assert compare.ranks_file(str(tmp_path / "run"), "test") == newest  # the newest execution, not the last name
    assert compare.ranks_file(str(run / "3"), "test") == str(run / "3" / "ranks_test.csv")  # one evaluation's folder
    result = compare.compare(str(tmp_path / "run"), newest, model_b="popularity", draws=100)
    assert result["b"] == ([newest], "popularity") and cell(result, "x", "all", "HR@10")["b"] == 0


def test_runs_on_other_rows_or_without_the_model_stop_with_the_file(tmp_path):
    a = write_ranks(str(tmp_path / "a.csv"), "i2vae", ROWS_A)
    b = write_ranks(str(tmp_path / "b.csv"), "sasrec", ROWS_B[:3])
    with pytest.raises(config.ConfigError, match="rank different rows \\(1 only in the first, 0 only in the second\\)"):
        compare.compare(a, b)
    with pytest.raises(config.ConfigError, match="b.csv:1: no model 'lightgcn' in it; it holds \\['sasrec'"):
        compare.compare(a, b, model_b="lightgcn")
    with pytest.raises(config.ConfigError, match="no ranks_eval.csv under it"):
        compare.compare(str(tmp_path), a, split="eval")
    bad = write_ranks(str(tmp_path / "bad.csv"), "i2vae", ROWS_A[:2] + [("u3", 0, 7, 1, 0, "n/a")])
    with pytest.raises(config.ConfigError, match="bad.csv:4: field i2vae_full_rank is 'n/a', not a rank"):
        compare.compare(a, bad)


def test_the_command_prints_the_table(tmp_path, capsys):
    a = write_ranks(str(tmp_path / "a.csv"), "i2vae", ROWS_A)
    b = write_ranks(str(tmp_path / "b.csv"), "sasrec", ROWS_B)
    assert cli.main(["compare", a, b, "--draws", "100"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"A: i2vae in {a}\nB: sasrec in {b}") and "| X | all | HR@10 | 3 |" in out
    assert cli.main(["compare", a, str(tmp_path / "none.csv")]) == 2
    assert "none.csv: no ranks_test.csv under it" in capsys.readouterr().err


def test_a_side_of_several_seeds_averages_each_rows_values(tmp_path):
    a1 = write_ranks(str(tmp_path / "a1" / "ranks_test.csv"), "i2vae", ROWS_A)
    a2 = write_ranks(str(tmp_path / "a2" / "ranks_test.csv"), "i2vae", [r[:5] + (60,) for r in ROWS_A])  # no hits
    b = write_ranks(str(tmp_path / "b" / "ranks_test.csv"), "sasrec", ROWS_B)
    one, both = compare.compare(a1, b, draws=100), compare.compare(f"{a1},{a2}", b, draws=100)
    twice = compare.compare(f"{a1},{a1}", b, draws=100)["cells"]  # a seed twice: the same values
    figures = ("a", "b", "difference", "standard_error", "low", "high")
    np.testing.assert_allclose([[c[f] for f in figures] for c in twice], [[c[f] for f in figures] for c in one["cells"]])
    for metric in ("HR@10", "NDCG@10"):  # per row half of seed 1's value
        assert np.isclose(cell(both, "x", "all", metric)["a"], cell(one, "x", "all", metric)["a"] / 2)
    # X, all, HR: A's rows (0.5, 0.5, 0) against B's (1, 0, 1): differences (-0.5, 0.5, -1)
    assert np.isclose(cell(both, "x", "all", "HR@10")["difference"], -1 / 3)
    with pytest.raises(config.ConfigError, match="not two runs of one model on the same rows"):
        compare.compare(f"{a1},{write_ranks(str(tmp_path / 'a3' / 'ranks_test.csv'), 'i2vae', ROWS_A[:3])}", b)
