"""Fake result files for the tests of `i2vae reproduce` (reproduce*_test.py): what a run
would write, with every metric set to one value."""
import json
import os

from experiments.reproduce_runner import result_path
from experiments.reproduce_settings import BY_NAME


def fake_metrics(value):
    group = {f"{m}@{k}": value for m in ("HR", "NDCG") for k in (5, 10, 20)}
    group.update(MRR=value, rows=10)
    return {d: {g: dict(group) for g in ("all", "cold_start", "long_tailed")} for d in ("x", "y")}


def fake_result(setting, seed, value, epochs=3):
    overrides = dict(o.split("=") for o in setting.overrides)
    history = [{"epoch": e, "loss": 1.0, "val_ndcg": value, "metrics": fake_metrics(value * e / epochs),
                "test_metrics": fake_metrics(value * (1.5 if e == 1 else 1.0))} for e in range(epochs + 1)]
    return {"pair": "cloth_sport", "setting": setting.name, "seed": seed, "overrides": setting.overrides,
            "seconds": 60.0, "finished": "2026-11-23 12:00 UTC", "epochs_run": epochs * setting.seeded,
            "best_epoch": epochs * setting.seeded,  # a setting run once (popularity) trains nothing
            "max_epochs": 20 if setting.seeded else 0,
            "test": {"sampled": fake_metrics(value), "full": fake_metrics(value / 2)},
            "eval": {"sampled": fake_metrics(value), "full": fake_metrics(value)},
            "history": history if setting.seeded else [],
            "config": {"train": {"learning_rate": float(overrides.get("train.learning_rate", 8e-4)),
                                 "early_stopping_patience": int(overrides.get("train.early_stopping_patience", 3)),
                                 "epochs": int(overrides.get("train.epochs", 20)),
                                 "prefix_targets": int(overrides.get("train.prefix_targets", 0)),
                                 "cold_start_rows": overrides.get("train.cold_start_rows") == "true",
                                 "lambda_a": float(overrides.get("train.lambda_a", 5e-3)),
                                 "epoch_selection": json.loads(overrides.get("train.epoch_selection", '"mean"'))},
                       "model": {"decoder_hidden": json.loads(overrides.get("model.decoder_hidden", "[32, 64, 32]")),
                                 "pooling": json.loads(overrides.get("model.pooling", '"mean"'))}}}


def write_result(results_dir, result):
    """Stores a result file where `reproduce` would, for the report tests."""
    path = result_path(str(results_dir), BY_NAME[result["setting"]], result["seed"])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    json.dump(result, open(path, "w"))
