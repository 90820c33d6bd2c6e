"""The reproduction command: run order, resumability and the report built from result files."""
import json
import os

import numpy as np
import pytest

from pipeline import reproduce


def metrics(value):
    group = {f"{m}@{k}": value for m in ("HR", "NDCG") for k in (5, 10, 20)}
    group.update(MRR=value, rows=10)
    return {d: {g: dict(group) for g in ("all", "cold_start", "long_tailed")} for d in ("x", "y")}


def fake_result(setting, seed, value, epochs=3):
    overrides = dict(o.split("=") for o in setting.overrides)
    history = [{"epoch": e, "loss": 1.0, "val_ndcg": value, "metrics": metrics(value * e / epochs),
                "test_metrics": metrics(value * (1.5 if e == 1 else 1.0))} for e in range(epochs + 1)]
    return {"pair": "cloth_sport", "setting": setting.name, "seed": seed, "overrides": setting.overrides,
            "seconds": 60.0, "finished": "2026-11-23 12:00 UTC", "epochs_run": epochs, "best_epoch": epochs,
            "max_epochs": 20 if setting.seeded else 0, "test": {"sampled": metrics(value), "full": metrics(value / 2)},
            "eval": {"sampled": metrics(value), "full": metrics(value)}, "history": history if setting.seeded else [],
            "config": {"train": {"learning_rate": float(overrides.get("train.learning_rate", 8e-4)),
                                 "early_stopping_patience": int(overrides.get("train.early_stopping_patience", 3)),
                                 "epochs": int(overrides.get("train.epochs", 20)),
                                 "prefix_targets": int(overrides.get("train.prefix_targets", 0)),
                                 "cold_start_rows": overrides.get("train.cold_start_rows") == "true",
                                 "lambda_a": float(overrides.get("train.lambda_a", 5e-3)),
                                 "epoch_selection": json.loads(overrides.get("train.epoch_selection", '"mean"'))},
                       "model": {"decoder_hidden": json.loads(overrides.get("model.decoder_hidden", "[32, 64, 32]")),
                                 "pooling": json.loads(overrides.get("model.pooling", '"mean"'))}}}


def test_plan_runs_seed_by_seed_and_deterministic_models_once():
    runs = reproduce.plan(seeds=2, sweep_seeds=1)
    names = [(s.name, k) for s, k in runs]
    assert names[:18] == [("i2vae", 1), ("sasrec", 1), ("lightgcn", 1), ("popularity", 1), ("causal_encoder", 1),
                          ("wo_psg", 1), ("wo_ifr_dsr", 1), ("wo_dnr", 1), ("wo_cold_loss", 1), ("i2vae_raw", 1),
                          ("sasrec_raw", 1), ("lightgcn_raw", 1), ("i2vae_wide", 1), ("i2vae_lr5e-4", 1),
                          ("i2vae_p10", 1), ("sasrec_neg1024", 1), ("sasrec_lr5e-4", 1), ("sasrec_p10", 1)]
    assert ("i2vae_lr5e-4", 2) not in names  # tuning candidates: seed 1 only until selected
    # then the main comparison's second seed, the raw split's, then the ablations'
    assert names[18:22] == [("i2vae", 2), ("sasrec", 2), ("i2vae_raw", 2), ("sasrec_raw", 2)]
    assert names[22] == ("causal_encoder", 2)
    assert ("lightgcn", 2) not in names and ("lightgcn_raw", 2) not in names
    assert [n for n, _ in names[-6:]] == ["density_25", "density_50", "density_75", "overlap_25", "overlap_50",
                                          "overlap_75"]
    assert [s.name for s, _ in reproduce.plan(3, 0, only=["i2vae"])] == ["i2vae"] * 3
    assert reproduce.BY_NAME["i2vae_raw"].data_variant == "raw" and reproduce.BY_NAME["wo_dnr"].data_variant == "full"


def write_result(results_dir, result):
    """Stores a result file where `reproduce` would, for the report tests."""
    path = reproduce.result_path(str(results_dir), reproduce.BY_NAME[result["setting"]], result["seed"])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    json.dump(result, open(path, "w"))


def test_done_runs_are_skipped(tmp_path, monkeypatch):
    (tmp_path / "data" / "cloth_sport").mkdir(parents=True)
    results = tmp_path / "results"
    calls = []

    def fake_run_one(pair, data_path, setting, seed, base_config, work_dir, results_dir):
        calls.append((setting.name, seed))
        path = reproduce.result_path(results_dir, setting, seed)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        result = fake_result(setting, seed, 0.05)
        json.dump(result, open(path, "w"))
        return result

    monkeypatch.setattr(reproduce, "run_one", fake_run_one)
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


def test_report_leads_with_full_ranking_then_the_paper_protocol(tmp_path):
    results_dir = tmp_path / "cloth_sport"
    for setting, seed, value in [(reproduce.BY_NAME["i2vae"], 1, 0.04), (reproduce.BY_NAME["i2vae"], 2, 0.06),
                                 (reproduce.BY_NAME["popularity"], 1, 0.02), (reproduce.BY_NAME["wo_dnr"], 1, 0.03),
                                 (reproduce.BY_NAME["density_50"], 1, 0.01)]:
        result = fake_result(setting, seed, value)
        if seed == 2:
            result["resumed_at"] = [2]
        write_result(results_dir, result)
    md = open(reproduce.write_report("cloth_sport", str(results_dir), "i2vae reproduce --pair cloth_sport")).read()
    assert "Command: `i2vae reproduce --pair cloth_sport`" in md
    headings = [line for line in md.splitlines() if line.startswith("## ")]
    assert headings[0].startswith("## All users, long-tailed and cold-start (test, full ranking")
    assert headings[1].startswith("## The paper's protocol (test, 999 sampled negatives")
    full = md.split("## All users")[1].split("##")[0]
    # Cloth all users, full ranking (half the sampled value in the fakes): i2VAE 2.50 ± 0.71, popularity 1.00
    assert "| Cloth | all | 2.50 ± 0.71 | 2.50 ± 0.71 | 1.00 | 1.00 |" in full
    assert "i2VAE (ours): 2 seed(s), 3–3 epochs run (cap 20), selected epoch 3–3, 1 resumed from an epoch backup" \
        in full
    sampled = md.split("## The paper's protocol (test")[1].split("##")[0]
    assert "| Cloth | all | 5.00 ± 1.41 | 5.00 ± 1.41 | 2.00 | 2.00 | 5.00 | 2.59 |" in sampled
    assert "## Ablations" in md and "w/o DN-R HR@10" in md and "## Training density" in md and "D_s=50% HR@10" in md
    assert "## Tuning" not in md and "## The leak" not in md  # only what ran
    protocol = md.split("## The paper's protocol: best test value")[1]
    assert "| Cloth | all | 7.50 ± 2.12 |" in protocol  # best test over epochs: 1.5 x at epoch 1
    assert (tmp_path / "cloth_sport_learning_curves.png").exists() and (tmp_path / "cloth_sport_groups.png").exists()
    assert np.isclose(reproduce.paper_protocol(fake_result(reproduce.BY_NAME["i2vae"], 1, 0.04), "x", "all", "HR@10"),
                      0.06)


def test_leak_table_compares_the_touched_rows_on_both_splits(tmp_path):
    results_dir = tmp_path / "cloth_sport"
    for name, touched in (("i2vae", 0.02), ("i2vae_raw", 0.08), ("popularity", 0.01)):
        r = fake_result(reproduce.BY_NAME[name], 1, 0.05)
        for protocol in ("sampled", "full"):
            for d in ("x", "y"):
                r["test"][protocol][d]["leak_touched"] = dict(r["test"][protocol][d]["all"], **{"HR@10": touched},
                                                              rows=7)
        write_result(results_dir, r)
    md = open(reproduce.write_report("cloth_sport", str(results_dir), "cmd")).read()
    leak = md.split("## The leak")[1].split("##")[0]
    # raw HR 8.00, NDCG 5.00 (full: 2.50), then leak-free HR 2.00
    assert "| Cloth | i2VAE (ours) | 7 | 8.00 | 2.50 | 2.00 | 2.50 | 8.00 | 5.00 | 2.00 | 5.00 |" in leak


def test_tuning_selects_on_validation_full_ranking_not_test(tmp_path):
    results_dir = tmp_path / "cloth_sport"
    # lr 5e-4: best validation, worst test; p10: best test, worst validation
    for name, val, test in (("i2vae", 0.05, 0.05), ("i2vae_lr5e-4", 0.07, 0.01), ("i2vae_p10", 0.02, 0.09)):
        r = fake_result(reproduce.BY_NAME[name], 1, test)
        r["eval"] = {"sampled": metrics(0.5), "full": metrics(val)}  # sampled plays no part
        write_result(results_dir, r)
    md = open(reproduce.write_report("cloth_sport", str(results_dir), "cmd")).read()
    tuning = md.split("## Tuning on the validation split")[1].split("##")[0]
    assert "| **selected** i2VAE lr 5e-4 | `train.learning_rate=0.0005` | 1 | 3 (3) | 7.00 | 7.00 | 7.00 | 0.50 |" \
        in tuning
    assert "| i2VAE patience 10, ≤40 epochs |" in tuning and "| i2VAE (default) | – |" in tuning
    full = md.split("## All users")[1].split("##")[0]
    assert "| Cloth | all | 0.50 | 0.50 |" in full and "i2VAE lr 5e-4: 1 seed(s)" in full


def test_selected_candidate_earns_further_seeds_and_replaces_the_default():
    results = {"sasrec": [], "sasrec_p10": []}
    for seed, (default_val, long_val) in enumerate([(0.05, 0.08), (0.06, 0.07)], 1):
        for name, val in (("sasrec", default_val), ("sasrec_p10", long_val)):
            r = fake_result(reproduce.BY_NAME[name], seed, 0.03)
            r["eval"] = {"full": metrics(val)}
            results[name].append(r)
    seed1 = {n: runs[:1] for n, runs in results.items()}
    assert reproduce.selected(seed1, "sasrec") == "sasrec_p10" and reproduce.selected(seed1, "i2vae") == "i2vae"
    names = [(s.name, k) for s, k in reproduce.plan(3, 0, results=seed1)]
    assert ("sasrec_p10", 2) in names and ("sasrec_p10", 3) in names and ("i2vae_lr5e-4", 2) not in names
    assert names.index(("sasrec_p10", 2)) < names.index(("wo_psg", 2))  # before the ablations' further seeds
    tie = {"sasrec": seed1["sasrec"], "sasrec_p10": [dict(seed1["sasrec_p10"][0], eval=seed1["sasrec"][0]["eval"])]}
    assert reproduce.selected(tie, "sasrec") == "sasrec"  # equal validation keeps the default
    lopsided = {"sasrec": results["sasrec"][:1], "sasrec_p10": results["sasrec_p10"]}
    assert reproduce.shared_seeds(lopsided, ["sasrec", "sasrec_p10"]) == [1]


def test_result_files_are_not_git_ignored():
    """Result files are the only copy of hours of training: `--commit` and a session's hand-in
    must pick them up (a `runs/` ignore rule once matched `docs/results/<pair>/runs/` too)."""
    import subprocess
    if not os.path.isdir(os.path.join(reproduce.REPO, ".git")):
        pytest.skip("not a git checkout")
    path = reproduce.result_path(os.path.join("docs", "results", "cloth_sport"), reproduce.BY_NAME["i2vae"], 1)
    ignored = subprocess.run(["git", "check-ignore", "-q", path], cwd=reproduce.REPO)
    assert ignored.returncode == 1, f"{path} is git-ignored"
    assert subprocess.run(["git", "check-ignore", "-q", "runs/reproduce/x"], cwd=reproduce.REPO).returncode == 0


def test_run_one_gives_each_run_its_own_backup_and_counts_time_before_a_resume(tmp_path, monkeypatch):
    """The pipeline is stood in for: it records the config and writes what run_fn and the
    evaluator would, as for a run resumed at epoch 2 after 100 s of training."""
    from pipeline import local_runner

    seen = []

    def fake_run_local(cfg, out):
        seen.append(cfg)
        os.makedirs(out, exist_ok=True)
        result = fake_result(reproduce.BY_NAME["i2vae"], 1, 0.05)
        json.dump({"splits": {"test": {"i2vae": result["test"]}, "eval": {"i2vae": result["eval"]}}},
                  open(os.path.join(out, "metrics.json"), "w"))
        json.dump({"epochs_run": 3, "best_epoch": 3, "history": result["history"], "resumed_at": [2],
                   "seconds_before_resume": 100.0}, open(os.path.join(out, "history.json"), "w"))
        return {"metrics": os.path.join(out, "metrics.json"), "training_history": os.path.join(out, "history.json")}

    monkeypatch.setattr(local_runner, "run_local", fake_run_local)
    for seed in (1, 2):
        result = reproduce.run_one("cloth_sport", "data", reproduce.BY_NAME["i2vae"], seed, None,
                                   str(tmp_path / "work"), str(tmp_path / "results"))
        assert result["resumed_at"] == [2] and result["seconds"] >= 100.0
    assert [c.train.backup_dir for c in seen] == [str(tmp_path / "work" / "backups" / f"i2vae-seed{k}")
                                                  for k in (1, 2)]
