"""The reproduction's runner: run order, result files and one pipeline run."""
import json
import os

import pytest

from experiments.reproduce_runner import REPO, load_results_by_pair, plan, result_path, run_one
from experiments.reproduce_settings import BY_NAME
from tests.reproduce_testing import fake_metrics, fake_result, write_result


def test_plan_runs_seed_by_seed_and_the_deterministic_model_once():
    runs = plan(seeds=2, sweep_seeds=1)
    names = [(s.name, k) for s, k in runs]
    assert names[:42] == [("i2vae", 1), ("sasrec", 1), ("lightgcn", 1), ("popularity", 1), ("causal_encoder", 1),
                          ("wo_psg", 1), ("wo_ifr_dsr", 1), ("wo_dnr", 1), ("wo_cold_loss", 1), ("i2vae_raw", 1),
                          ("sasrec_raw", 1), ("lightgcn_raw", 1), ("i2vae_causal_residual", 1),
                          ("i2vae_causal_residual_lmin_p10", 1), ("i2vae_p10", 1), ("i2vae_causal_residual_p10", 1),
                          ("sasrec_neg1024", 1), ("sasrec_lr5e-4", 1), ("sasrec_p10", 1), ("sasrec_neg1024_p10", 1),
                          ("i2vae_causal_residual_state_p10", 1), ("sasrec_neg1024_lr5e-4_p10", 1),
                          ("i2vae_causal_residual_state_softmax_detach_p10", 1), ("sasrec_softmax_p10", 1),
                          ("i2vae_causal_residual_state_softmax_detach_drop05_p10", 1), ("sasrec_neg1024_drop05_p10", 1),
                          ("i2vae_causal_residual_state_softmax_detach_drop05_dw_p10", 1),
                          ("sasrec_softmax_drop05_p10", 1),
                          ("i2vae_causal_residual_state_softmax_detach_drop05_dw_graph_p10", 1),
                          ("i2vae_causal_residual_state_softmax_detach_drop05_dw_graph_lr2e-3_p10", 1),
                          ("sasrec_softmax_drop05_lr2e-3_p10", 1), ("lightgcn_d128", 1), ("lightgcn_layers1", 1),
                          ("lightgcn_layers2", 1), ("lightgcn_reg1e-3", 1), ("lightgcn_reg1e-5", 1),
                          ("lightgcn_lr5e-3", 1), ("lightgcn_every1_p10", 1),
                          ("i2vae_causal_residual_state_softmax_detach_drop05_dw_graph_lr2e-3_gen128_p10", 1),
                          ("i2vae_default_wo_vae", 1), ("i2vae_gen128_wo_vae", 1), ("i2vae_default_sampled", 1)]
    assert ("i2vae_causal_residual_lmin_p10", 2) not in names  # tuning candidates: seed 1 only until selected
    # then the main comparison's second seed (LightGCN is trained and seeded too), the raw split's, the ablations'
    assert names[42:48] == [("i2vae", 2), ("sasrec", 2), ("lightgcn", 2), ("i2vae_raw", 2), ("sasrec_raw", 2),
                            ("lightgcn_raw", 2)]
    assert names[48:50] == [("causal_encoder", 2), ("wo_psg", 2)]
    assert ("popularity", 2) not in names
    assert [n for n, _ in names[-6:]] == ["density_25", "density_50", "density_75", "overlap_25", "overlap_50",
                                          "overlap_75"]
    assert [s.name for s, _ in plan(3, 0, only=["i2vae"])] == ["i2vae"] * 3
    assert BY_NAME["i2vae_raw"].data_variant == "raw" and BY_NAME["wo_dnr"].data_variant == "full"


def test_result_files_are_not_git_ignored():
    """Result files are the only copy of hours of training: `--commit` and a session's hand-in
    must pick them up (a `runs/` ignore rule once matched `docs/results/<pair>/runs/` too)."""
    import subprocess
    if not os.path.isdir(os.path.join(REPO, ".git")):
        pytest.skip("not a git checkout")
    path = result_path(os.path.join("docs", "results", "cloth_sport"), BY_NAME["i2vae"], 1)
    ignored = subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO)
    assert ignored.returncode == 1, f"{path} is git-ignored"
    assert subprocess.run(["git", "check-ignore", "-q", "runs/reproduce/x"], cwd=REPO).returncode == 0


def test_run_one_gives_each_run_its_own_backup_and_counts_time_before_a_resume(tmp_path, monkeypatch):
    """The pipeline is stood in for: it records the config and writes what run_fn and the
    evaluator would, as for a run resumed at epoch 2 after 100 s of training."""
    from pipeline import local_runner

    seen = []

    def fake_run_local(cfg, out):
        seen.append(cfg)
        os.makedirs(out, exist_ok=True)
        result = fake_result(BY_NAME["i2vae"], 1, 0.05)
        json.dump({"splits": {"test": {"i2vae": result["test"]}, "eval": {"i2vae": result["eval"]}}},
                  open(os.path.join(out, "metrics.json"), "w"))
        json.dump({"epochs_run": 3, "best_epoch": 3, "history": result["history"], "resumed_at": [2],
                   "seconds_before_resume": 100.0, "decoder_weight": {"selected": 0.5, "val_ndcg": {"1.0": 0.02, "0.5": 0.03}}}, open(os.path.join(out, "history.json"), "w"))
        return {"metrics": os.path.join(out, "metrics.json"), "training_history": os.path.join(out, "history.json")}

    monkeypatch.setattr(local_runner, "run_local", fake_run_local)
    for seed in (1, 2):
        result = run_one("cloth_sport", "data", BY_NAME["i2vae"], seed, None, str(tmp_path / "work"),
                         str(tmp_path / "results"))
        assert result["resumed_at"] == [2] and result["seconds"] >= 100.0
        assert result["decoder_weight"]["selected"] == 0.5  # the calibration's choice, for the page
    assert [c.train.backup_dir for c in seen] == [str(tmp_path / "work" / "backups" / f"i2vae-seed{k}")
                                                  for k in (1, 2)]


@pytest.mark.parametrize("a, b", [("i2vae_causal_residual_state_p10", "i2vae_causal_residual_state_softmax_detach_p10"),
                                  ("sasrec_softmax_p10", "sasrec_softmax_drop05_p10"),
                                  ("lightgcn_layers2", "lightgcn_reg1e-3")])
def test_the_candidate_the_default_follows_gets_further_seeds_on_every_pair(tmp_path, a, b):
    """A pair whose own pick differs from the package default's still runs the default's
    further seeds: the README reports the default on every pair. One rule for every tuned
    model, not only the i2VAE."""
    for pair, val_a, val_b in (("p", 0.030, 0.026), ("q", 0.030, 0.040)):
        for name, val in ((a, val_a), (b, val_b)):
            r = fake_result(BY_NAME[name], 1, 0.03)
            r["eval"] = {"sampled": fake_metrics(val), "full": fake_metrics(val)}
            write_result(tmp_path / pair, r)
    by_pair = load_results_by_pair(str(tmp_path))
    assert sorted(by_pair) == ["p", "q"] and sorted(by_pair["p"]) == sorted([a, b])

    def further(pair, across):
        return [(s.name, k) for s, k in plan(3, 0, [a, b], by_pair[pair], across) if k > 1]

    assert further("p", None) == [(a, 2), (a, 3)]  # p's own pick
    assert further("p", by_pair) == [(a, 2), (b, 2), (a, 3), (b, 3)]  # and the default's (b: 0.033 against 0.030)
    assert further("q", by_pair) == [(b, 2), (b, 3)]

