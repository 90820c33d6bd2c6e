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
