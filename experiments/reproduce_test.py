"""The reproduction command: resumability (runs whose result file exists are skipped)."""
import json
import os

import pytest

from experiments import reproduce, reproduce_runner
from tests.reproduce_testing import fake_result


def test_done_runs_are_skipped(tmp_path, monkeypatch):
    (tmp_path / "data" / "cloth_sport").mkdir(parents=True)
    results = tmp_path / "results"
    calls = []

    def fake_run_one(pair, data_path, setting, seed, base_config, work_dir, results_dir):
        calls.append((setting.name, seed))
        path = reproduce_runner.result_path(results_dir, setting, seed)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        result = fake_result(setting, seed, 0.05)
        json.dump(result, open(path, "w"))
        return result

    monkeypatch.setattr(reproduce_runner, "run_one", fake_run_one)
    args = dict(pair="cloth_sport", sweep_seeds=0, only=["i2vae", "popularity"], base_config=None,
                data_root=str(tmp_path / "data"), work_root=str(tmp_path / "work"), results_root=str(results),
                commit=False, report_only=False)
    reproduce.reproduce(seeds=1, **args)
    assert calls == [("i2vae", 1), ("popularity", 1)]
    reproduce.reproduce(seeds=2, **args)  # resumed: only the new seed runs
    assert calls[2:] == [("i2vae", 2)]
    assert (results / "cloth_sport.md").exists()
    with pytest.raises(ValueError, match="no such pair"):
        reproduce.reproduce(seeds=1, **dict(args, pair="nope"))
