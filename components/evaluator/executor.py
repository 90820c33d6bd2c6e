"""What RankingEvaluator runs: HR@K / NDCG@K / MRR of the exported model (i2VAE or the baseline
`model.kind` names) and of the popularity baseline.

It scores the eval and test splits through the SavedModel's `score_items` signature
(what is served is what is measured), ranks each target against 999 sampled negatives
drawn from a fixed seed (the paper's protocol) and against all unseen items (full
ranking), per domain and user group. It blesses the model when its validation NDCG@K
(mean of both domains, all users) beats the configured baseline; test figures are
reported, never used for the decision.
"""
import json
import logging
import os

import numpy as np
import tensorflow as tf
from tfx.types import artifact_utils
from tfx.utils import path_utils

from models import config, data, evaluation, feature_spec, metrics

logger = logging.getLogger(__name__)


def savedmodel_scorer(model_dir: str):
    signature = tf.saved_model.load(model_dir).signatures["score_items"]

    def score(features):
        out = signature(**{k: tf.constant(v, tf.int64) for k, v in features.items()})
        return out["scores_x"].numpy(), out["scores_y"].numpy()

    return score


def _mean_ndcg(result, k, protocol):
    return float(np.nanmean([result[protocol][d]["all"][f"NDCG@{k}"] for d in metrics.DOMAINS]))


def leak_touched(examples_uri: str, rows) -> np.ndarray:
    """Per row: did the paper's raw split show this held-out row's hidden items in another
    row of its user (ingest's `leak_touched.json`)? The group is reported on both splits, so
    a leak-free run shows what the fix changed on exactly those rows."""
    path = os.path.join(examples_uri, feature_spec.LEAK_TOUCHED_FILE)
    touched = set()
    if tf.io.gfile.exists(path):
        with tf.io.gfile.GFile(path) as f:
            touched = {(t["user_id"], t["target_domain"]) for t in json.load(f)}
    return np.asarray([(r[feature_spec.USER_ID], r[feature_spec.TARGET_DOMAIN]) in touched for r in rows], bool)


def evaluate_model(examples_uri: str, model_dir: str, splits, cfg, out_dir: str) -> dict:
    """Evaluates the SavedModel and popularity on `splits`; writes metrics.json, metrics.md, ranks."""
    num_items = feature_spec.vocab_sizes(examples_uri)
    train_rows = data.read_split(examples_uri, "train")
    scorers = {cfg.model.kind: savedmodel_scorer(model_dir)}
    if cfg.model.kind != "popularity":  # the reference every model is shown beside
        scorers["popularity"] = evaluation.popularity_scorer(evaluation.item_popularity(train_rows, num_items))
    k = cfg.eval.k
    names = feature_spec.read_domain_names(examples_uri)
    report = {"k": k, "num_negatives": cfg.eval.num_negatives, "seed": cfg.eval.seed, "domain_names": list(names),
              "splits": {}}
    tables = []
    tf.io.gfile.makedirs(out_dir)
    for split in splits:
        rows = data.read_split(examples_uri, split)
        negatives = metrics.candidate_matrix(rows, num_items, cfg.eval.num_negatives, cfg.eval.seed)
        leaked = leak_touched(examples_uri, rows)
        report["splits"][split] = {}
        report.setdefault("rows_leak_touched", {})[split] = int(leaked.sum())
        per_row = {}
        for name, scorer in scorers.items():
            result = evaluation.evaluate_rows(scorer, rows, negatives, cfg.data.max_len, cfg.data.pseudo_len,
                                              sorted(set(cfg.eval.ks) | {k}), extra_groups={"leak_touched": leaked})
            per_row[name] = result.pop("ranks")
            report["splits"][split][name] = result
            logger.info(f"[evaluate] {split}: {name} mean NDCG@{k} {100 * _mean_ndcg(result, k, 'full'):.2f} (full "
                  f"ranking), {100 * _mean_ndcg(result, k, 'sampled'):.2f} (sampled)")
        for protocol in ("full", "sampled"):
            label = f"{cfg.eval.num_negatives} sampled negatives" if protocol == "sampled" else "full ranking"
            tables.append(metrics.format_table({m: report["splits"][split][m][protocol] for m in scorers}, k,
                                               f"{split} split, {label}",
                                               [feature_spec.display_name(n) for n in names]))
        with tf.io.gfile.GFile(os.path.join(out_dir, f"ranks_{split}.csv"), "w") as f:
            f.write("user_id,target_domain,target_item,is_cold_start,is_long_tailed,leak_touched,"
                    + ",".join(f"{m}_{p}_rank" for m in scorers for p in ("sampled", "full")) + "\n")
            for i, r in enumerate(rows):
                ranks = [str(per_row[m][p][i]) for m in scorers for p in ("sampled", "full")]
                f.write(f"{r[feature_spec.USER_ID]},{r[feature_spec.TARGET_DOMAIN]},{r[feature_spec.TARGET_ITEM]},"
                        f"{r[feature_spec.IS_COLD_START]},{r[feature_spec.IS_LONG_TAILED]},{int(leaked[i])},"
                        + ",".join(ranks) + "\n")
    with tf.io.gfile.GFile(os.path.join(out_dir, "metrics.json"), "w") as f:
        json.dump(report, f, indent=2)
    with tf.io.gfile.GFile(os.path.join(out_dir, "metrics.md"), "w") as f:
        f.write("\n\n".join(tables) + "\n")
    return report


def is_blessed(report: dict, cfg) -> bool:
    """Blessed when validation NDCG@K beats the baseline (or, with no baseline, is finite and > 0)."""
    val = report["splits"].get("eval") or next(iter(report["splits"].values()))
    ours = _mean_ndcg(val[cfg.model.kind], cfg.eval.k, cfg.eval.select_on)
    if cfg.eval.bless_against == "none":
        return bool(np.isfinite(ours) and ours > 0)
    if cfg.eval.bless_against not in val:
        raise ValueError(f"eval.bless_against={cfg.eval.bless_against!r} is not an evaluated model")
    return bool(ours > _mean_ndcg(val[cfg.eval.bless_against], cfg.eval.k, cfg.eval.select_on))


def evaluate_and_bless(examples_uri: str, split_names: str, model_uri: str, out_dir: str, config_json: str) -> bool:
    """Evaluates the Model artifact's SavedModel on every split of the Examples artifact but train,
    writes the report to `out_dir`, and returns whether the model is blessed. `split_names` is the
    artifact's encoded split names; `config_json` is the PipelineConfig JSON."""
    cfg = config.from_dict(json.loads(config_json))
    splits = [s for s in artifact_utils.decode_split_names(split_names) if s != "train"]
    report = evaluate_model(examples_uri, path_utils.serving_model_path(model_uri), splits, cfg, out_dir)
    blessed = is_blessed(report, cfg)
    logger.info(f"[evaluate] model {'BLESSED' if blessed else 'NOT blessed'} "
                f"(validation NDCG@{cfg.eval.k} vs {cfg.eval.bless_against})")
    return blessed
