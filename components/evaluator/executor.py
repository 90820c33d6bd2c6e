"""What RankingEvaluator runs: HR@K / NDCG@K / MRR of the exported model (i2VAE or the baseline
`model.kind` names) and of the popularity baseline.

It scores the eval and test splits through the SavedModel's `score_items` signature
(what is served is what is measured), ranks each target against 999 sampled negatives
drawn from a fixed seed (the paper's protocol) and against all unseen items (full
ranking), per domain and user group. With the served model (the pipeline's Resolver) it
scores that model too, on the same rows (mapped to its vocabulary by raw item id,
`models.evaluation.vocabulary_mapped_scorer`), and shows both side by side. It blesses
the candidate when it passed the serving check, its validation NDCG@K (mean of both
domains, all users) beats the configured baseline (popularity), and it is at least the
served model's minus `eval.max_regression`; test figures are reported, never used for
the decision.
"""
import json
import logging
import os

import numpy as np
import tensorflow as tf
from tfx.types import artifact_utils
from tfx.utils import path_utils

from models import config, data, evaluation, feature_spec, metrics, warm_start

logger = logging.getLogger(__name__)

SERVED = "served"  # the served model's column in the report, the tables and ranks_<split>.csv
VERDICT_FILE = "verdict.json"  # blessed or not, and the one line that says why (`i2vae run` prints it)


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


def served_model_scorer(base_model_uri: str, examples_uri: str, kind: str):
    """The served model (a Model artifact's uri) as a scorer of this run's rows, or None when
    its artifact has no vocabularies to map the rows by (written before warm start existed)
    or it is another kind of model (served under its own name, so not the one replaced)."""
    if not warm_start.has_bundle(base_model_uri):
        logger.info(f"[evaluate] the served model {base_model_uri} has no vocabulary bundle: not compared")
        return None
    served_kind = warm_start.model_kind(base_model_uri)
    if served_kind != kind:
        logger.info(f"[evaluate] the latest blessed model is a {served_kind}, served under its own name: "
                    f"this {kind} is not compared with it")
        return None
    return evaluation.vocabulary_mapped_scorer(savedmodel_scorer(path_utils.serving_model_path(base_model_uri)),
                                               warm_start.read_vocabs(base_model_uri),
                                               feature_spec.read_vocabs(examples_uri))


def evaluate_model(examples_uri: str, model_dir: str, splits, cfg, out_dir: str, served_scorer=None) -> dict:
    """Evaluates the SavedModel, popularity and, when given, the served model on `splits`;
    writes metrics.json, metrics.md, ranks."""
    num_items = feature_spec.vocab_sizes(examples_uri)
    train_rows = data.read_split(examples_uri, "train")
    scorers = {cfg.model.kind: savedmodel_scorer(model_dir)}
    if served_scorer is not None:
        scorers[SERVED] = served_scorer
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


def is_blessed(report: dict, cfg) -> tuple:
    """(blessed, one line with the figures): validation NDCG@K must beat `eval.bless_against`
    (with "none": be finite and > 0) and, when the served model was scored, be at least its
    figure minus `eval.max_regression`."""
    val = report["splits"].get("eval") or next(iter(report["splits"].values()))
    k, protocol = cfg.eval.k, cfg.eval.select_on
    ours = _mean_ndcg(val[cfg.model.kind], k, protocol)
    line = f"validation NDCG@{k} {100 * ours:.2f}"
    if cfg.eval.bless_against == "none":
        if not (np.isfinite(ours) and ours > 0):
            return False, line + " is not a positive number"
    else:
        if cfg.eval.bless_against not in val:
            raise ValueError(f"eval.bless_against={cfg.eval.bless_against!r} is not an evaluated model")
        reference = _mean_ndcg(val[cfg.eval.bless_against], k, protocol)
        if not ours > reference:
            return False, line + f" does not beat {cfg.eval.bless_against}'s {100 * reference:.2f}"
        line += f" beats {cfg.eval.bless_against}'s {100 * reference:.2f}"
    if SERVED in val:
        served = _mean_ndcg(val[SERVED], k, protocol)
        compared = f"the served model's {100 * served:.2f} (allowed regression {100 * cfg.eval.max_regression:.2f})"
        if not ours >= served - cfg.eval.max_regression:
            return False, line + f" but is below {compared}"
        line += f" and is not below {compared}"
    return True, line


def evaluate_and_bless(examples_uri: str, split_names: str, model_uri: str, out_dir: str, config_json: str,
                       serving_check=(True, ""), base_model_uri: str = "") -> bool:
    """Evaluates the Model artifact's SavedModel on every split of the Examples artifact but train,
    beside the served model (`base_model_uri`, a Model artifact's uri, when there is one),
    writes the report to `out_dir`, and returns whether the model is blessed. `split_names` is
    the artifact's encoded split names; `config_json` is the PipelineConfig JSON;
    `serving_check` is (passed, message) of the ServingCheck: a model that failed it is not
    evaluated."""
    cfg = config.from_dict(json.loads(config_json))
    passed, message = serving_check
    if not passed:
        line = f"it failed the serving check: {message}"
        logger.info(f"[evaluate] model NOT blessed: {line}; nothing is pushed")
        write_verdict(out_dir, False, line, serving_check_passed=False)
        return False
    splits = [s for s in artifact_utils.decode_split_names(split_names) if s != "train"]
    served = served_model_scorer(base_model_uri, examples_uri, cfg.model.kind) if base_model_uri else None
    report = evaluate_model(examples_uri, path_utils.serving_model_path(model_uri), splits, cfg, out_dir, served)
    blessed, line = is_blessed(report, cfg)
    logger.info(f"[evaluate] model {'BLESSED' if blessed else 'NOT blessed'}: {line}"
                + ("" if blessed else "; nothing is pushed, the served model stays"))
    write_verdict(out_dir, blessed, line, serving_check_passed=True)
    return blessed


def write_verdict(out_dir: str, blessed: bool, reason: str, serving_check_passed: bool) -> None:
    tf.io.gfile.makedirs(out_dir)
    with tf.io.gfile.GFile(os.path.join(out_dir, VERDICT_FILE), "w") as f:
        json.dump({"blessed": blessed, "reason": reason, "serving_check_passed": serving_check_passed}, f, indent=2)
