"""The reproduction's report, built from result files."""
import numpy as np

from experiments.reproduce_report import paper_protocol, write_report
from experiments.reproduce_settings import BY_NAME
from tests.reproduce_testing import fake_metrics, fake_result, write_result


def test_report_leads_with_full_ranking_then_the_paper_protocol(tmp_path):
    results_dir = tmp_path / "cloth_sport"
    for setting, seed, value in [(BY_NAME["i2vae"], 1, 0.04), (BY_NAME["i2vae"], 2, 0.06),
                                 (BY_NAME["popularity"], 1, 0.02), (BY_NAME["wo_dnr"], 1, 0.03),
                                 (BY_NAME["density_50"], 1, 0.01)]:
        result = fake_result(setting, seed, value)
        if seed == 2:
            result["resumed_at"] = [2]
        write_result(results_dir, result)
    md = open(write_report("cloth_sport", str(results_dir), "i2vae reproduce --pair cloth_sport")).read()
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
    assert np.isclose(paper_protocol(fake_result(BY_NAME["i2vae"], 1, 0.04), "x", "all", "HR@10"),
                      0.06)


def test_leak_table_compares_the_touched_rows_on_both_splits(tmp_path):
    results_dir = tmp_path / "cloth_sport"
    for name, touched in (("i2vae", 0.02), ("i2vae_raw", 0.08), ("popularity", 0.01)):
        r = fake_result(BY_NAME[name], 1, 0.05)
        for protocol in ("sampled", "full"):
            for d in ("x", "y"):
                r["test"][protocol][d]["leak_touched"] = dict(r["test"][protocol][d]["all"], **{"HR@10": touched},
                                                              rows=7)
        write_result(results_dir, r)
    md = open(write_report("cloth_sport", str(results_dir), "cmd")).read()
    leak = md.split("## The leak")[1].split("##")[0]
    # raw HR 8.00, NDCG 5.00 (full: 2.50), then leak-free HR 2.00
    assert "| Cloth | i2VAE (ours) | 7 | 8.00 | 2.50 | 2.00 | 2.50 | 8.00 | 5.00 | 2.00 | 5.00 |" in leak


def test_tuning_selects_on_validation_full_ranking_not_test(tmp_path):
    results_dir = tmp_path / "cloth_sport"
    # the grid point: best validation, worst test; p10: best test, worst validation
    for name, val, test in (("i2vae", 0.05, 0.05), ("i2vae_causal_residual_lmin_p10", 0.07, 0.01),
                            ("i2vae_p10", 0.02, 0.09)):
        r = fake_result(BY_NAME[name], 1, test)
        r["eval"] = {"sampled": fake_metrics(0.5), "full": fake_metrics(val)}  # sampled plays no part
        if name == "i2vae_p10":  # a run that calibrated its decoder's weight shows the weight kept
            r["decoder_weight"] = {"selected": 0.5, "val_ndcg": {"1.0": 0.01, "0.5": 0.02}}
        write_result(results_dir, r)
    md = open(write_report("cloth_sport", str(results_dir), "cmd")).read()
    tuning = md.split("## Tuning on the validation split")[1].split("##")[0]
    selected = "| **default** i2VAE causal encoder + residual state, lambdas 1e-4, patience 10, ≤40 epochs | "
    assert selected in tuning and "`train.lambda_a=0.0001`<br>`train.early_stopping_patience=10`<br>`train.epochs=40` " \
        "| 1 | 3 (3) | 7.00 | 7.00 | 7.00 | 7.00 |" in tuning  # validation only
    assert "| 0.50 |" not in tuning and "| 4.50 |" not in tuning  # no test figure (the candidates' full ranking)
    assert "| 1 | 3 (3, w 0.5) | 2.00 |" in tuning
    assert "| i2VAE patience 10, ≤40 epochs |" in tuning and "| i2VAE (base) | – |" in tuning
    full = md.split("## All users")[1].split("##")[0]
    assert "| Cloth | all | 0.50 | 0.50 |" in full and "lambdas 1e-4, patience 10, ≤40 epochs: 1 seed(s)" in full


def test_a_config_file_under_the_settings_is_named_with_its_content(tmp_path):
    results_dir = tmp_path / "cloth_sport"
    write_result(results_dir, fake_result(BY_NAME["sasrec"], 1, 0.05))
    config_file = tmp_path / "start.json"
    config_file.write_text('{"train": {"early_stopping_start": 10}}')
    md = open(write_report("cloth_sport", str(results_dir), "cmd", str(config_file))).read()
    assert f'Then `{config_file}` applies on top of the base, under every setting\'s overrides: ' \
           '`{"train": {"early_stopping_start": 10}}`.' in md
    assert "applies on top of the base" not in open(write_report("cloth_sport", str(results_dir), "cmd")).read()


def test_every_page_compares_the_defaults_and_labels_a_pairs_own_pick(tmp_path):
    """One rule: the headline tables show each model's package default (the best validation
    over both pairs); where a pair's own validation picked another, that pick follows, labelled."""
    a, b = "i2vae_causal_residual_state_p10", "i2vae_causal_residual_state_softmax_detach_p10"
    for pair, vals in (("cloth_sport", {a: 0.030, b: 0.026}), ("phone_elec", {a: 0.030, b: 0.040})):
        for name, val in [*vals.items(), ("i2vae", 0.01), ("sasrec", 0.02)]:
            r = fake_result(BY_NAME[name], 1, {a: 0.04, b: 0.06}.get(name, 0.02))
            r["eval"] = {"sampled": fake_metrics(0.5), "full": fake_metrics(val)}
            write_result(tmp_path / pair, r)
    # cloth_sport selects a, phone_elec b, both pairs b (0.033 against 0.030)
    cloth = open(write_report("cloth_sport", str(tmp_path / "cloth_sport"), "cmd")).read()
    headline = cloth.split("## All users")[1].split("##")[0]
    assert "| Cloth | all | 3.00 | 3.00 | 1.00 | 1.00 |" in headline  # b's full ranking, then SASRec's
    sampled = cloth.split("## The paper's protocol (test")[1].split("##")[0]
    assert "| Cloth | all | 6.00 | 6.00 | 2.00 | 2.00 | 5.00 | 2.59 |" in sampled
    section = cloth.split("## Per-pair picks")[1].split("\n## ")[0]
    assert f"{BY_NAME[b].label} → {BY_NAME[a].label}" in section
    assert "| Cloth | all | 2.00 | 2.00 | 1.00 | 1.00 |" in section  # a: this pair's own pick
    phone = open(write_report("phone_elec", str(tmp_path / "phone_elec"), "cmd")).read()
    assert "## Per-pair picks" not in phone  # its own pick is the default


def test_headline_shows_each_figures_row_error_and_the_validation_figures(tmp_path):
    """Beside the test figures: one standard error from the test rows (HR 0.1 over 100 rows:
    sqrt(0.1 * 0.9 / 100) = 3.00%), and what selection saw on validation."""
    for seed, test in ((1, 0.18), (2, 0.22)):  # full ranking is half: mean 0.10
        r = fake_result(BY_NAME["i2vae"], seed, test)
        for d in ("x", "y"):
            for group in r["test"]["full"][d].values():
                group["rows"] = 100
        r["eval"] = {"sampled": fake_metrics(0.5), "full": fake_metrics(0.07 if seed == 1 else 0.09)}
        write_result(tmp_path / "cloth_sport", r)
    md = open(write_report("cloth_sport", str(tmp_path / "cloth_sport"), "cmd")).read()
    section = md.split("## All users")[1].split("\n## ")[0]
    assert "| Cloth | all | 10.00 ± 1.41 | 10.00 ± 1.41 |" in section
    assert "| Cloth | all | ±3.00 (100) | ±3.00 (100) |" in section
    assert "| Cloth | long-tailed | 8.00 ± 1.41 | 8.00 ± 1.41 |" in section.split("on the validation split")[1]
    assert section.count("Behind each figure") == 1
