"""The reproduction's settings: which tuning candidate validation selects, and what that changes in the plan."""
from pipeline.reproduce_runner import plan
from pipeline.reproduce_settings import BY_NAME, REPRODUCTION_BASE, SETTINGS, selected, shared_seeds
from pipeline.reproduce_testing import fake_metrics, fake_result


def test_selected_candidate_earns_further_seeds_and_replaces_the_default():
    results = {"sasrec": [], "sasrec_p10": []}
    for seed, (default_val, long_val) in enumerate([(0.05, 0.08), (0.06, 0.07)], 1):
        for name, val in (("sasrec", default_val), ("sasrec_p10", long_val)):
            r = fake_result(BY_NAME[name], seed, 0.03)
            r["eval"] = {"full": fake_metrics(val)}
            results[name].append(r)
    seed1 = {n: runs[:1] for n, runs in results.items()}
    assert selected(seed1, "sasrec") == "sasrec_p10" and selected(seed1, "i2vae") == "i2vae"
    names = [(s.name, k) for s, k in plan(3, 0, results=seed1)]
    assert ("sasrec_p10", 2) in names and ("sasrec_p10", 3) in names and ("sasrec_lr5e-4", 2) not in names
    assert names.index(("sasrec_p10", 2)) < names.index(("wo_psg", 2))  # before the ablations' further seeds
    tie = {"sasrec": seed1["sasrec"], "sasrec_p10": [dict(seed1["sasrec_p10"][0], eval=seed1["sasrec"][0]["eval"])]}
    assert selected(tie, "sasrec") == "sasrec"  # equal validation keeps the default
    lopsided = {"sasrec": results["sasrec"][:1], "sasrec_p10": results["sasrec_p10"]}
    assert shared_seeds(lopsided, ["sasrec", "sasrec_p10"]) == [1]


def test_every_ablation_says_what_it_changes():
    """The page describes each ablation that ran from its setting: one without would break it."""
    assert all(s.about for s in SETTINGS if s.table == "ablation")


def test_the_default_config_is_the_candidate_validation_selected():
    """The package defaults are the i2VAE candidate both pairs' validation selected
    (`i2vae_causal_residual_state_softmax_detach_p10` on the reproduction base) plus the
    early-stopping start that waits out the early validation dip; they must not drift
    apart, and configs/paper.json must restore the paper's architecture."""
    import os

    from models.config import PAPER_MODEL, load_config

    selected_recipe = BY_NAME["i2vae_causal_residual_state_softmax_detach_p10"].overrides
    assert load_config() == load_config(overrides=REPRODUCTION_BASE + selected_recipe + ["train.early_stopping_start=10"])
    assert load_config(overrides=REPRODUCTION_BASE) != load_config()
    paper = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "paper.json")
    cfg = load_config(paper)
    assert (cfg.model.encoder, cfg.model.residual_state, cfg.train.state_loss) == ("bidirectional", False, 0.0)
    # both files that restore the paper's model hold every field of PAPER_MODEL, so a field
    # added there cannot be missed in them
    paper_encoder = os.path.join(os.path.dirname(paper), "ablations", "paper_encoder.json")
    for path in (paper, paper_encoder):
        assert load_config(path, list(PAPER_MODEL)) == load_config(path), path
