"""The recall benchmark at a tiny size: both paths run, figures are filled, no seen item comes back."""
from pipeline import bench


def test_recall_bench_reports_exact_and_approximate(capsys):
    r = bench.recall_one(3000, users=40, dim=8, k=10, nprobes=(4, 32))
    assert r["items"] == 3000 and r["exact_s"] > 0 and len(r["approximate"]) == 2
    for a in r["approximate"]:
        assert a["seen_returned"] == 0 and 0 < a["recall_at_k"] <= 1 and a["build_s"] > 0
    assert r["approximate"][1]["recall_at_k"] >= 0.95  # 32 of 70 cells probed
    bench.print_recall([r])
    assert "| 3,000 |" in capsys.readouterr().out
