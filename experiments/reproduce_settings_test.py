"""The reproduction's settings: which tuning candidate validation selects, and what that changes in the plan."""
from experiments.reproduce_runner import plan
from experiments.reproduce_settings import (
    BY_NAME,
    REPRODUCTION_BASE,
    SETTINGS,
    selected,
    selected_across_pairs,
    shared_seeds,
)
from tests.reproduce_testing import fake_metrics, fake_result


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


def test_selection_across_pairs_averages_each_pairs_validation():
    """The pairs can disagree; the default follows the better mean over them."""
    def run(name, seed, val):
        r = fake_result(BY_NAME[name], seed, 0.03)
        r["eval"] = {"full": fake_metrics(val)}
        return r

    a, b = "i2vae_causal_residual_state_p10", "i2vae_causal_residual_state_softmax_detach_p10"
    pairs = {"p": {a: [run(a, 1, 0.030)], b: [run(b, 1, 0.026)]},
             "q": {a: [run(a, 1, 0.030)], b: [run(b, 1, 0.040)], "i2vae": [run("i2vae", 1, 0.01)]}}
    assert selected(pairs["p"], "i2vae") == a and selected(pairs["q"], "i2vae") == b
    assert selected_across_pairs(pairs, "i2vae") == b  # 0.033 on average against 0.030
    pairs["q"][b][0]["eval"] = {"full": fake_metrics(0.031)}
    assert selected_across_pairs(pairs, "i2vae") == a
    # a candidate that ran on one pair only cannot be the default
    pairs["q"]["i2vae_p10"] = [run("i2vae_p10", 1, 0.5)]
    assert selected_across_pairs(pairs, "i2vae") == a


# the fields only the i2VAE reads (SASRec's config may differ there)
I2VAE_ONLY = {"model": ("latent_dim", "cross_encoder", "decoder_hidden", "pooling", "encoder", "cold_start_augmented",
                        "residual_state", "detach_latents", "variational", "min_scale"),
              "train": ("reconstruction", "softmax_negatives", "num_train_negatives", "lambda_t", "lambda_a", "kl_weight",
                        "kl_anneal_epochs", "noise_a", "noise_b", "prefix_targets", "cold_start_rows", "cold_start_loss",
                        "state_loss", "decoder_weight_grid", "graph_blend_grid")}

# a section's fields, or None: none of the section (SASRec reads the real histories only, not
# the pseudo-sequence generator)
NOT_READ = {"i2vae": {"model": ("sasrec_negatives",)}, "sasrec": {**I2VAE_ONLY, "lightgcn": None}}


def _as_read_by(kind, cfg):
    from models.config import to_dict

    values = to_dict(cfg)
    if kind == "lightgcn":  # the recommender reads its own section (its seed is the run's)
        return {"kind": values["model"]["kind"], "lightgcn": values["lightgcn"]}
    for section, fields in NOT_READ[kind].items():
        for name in fields if fields is not None else list(values[section]):
            del values[section][name]
    return values


def test_the_default_config_is_the_candidate_validation_selected():
    """The package defaults (and SASRec's and LightGCN's configs) are the candidate with the best validation over both pairs
    in the checked-in results (`docs/results/early_stopping_start`, on the reproduction base)
    plus the early-stopping start that waits out the early validation dip; they must not
    drift apart, and configs/paper.json must restore the paper's architecture."""
    import os

    from experiments.reproduce_runner import load_results
    from models.config import PAPER_MODEL, load_config

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    pages = os.path.join(root, "docs", "results", "early_stopping_start")
    results = {pair: load_results(os.path.join(pages, pair)) for pair in ("cloth_sport", "phone_elec")}
    # each trained model's shipped config trains its selected candidate, on every field it reads
    for kind, shipped_file in (("i2vae", None), ("sasrec", os.path.join(root, "configs", "baselines", "sasrec.json")),
                               ("lightgcn", os.path.join(root, "configs", "baselines", "lightgcn.json"))):
        recipe = BY_NAME[selected_across_pairs(results, kind)].overrides
        selected_config = load_config(overrides=REPRODUCTION_BASE + recipe + ["train.early_stopping_start=10"])
        assert _as_read_by(kind, load_config(shipped_file)) == _as_read_by(kind, selected_config), kind
    assert load_config(overrides=REPRODUCTION_BASE) != load_config()
    paper = os.path.join(root, "configs", "paper.json")
    cfg = load_config(paper)
    assert (cfg.model.encoder, cfg.model.residual_state, cfg.train.state_loss) == ("bidirectional", False, 0.0)
    # the files that restore the paper's model are PAPER_MODEL (configs/paper.json with the paper's budget)
    paper_encoder = os.path.join(os.path.dirname(paper), "ablations", "paper_encoder.json")
    assert load_config(paper_encoder) == load_config(overrides=list(PAPER_MODEL))
    budget = ["train.epochs=100", "train.early_stopping_patience=10", "lightgcn.max_epochs=1000", "lightgcn.patience=20"]
    assert load_config(paper) == load_config(overrides=list(PAPER_MODEL) + budget)


def test_every_ablation_config_is_the_registrys_setting():
    """configs/ablations/*.json are what `i2vae reproduce` runs under those names: each
    ablation's change is read from its file, and no file is left out of the registry."""
    import glob
    import os

    from experiments.reproduce_settings import ABLATION_CONFIGS, config_file_overrides
    from models.config import PAPER_MODEL, load_config

    for path in sorted(glob.glob(os.path.join(ABLATION_CONFIGS, "*.json"))):
        name = os.path.basename(path)[:-len(".json")]
        change = config_file_overrides(path)
        if name == "paper_encoder":  # the reproduction base itself
            assert REPRODUCTION_BASE[:len(PAPER_MODEL)] == list(PAPER_MODEL)
            continue
        setting = BY_NAME.get(name) or BY_NAME[f"i2vae_default_{name}"]
        assert setting.table == "ablation" and setting.overrides[-len(change):] == change, name
        assert load_config(path) == load_config(overrides=change), name
