"""Training: `train_model` (plain Python, no TFX) and the Trainer's `run_fn`.

`model.kind` picks i2VAE or a baseline; all share the validation, export and evaluation.
The run_fn is the only place TFX touches the model code: it turns FnArgs into paths and
the pipeline config, then calls `train_model` and the exporter.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from typing import Dict, List

import numpy as np
import tensorflow as tf

from models import (
    baselines,
    config,
    data,
    evaluation,
    export,
    feature_spec,
    lightgcn,
    metrics,
    psg,
    retrieval,
    warm_start,
)
from models.backup import EpochBackup, code_fingerprint, remove_backup
from models.callbacks import KLAnnealing, NonFiniteLossError, PosteriorHistograms, StopOnNonFiniteLoss
from models.i2vae import I2VAE
from models.loss_terms_model import LossTermsModel

logger = logging.getLogger(__name__)


class RankingValidation(tf.keras.callbacks.Callback):
    """Per-epoch validation HR/NDCG (`eval.select_on`: full ranking by default), early stopping
    on the mean NDCG@K of both domains, best weights restored at the end. Logs every figure
    to TensorBoard.

    With `selection="per_domain"` each domain keeps the weights of its own best epoch
    (`best_weights_by_domain`; the model ends with domain X's) and training stops once
    neither domain has improved for `patience` epochs; `best` is then the mean of the two
    domains' best validation NDCG@K, the score of the combined model.

    With `test_rows`, the test split is also scored every epoch and kept in the history
    under `test_metrics`, only so the paper's protocol (best test value over epochs) can be
    reported beside ours; it never influences selection or stopping.
    """

    def __init__(self, rows, num_items, data_cfg, eval_cfg, patience, log_dir=None, total_epochs=None,
                 test_rows=None, selection="mean", domain_names=("x", "y"), early_stopping_start=0):
        super().__init__()
        self.early_stopping_start = early_stopping_start  # patience counts later epochs only
        self.domain_names = tuple(domain_names)  # TensorBoard tags and progress lines name the domains
        self.data_cfg, self.eval_cfg, self.patience, self.selection = data_cfg, eval_cfg, patience, selection
        self.ks = sorted(set(eval_cfg.ks) | {eval_cfg.k})
        self.sets = {"val": rows}
        if test_rows:
            self.sets["test"] = test_rows
        self.negatives = {name: metrics.candidate_matrix(r, num_items, eval_cfg.num_negatives, eval_cfg.seed)
                          for name, r in self.sets.items()}
        self.writer = tf.summary.create_file_writer(os.path.join(log_dir, "validation")) if log_dir else None
        self.best, self.best_epoch, self.best_weights, self.wait, self.untrained = -1.0, 0, None, 0, math.nan
        self.best_by_domain = {d: -1.0 for d in metrics.DOMAINS}
        self.best_epoch_by_domain = {d: 0 for d in metrics.DOMAINS}
        self.best_weights_by_domain = {d: None for d in metrics.DOMAINS}
        self.history: List[Dict] = []
        self.resumed_at: List[int] = []  # epochs a backup was resumed from (models/backup.py)
        self.seconds_before = 0.0  # training time before the last resume
        self.total_epochs, self.start = total_epochs, time.time()

    def set_model(self, model):
        super().set_model(model)
        self.scorer = evaluation.keras_scorer(model)

    def _evaluate(self, name):
        # validation on the selection protocol (full ranking by default: what serving returns);
        # the tracked test split on the paper's sampled protocol, for its best-over-epochs figure
        return evaluation.evaluate_rows(self.scorer, self.sets[name], self.negatives[name], self.data_cfg.max_len,
                                        self.data_cfg.pseudo_len, self.ks)[
            self.eval_cfg.select_on if name == "val" else "sampled"]

    def score(self):
        """(validation metrics, the selection score) of the model as it is now, recorded nowhere."""
        result = self._evaluate("val")
        return result, float(np.nanmean([result[d]["all"][f"NDCG@{self.eval_cfg.k}"] for d in metrics.DOMAINS]))

    def _validate(self, step, loss):
        k = self.eval_cfg.k
        result, ndcg = self.score()
        results = {"val": result, **{name: self._evaluate(name) for name in self.sets if name != "val"}}
        # seconds: training time so far (resumes included), so a run's time to reach a score is known
        entry = {"epoch": step, "loss": loss, "val_ndcg": ndcg, "metrics": result,
                 "seconds": round(self.seconds_before + time.time() - self.start, 1)}
        if "test" in results:
            entry["test_metrics"] = results["test"]
        self.history.append(entry)
        if self.writer:
            with self.writer.as_default():
                for name, res in results.items():
                    for d, domain_name in zip(metrics.DOMAINS, self.domain_names):
                        for g in metrics.GROUPS:
                            for m in (f"HR@{k}", f"NDCG@{k}"):
                                tf.summary.scalar(f"{name}/{m}/{domain_name}/{g}", res[d][g][m], step=step)
            self.writer.flush()
        return result, ndcg

    def on_train_begin(self, logs=None):
        """Epoch 0: the untrained model, the reference every trained epoch must beat
        (already in the history when a backup was restored)."""
        if self.history:
            return
        result, self.untrained = self._validate(0, math.nan)
        k = self.eval_cfg.k
        logger.info(f"[train] untrained: val NDCG@{k} {self._per_domain_text(result)}")

    def on_epoch_end(self, epoch, logs=None):
        k = self.eval_cfg.k
        result, ndcg = self._validate(epoch + 1, float((logs or {}).get("loss", math.nan)))
        if self.selection == "per_domain":
            improved = self._per_domain(epoch + 1, result)
        else:
            improved = ndcg > self.best
            if improved:
                self.best, self.best_epoch = ndcg, epoch + 1
                self.best_weights = self.model.get_weights()
        # patience: reset by a gain, counting only the epochs after `early_stopping_start`
        if improved:
            self.wait = 0
        elif epoch + 1 > self.early_stopping_start:
            self.wait += 1
        elapsed = time.time() - self.start
        eta = ""
        if self.total_epochs:
            done = epoch + 1 - (self.resumed_at[-1] if self.resumed_at else 0)  # epochs timed in this process
            eta = f", at most {elapsed / done * (self.total_epochs - epoch - 1):.0f}s left"
        logger.info(f"[train] epoch {epoch + 1}: loss {self.history[-1]['loss']:.4f} val NDCG@{k} "
              f"{self._per_domain_text(result)}{' (best)' if improved else ''} [{elapsed:.0f}s{eta}]")
        if self.wait >= self.patience:
            logger.info(f"[train] early stop: no gain for {self.patience} epochs (counted after epoch "
                        f"{self.early_stopping_start}); best epoch {self.selected()}")
            self.model.stop_training = True

    def _per_domain_text(self, result) -> str:
        k = self.eval_cfg.k
        return " ".join(f"{feature_spec.display_name(name)} {100 * result[d]['all'][f'NDCG@{k}']:.2f}"
                        for d, name in zip(metrics.DOMAINS, self.domain_names))

    def selected(self) -> str:
        """The selected epoch, or each domain's ("X 8, Y 12") under per-domain selection."""
        if self.selection != "per_domain":
            return str(self.best_epoch)
        return ", ".join(f"{d.upper()} {self.best_epoch_by_domain[d]}" for d in metrics.DOMAINS)

    def _per_domain(self, epoch, result) -> bool:
        """Keeps each domain's best epoch and weights; True when either domain improved."""
        k, improved, weights = self.eval_cfg.k, False, None
        for d in metrics.DOMAINS:
            value = result[d]["all"][f"NDCG@{k}"]
            if value > self.best_by_domain[d]:
                weights = weights if weights is not None else self.model.get_weights()
                self.best_by_domain[d], self.best_epoch_by_domain[d] = float(value), epoch
                self.best_weights_by_domain[d], improved = weights, True
        found = [v for v in self.best_by_domain.values() if v >= 0]  # a domain without validation rows has none
        self.best = float(np.mean(found)) if found else -1.0
        self.best_epoch = max(self.best_epoch_by_domain.values())
        first = self.best_weights_by_domain[metrics.DOMAINS[0]]
        self.best_weights = first if first is not None else self.best_weights_by_domain[metrics.DOMAINS[1]]
        return improved

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)


class PerDomainSelection:
    """Two trained copies of one model, each domain scored by the copy of its own best
    validation epoch (`train.epoch_selection="per_domain"`).

    It has what the exporter needs (`score_all`, `query_embeddings`, `item_tables`,
    `variables`), so the SavedModel holds both weight sets behind the usual signatures and
    serving needs nothing new.
    """

    def __init__(self, model_x, model_y):
        self.model_x, self.model_y = model_x, model_y

    @property
    def variables(self):
        return list(self.model_x.variables) + list(self.model_y.variables)

    def score_all(self, features):
        return self.model_x.score_all(features)[0], self.model_y.score_all(features)[1]

    def query_embeddings(self, features):
        return self.model_x.query_embeddings(features)[0], self.model_y.query_embeddings(features)[1]

    def item_tables(self):
        return self.model_x.item_tables()[0], self.model_y.item_tables()[1]


def calibrate(variable: tf.Variable, validation: RankingValidation, grid: List[float], what: str) -> Dict:
    """Sets an inference weight of the trained model (`variable`) to the value of `grid` with
    the best validation score, a tie keeping the earlier listed. Run on the selected epoch's
    weights, after early stopping chose them."""
    scores = {}
    for weight in grid:
        variable.assign(weight)
        scores[weight] = validation.score()[1]
    best = grid[0]
    for weight in grid[1:]:
        if scores[weight] > scores[best]:
            best = weight
    variable.assign(best)
    k = validation.eval_cfg.k
    logger.info(f"[train] {what} {best} chosen on validation (NDCG@{k}: "
                + ", ".join(f"{w} {100 * v:.2f}" for w, v in scores.items()) + ")")
    return {"selected": best, "val_ndcg": {str(w): v for w, v in scores.items()}}


def calibrate_graph_blend(model: I2VAE, validation: RankingValidation, grid: List[float], examples_root: str) -> Dict:
    """Attaches the pseudo-sequence generator's graph to the trained i2VAE and chooses its
    weight on validation (`train.graph_blend_grid`, models/graph_blend.py); weight 0 chosen:
    detached, so the export scores with the model alone."""
    model.attach_graph_blend(psg.graph_item_embeddings(examples_root))
    validation.set_model(model)  # a new scorer: the blended queries are another graph
    chosen = calibrate(model.graph_weight, validation, grid, "generator graph weight")
    if chosen["selected"] == 0:
        model.detach_graph_blend()
        validation.set_model(model)
    return chosen


def per_domain_model(model, validation: RankingValidation, build, features):
    """`model` (holding domain X's best weights) alone when both domains chose the same
    epoch, else a `PerDomainSelection` with a second copy from `build()` set to domain Y's."""
    weights_y = validation.best_weights_by_domain[metrics.DOMAINS[1]]
    if weights_y is None or weights_y is validation.best_weights:
        return model
    model_y = build()
    model_y.score_all(features)  # creates the variables, in the same order as `model`'s
    model_y.set_weights(weights_y)
    return PerDomainSelection(model, model_y)


def make_strategy(name: str, devices=None) -> tf.distribute.Strategy:
    """The tf.distribute strategy `train.distribute` names (`devices` for MirroredStrategy)."""
    config.check_choice("train.distribute", name, config.DISTRIBUTE_STRATEGIES)
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def build_model(num_items, cfg, popularity=None):
    """The model `cfg.model.kind` names: i2VAE or a baseline (`models.baselines`).

    popularity (train counts per domain) is the SASRec no-history fallback and the
    popularity baseline.
    """
    tf.keras.utils.set_random_seed(cfg.train.seed)
    kind = cfg.model.kind
    sampled = retrieval.domain_losses(num_items, popularity, cfg.train)  # None per domain: the full softmax
    if kind == "i2vae":
        model = I2VAE(num_items[0], num_items[1], cfg.model, cfg.train, cfg.data.max_len, cfg.data.pseudo_len,
                      sampled)
    elif kind == "sasrec":
        model = baselines.SASRec(num_items[0], num_items[1], cfg.model, popularity, cfg.data.max_len, sampled)
    elif kind == "lightgcn":  # its embeddings are trained by `train_lightgcn_recommender`
        model = baselines.LightGCNRanker(*(np.zeros((n + 1, cfg.lightgcn.embedding_dim), np.float32)
                                           for n in num_items))
    elif kind == "popularity":
        model = baselines.PopularityRanker(popularity)
    else:
        raise ValueError(f"model.kind must be one of {config.MODEL_KINDS}, found {kind!r}")
    # a large catalogue's embedding rows are updated only in the steps that gather them
    adam = retrieval.LazyAdam if any(s is not None for s in sampled) else tf.keras.optimizers.Adam
    model.compile(optimizer=adam(cfg.train.learning_rate), jit_compile=cfg.train.jit_compile)
    return model


def _content_key(row: Dict):
    return tuple((name, tuple(v) if isinstance(v, list) else v) for name, v in sorted(row.items()))


def read_canonical(files: List[str]):
    """(serialized examples, parsed rows) of TFRecord files, sorted by content.

    Why: Beam writes rows to shards in whatever order its workers happen to run, so each
    pipeline run hands the Trainer the same rows in another file order (measured: same
    rows, different order between two runs of the same command), and a seeded shuffle of
    another order is another batch sequence, hence another model. Sorting first makes
    training a function of the data and `train.seed` only. (The sort is also applied to
    validation rows, so even float sums over them do not depend on the shard order.)
    """
    records = list(tf.data.TFRecordDataset(data.expand(files), compression_type="GZIP").as_numpy_iterator())
    rows = [feature_spec.from_example(r) for r in records]
    order = sorted(range(len(rows)), key=lambda i: _content_key(rows[i]))
    return [records[i] for i in order], [rows[i] for i in order]


def streams(train_files: List[str], cfg) -> bool:
    """Whether the train split streams from its files (`train.stream_above_mb`) instead of
    being read into memory in canonical order. Streaming keeps memory flat as the split
    grows; the in-memory read keeps exact repeatability across Beam's shard orders."""
    if cfg.train.stream_above_mb <= 0:
        return False
    size = sum(tf.io.gfile.stat(f).length for f in data.expand(train_files))
    if size <= cfg.train.stream_above_mb * 2 ** 20:
        return False
    if cfg.train.prefix_targets > 0 or cfg.train.cold_start_rows:
        raise config.ConfigError(f"train.prefix_targets and train.cold_start_rows add rows in memory, but the train "
                                 f"split ({size / 2 ** 20:.0f} MB) is above train.stream_above_mb="
                                 f"{cfg.train.stream_above_mb} and streams; turn them off or raise the threshold")
    return True


def _counted(rows, counter: List[int]):
    for row in rows:
        counter[0] += 1
        yield row


def streamed_train_split(train_files: List[str], cfg, num_items):
    """The train split as it streams (above `train.stream_above_mb`): one lazy pass counts
    the rows and the item popularity, then tf.data reads the files through the seeded
    shuffle buffer; nothing of the split is held. Returns (dataset, popularity, rows)."""
    num_rows = [0]
    popularity = evaluation.item_popularity(_counted(data.read_rows_lazily(data.expand(train_files)), num_rows),
                                            num_items)
    train_ds = data.make_dataset(train_files, cfg.train.batch_size, cfg.data.max_len, cfg.data.pseudo_len,
                                 shuffle=True, seed=cfg.train.seed, cache=False, trim_padding=cfg.train.trim_padding,
                                 shuffle_buffer=cfg.train.shuffle_buffer)
    return train_ds, popularity, num_rows[0]


def training_dataset(records: List[bytes], cfg) -> tf.data.Dataset:
    """`data.make_dataset`'s training pipeline over in-memory examples in canonical order:
    seeded shuffle of all rows (reshuffled each epoch), batch, parse, trim, prefetch."""
    ds = tf.data.Dataset.from_tensor_slices(tf.constant(records, tf.string))
    ds = ds.shuffle(max(1, len(records)), seed=cfg.train.seed, reshuffle_each_iteration=True)
    return data.batch_and_parse(ds, cfg.train.batch_size, cfg.data.max_len, cfg.data.pseudo_len, cfg.train.trim_padding)


def epoch_backup(cfg, validation: RankingValidation, train_rows: int) -> EpochBackup:
    """The `train.backup_dir` backup of this run: its identity is the whole config but the
    folder, and the number of train rows (the same config on other data must not resume)."""
    identity = config.to_dict(cfg)
    identity["train"].pop("backup_dir")
    identity["train_rows"] = train_rows
    identity["code"] = code_fingerprint()  # a backup of other model code must not resume
    return EpochBackup(cfg.train.backup_dir, validation, identity)


def train_model(train_files: List[str], eval_files: List[str], examples_root: str, cfg, log_dir: str,
                base_model_uri: str = ""):
    """Builds `cfg.model.kind` and, for the trainable ones (i2VAE, SASRec), trains it with
    early stopping on validation NDCG, from the weights of `base_model_uri` (a Model
    artifact's uri: the served model) when `train.warm_start` and its bundle fit. Returns
    (model, validation history, popularity)."""
    # first: MultiWorkerMirroredStrategy configures collective ops, which must happen before any TF op runs
    strategy = make_strategy(cfg.train.distribute)
    num_items = feature_spec.vocab_sizes(examples_root)
    streaming = streams(train_files, cfg)
    if streaming:
        train_ds, popularity, num_train_rows = streamed_train_split(train_files, cfg, num_items)
        logger.info(f"[train] the train split streams from its TFRecords ({num_train_rows} rows, shuffle buffer "
                    f"{cfg.train.shuffle_buffer}): larger than train.stream_above_mb={cfg.train.stream_above_mb}")
    else:
        train_records, train_rows = read_canonical(train_files)
        num_train_rows = len(train_rows)
        popularity = evaluation.item_popularity(train_rows, num_items)
    with strategy.scope():
        model = build_model(num_items, cfg, popularity)
    if strategy.num_replicas_in_sync > 1:
        logger.info(f"[train] {type(strategy).__name__} over {strategy.num_replicas_in_sync} replicas")
    if not isinstance(model, (LossTermsModel, baselines.LightGCNRanker)):
        logger.info(f"[train] {cfg.model.kind}: nothing to train (fixed scores)")
        return model, {"best_epoch": 0, "best_val_ndcg": None, "epochs_run": 0, "history": []}, popularity
    warm = None
    if cfg.train.warm_start and warm_start.has_bundle(base_model_uri):
        if isinstance(model, LossTermsModel):
            probe = (train_ds if streaming else training_dataset(train_records[:2], cfg)).take(1).get_single_element()
            with strategy.scope():
                model.losses_and_terms(probe)  # creates every variable the bundle fills
            warm = warm_start.warm_start_model(model, cfg, examples_root, base_model_uri)
        else:
            logger.info(f"[train] not warm-started: {cfg.model.kind} trains from scratch")
    # a warm-started model starts trained: stopping counts from its first epoch
    patience, stop_start = ((cfg.train.warm_start_patience, 0) if warm else
                            (cfg.train.early_stopping_patience, cfg.train.early_stopping_start))
    validation = RankingValidation(read_canonical(eval_files)[1], num_items, cfg.data, cfg.eval,
                                   patience, log_dir, cfg.train.epochs,
                                   read_canonical([feature_spec.split_pattern(examples_root, "test")])[1]
                                   if cfg.eval.track_test_per_epoch else None, cfg.train.epoch_selection,
                                   feature_spec.read_domain_names(examples_root), stop_start)
    eval_rows = validation.sets["val"]
    if isinstance(model, baselines.LightGCNRanker):
        rows = list(data.read_rows_lazily(data.expand(train_files))) if streaming else train_rows
        return model, train_lightgcn_recommender(model, rows, validation, num_items, cfg, log_dir), popularity
    if streaming:
        probe = train_ds.take(1).get_single_element() if cfg.train.backup_dir else None
    elif cfg.train.prefix_targets > 0:
        extra = data.prefix_target_rows(train_rows, cfg.data.max_len, cfg.train.prefix_targets)
        train_records = train_records + [feature_spec.to_example(r) for r in extra]
        logger.info(f"[train] prefix targets: {len(extra)} extra rows from {len(train_rows)} train rows "
              f"(up to {cfg.train.prefix_targets} per row)")
    if cfg.train.cold_start_rows:
        extra = data.cold_start_rows(train_rows, cfg.data.max_len)
        train_records = train_records + [feature_spec.to_example(r) for r in extra]
        logger.info(f"[train] cold-start rows: {len(extra)} extra rows without target-domain history "
              f"from {len(train_rows)} train rows")
    if not streaming:
        train_ds = training_dataset(train_records, cfg)
        probe = training_dataset(train_records[:2], cfg).take(1).get_single_element() if cfg.train.backup_dir else None
        del train_records
    callbacks = training_callbacks(model, cfg, validation, eval_rows, num_train_rows, log_dir)
    logger.info(f"[train] {cfg.model.kind} on {num_items[0]}+{num_items[1]} items, up to {cfg.train.epochs} epochs, "
          f"batch {cfg.train.batch_size}, d={cfg.model.embedding_dim}, T={cfg.data.max_len}, T'={cfg.data.pseudo_len}")
    initial_epoch = 0
    if cfg.train.backup_dir:
        backup = epoch_backup(cfg, validation, num_train_rows)
        callbacks.append(backup)  # after `validation`: saves the epoch's result with it
        backup.set_model(model)
        state = backup.restore(probe)
        if state:
            initial_epoch = cfg.train.epochs if state["stopped"] else state["epoch"]
            for _ in range(min(initial_epoch, cfg.train.epochs)):
                iter(train_ds)  # each iterator draws the next shuffle order: the coming epochs keep theirs
    try:
        model.fit(train_ds, epochs=cfg.train.epochs, initial_epoch=initial_epoch, callbacks=callbacks, verbose=0)
    except NonFiniteLossError as e:  # the run fails: nothing is exported, evaluated or pushed
        logger.info(f"[train] {e}")
        raise
    history = {"best_epoch": validation.best_epoch, "best_val_ndcg": validation.best,
               "untrained_val_ndcg": validation.untrained, "epochs_run": len(validation.history) - 1,
               "history": validation.history}
    if warm:
        history["warm_start"] = {"from": base_model_uri, **warm}
    if validation.resumed_at:
        history["resumed_at"] = list(validation.resumed_at)
        history["seconds_before_resume"] = round(validation.seconds_before, 1)
    def build():
        with strategy.scope():
            return build_model(num_items, cfg, popularity)

    return after_training(model, validation, history, cfg, build, eval_rows, examples_root), history, popularity


def train_lightgcn_recommender(ranker, train_rows, validation: RankingValidation, num_items, cfg, log_dir: str):
    """LightGCN as a recommender: BPR on every train interaction of both domains (the
    generator's graph holds each train row's target out; a recommender has no reason to),
    at `cfg.lightgcn`'s size and budget with `train.seed`, stopped and selected on the
    criterion every model shares (mean validation NDCG@K). `ranker` ends with the best
    epoch's item embeddings and scores fold-in users, as serving sees them (histories only).
    Returns the training history in the trainer's form."""
    graph = lightgcn.Graph(train_rows, num_items[0], num_items[1], hold_out_targets=False)
    lightgcn_cfg = dataclasses.replace(cfg.lightgcn, seed=cfg.train.seed)
    logger.info(f"[train] lightgcn recommender: {graph.num_users} users, {num_items[0]}+{num_items[1]} items, "
                f"{len(graph.users)} edges, d={lightgcn_cfg.embedding_dim}, {lightgcn_cfg.num_layers} layers, "
                f"l2 {lightgcn_cfg.l2_reg}, up to {lightgcn_cfg.max_epochs} epochs")
    tf.random.set_seed(lightgcn_cfg.seed)
    model = lightgcn.LightGCN(graph.num_users, sum(num_items),
                              lightgcn.normalized_adjacency(graph.num_users, sum(num_items), graph.users, graph.items),
                              lightgcn_cfg.embedding_dim, lightgcn_cfg.num_layers, lightgcn_cfg.l2_reg, lightgcn_cfg.seed)
    validation.set_model(ranker)
    scores = []

    def validate(m):
        item_emb = lightgcn.padded_item_embeddings(m.propagate()[1].numpy(), num_items[0])
        ranker.item_emb_x.assign(item_emb[0])
        ranker.item_emb_y.assign(item_emb[1])
        result, ndcg = validation.score()
        scores.append({"metrics": result, "val_ndcg": ndcg})
        return ndcg

    trained = lightgcn.train_lightgcn(model, graph.users, graph.items, graph.item_ranges, lightgcn_cfg, validate,
                                      os.path.join(log_dir, "lightgcn"), metric=f"NDCG@{cfg.eval.k}")
    validate(model)  # the ranker takes the best epoch's embeddings, which `train_lightgcn` restored
    history = [{"epoch": epoch, "loss": trained["loss"][epoch - 1], **score}
               for (epoch, _), score in zip(trained["validation"], scores)]
    return {"best_epoch": trained["best_epoch"], "best_val_ndcg": trained["best_validation"],
            "epochs_run": trained["epochs"], "history": history, "seconds": round(trained["seconds"], 1)}


def training_callbacks(model, cfg, validation, eval_rows, num_train_rows: int, log_dir: str) -> List:
    """The NaN stop first (so a NaN batch stops training before any other callback sees its
    logs), KL annealing, TensorBoard, validation, the i2VAE's posterior histograms."""
    callbacks = [StopOnNonFiniteLoss(), tf.keras.callbacks.TensorBoard(log_dir=log_dir, histogram_freq=0), validation]
    if isinstance(model, I2VAE):
        callbacks.append(PosteriorHistograms(evaluation.features_from_rows(eval_rows[:512], cfg.data.max_len,
                                                                           cfg.data.pseudo_len),
                                             os.path.join(log_dir, "posterior")))
    if cfg.model.kind == "i2vae" and cfg.train.kl_anneal_epochs > 0:  # the warm-up is set in steps
        steps = int(cfg.train.kl_anneal_epochs * math.ceil(num_train_rows / cfg.train.batch_size))
        callbacks.insert(1, KLAnnealing(cfg.train.kl_weight, steps))
    return callbacks


def after_training(model, validation, history: Dict, cfg, build, eval_rows, examples_root: str):
    """What selection does once training stopped: the decoder's inference weight on
    validation (`train.decoder_weight_grid`), then the generator graph's
    (`train.graph_blend_grid`), or, with `train.epoch_selection="per_domain"`, a second copy
    (`build()`) so each domain scores with its own best epoch. Records them in `history`;
    returns the model to export."""
    if len(cfg.train.decoder_weight_grid) > 1:
        if not (isinstance(model, I2VAE) and cfg.model.residual_state):  # the weight would scale a row's scores alike
            logger.info("[train] train.decoder_weight_grid is ignored: it weighs the decoder's part against "
                        "the residual state, which only the i2VAE with model.residual_state=true has")
        elif cfg.train.epoch_selection == "per_domain":  # two weight sets, each from its own epoch
            logger.info("[train] train.decoder_weight_grid is ignored under train.epoch_selection=\"per_domain\": "
                        "each domain keeps its epoch's weights, at decoder weight 1")
        else:
            history["decoder_weight"] = calibrate(model.decoder_weight, validation, cfg.train.decoder_weight_grid,
                                                  "decoder weight")
    if cfg.train.graph_blend_grid != [0.0] and isinstance(model, I2VAE):  # the baselines have no generator graph
        why = ("each domain keeps its own epoch's copy" if cfg.train.epoch_selection == "per_domain" else
               "lightgcn.pseudo_source is not the graph" if cfg.lightgcn.pseudo_source != "lightgcn" else "")
        if why:
            logger.info(f"[train] train.graph_blend_grid is ignored: {why}")
        else:
            history["graph_blend"] = calibrate_graph_blend(model, validation, cfg.train.graph_blend_grid,
                                                           examples_root)
    if cfg.train.epoch_selection != "per_domain":
        return model
    history["best_epochs"] = dict(validation.best_epoch_by_domain)
    logger.info(f"[train] per-domain selection: epoch {validation.selected()}")
    return per_domain_model(model, validation, build,
                            evaluation.features_from_rows(eval_rows[:2], cfg.data.max_len, cfg.data.pseudo_len))


def apply_overrides(cfg, overrides):
    """Applies the TrainingOverrides artifact ({"train.epochs": 5, ...}) over the config."""
    if not overrides:
        return cfg
    values = config.to_dict(cfg)
    for key, value in overrides.items():
        config.apply_override(values, f"{key}={json.dumps(value)}")
    return config.from_dict(values)


def run_fn(fn_args) -> None:
    """TFX Trainer entry point: `custom_config['config']` holds the PipelineConfig JSON.

    Everything is written into this execution's own output URIs (model_run, model), never
    to a fixed place: a run killed here leaves only unpublished directories that TFX never
    registers, and the re-run trains into new ones. `training_history.json` is written
    last and atomically, so its presence means the SavedModel is complete (local_runner
    and `reproduce` find the newest run by that file).
    """
    cfg = apply_overrides(config.from_dict(json.loads(fn_args.custom_config["config"])), fn_args.hyperparameters)
    examples_root = os.path.dirname(os.path.dirname(data.expand(fn_args.train_files)[0]))
    config.write_config(cfg, fn_args.model_run_dir)
    # the Resolver's served model: TFX gives its SavedModel path, the bundle sits beside it
    base_model_uri = os.path.dirname(fn_args.base_model.rstrip("/")) if fn_args.base_model else ""
    model, history, popularity = train_model(fn_args.train_files, fn_args.eval_files, examples_root, cfg,
                                             fn_args.model_run_dir, base_model_uri)
    export.export_saved_model(model, examples_root, popularity, cfg, fn_args.serving_model_dir)
    warm_start.save_bundle(model, cfg, examples_root, os.path.dirname(fn_args.serving_model_dir.rstrip("/")))
    logger.info(f"[train] SavedModel written to {fn_args.serving_model_dir}")
    data.write_json_atomically(os.path.join(fn_args.model_run_dir, "training_history.json"), history, indent=2)
    if cfg.train.backup_dir:  # the run's outputs are complete: its epoch backup is spent
        remove_backup(cfg.train.backup_dir)
