"""The recall benchmark at a tiny size: both paths run, figures are filled, no seen item comes back."""
import pytest

from experiments import bench


def test_recall_bench_reports_exact_and_approximate(capsys):
    r = bench.recall_one(3000, users=40, dim=8, k=10, nprobes=(4, 32))
    assert r["items"] == 3000 and r["exact_s"] > 0 and len(r["approximate"]) == 2
    for a in r["approximate"]:
        assert a["seen_returned"] == 0 and 0 < a["recall_at_k"] <= 1 and a["build_s"] > 0
    assert r["approximate"][1]["recall_at_k"] >= 0.95  # 32 of 70 cells probed
    bench.print_recall([r])
    assert "| 3,000 |" in capsys.readouterr().out


@pytest.mark.slow  # two fresh TF processes, about 40 s: `make test-slow`
def test_scale_bench_streams_every_row_into_training(tmp_path, capsys):
    """Both phases run in their own processes at a tiny fixed catalogue: every row is
    recalled and written, and training streamed the TFRecords the recall wrote."""
    results = bench.scale([300], str(tmp_path), items=(120, 90), train_steps=2)
    r = results[0]
    assert r["users"] == 300 and r["rows"] > 0 and r["items"] == 210
    assert r["recall_s"] > 0 and r["train_examples_per_s"] > 0 and r["examples_mb"] > 0
    assert r["peak_rss_training_mb"] >= r["rss_before_training_mb"] > 0
    assert list(tmp_path.iterdir()) == []  # the synthetic files are removed after each size
    bench.print_scale(results)
    assert "| 300 |" in capsys.readouterr().out


def test_speed_report_sets_the_default_against_sasrec_as_shipped(capsys):
    """The figures are the timer's; the printed ratio is the i2VAE's steady epoch over SASRec's."""
    r = {"examples": "e", "train_rows": 1024, "steps_per_epoch": 2, "num_items": [10, 20], "test_rows": 5,
         "eval_sampling_s": 0.1, "eval_scoring_ranking_s": 0.2, "peak_rss_mb": 100.0,
         "epochs": {"padded": [9.0, 4.0], "packed": [9.0, 3.0], "default_recipe": [9.0, 6.0, 6.0],
                    "sasrec": [5.0, 2.0, 2.0]}}
    bench.print_speed(r)
    out = capsys.readouterr().out
    assert "2.0 s per training epoch; the default i2VAE's epoch is 3.00x it (target: at most 3x)" in out
