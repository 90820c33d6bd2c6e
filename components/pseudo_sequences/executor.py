"""PseudoSequenceGen logic: build the train graph, train LightGCN, and add pseudo_x / pseudo_y.

The Beam DoFn `AddPseudoSequences` is module-level so multi-processing and distributed
runners can import it. It loads the generator's arrays once per worker in `setup`.
"""
from __future__ import annotations

import json
import logging
import os
from typing import Dict, List

import apache_beam as beam
import numpy as np
import tensorflow as tf

from models import feature_spec, psg, warm_start
from models.data import read_split
from models.lightgcn import Graph, LightGCN, normalized_adjacency, padded_item_embeddings, train_lightgcn
from models.seeding import stable_fraction

logger = logging.getLogger(__name__)

GENERATOR_DIR = psg.GENERATOR_DIR


def validation_recall(rows: List[Dict], emb_x: np.ndarray, emb_y: np.ndarray, max_len: int, k: int,
                      batch_size: int = 1024) -> float:
    """Recall@k of eval targets for fold-in users, seen items excluded (LightGCN's stopping signal)."""
    if not rows:
        return 0.0
    hits = 0
    for lo in range(0, len(rows), batch_size):
        batch = rows[lo: lo + batch_size]
        hx = psg.left_pad([r[feature_spec.HISTORY_X] for r in batch], max_len)
        hy = psg.left_pad([r[feature_spec.HISTORY_Y] for r in batch], max_len)
        user = psg.fold_in(emb_x, emb_y, hx, hy)
        for d, emb in ((0, emb_x), (1, emb_y)):
            sel = [i for i, r in enumerate(batch) if r[feature_spec.TARGET_DOMAIN] == d]
            if not sel:
                continue
            seen = psg.left_pad([batch[i][feature_spec.HISTORY_X if d == 0 else feature_spec.HISTORY_Y] for i in sel],
                                max(1, max(len(batch[i][feature_spec.HISTORY_X if d == 0 else feature_spec.HISTORY_Y])
                                           for i in sel)))
            top = psg.recall_unseen(tf.gather(user, sel), emb, seen, min(k, emb.shape[0])).numpy()
            targets = np.asarray([batch[i][feature_spec.TARGET_ITEM] for i in sel])[:, None]
            hits += int((top == targets).any(axis=1).sum())
    return hits / len(rows)


def train_generator(train_rows, eval_rows, vocab_x, vocab_y, data_cfg, cfg, out_dir: str,
                    base_model_uri: str = "") -> Dict:
    """Trains LightGCN on the train graph and saves the generator's arrays under out_dir.
    With a `base_model_uri` (the served model, `train.warm_start`) whose bundle has a
    generator, the users and items both graphs know start from its layer-0 rows."""
    num_items_x, num_items_y = len(vocab_x), len(vocab_y)
    graph = Graph(train_rows, num_items_x, num_items_y, hold_out_targets=True)
    logger.info(f"[psg] graph: {graph.num_users} users, {num_items_x}+{num_items_y} items, {len(graph.users)} edges")
    tf.random.set_seed(cfg.seed)
    adjacency = normalized_adjacency(graph.num_users, num_items_x + num_items_y, graph.users, graph.items)
    model = LightGCN(graph.num_users, num_items_x + num_items_y, adjacency, cfg.embedding_dim, cfg.num_layers,
                     cfg.l2_reg, cfg.seed)
    warm = warm_start.has_bundle(base_model_uri) and warm_start.warm_start_lightgcn(
        model.embeddings.numpy(), list(graph.user_index), vocab_x, vocab_y, base_model_uri)
    if warm:
        model.embeddings.assign(warm[0])

    def validate(m):
        _, item_emb = m.propagate()
        ex, ey = padded_item_embeddings(item_emb.numpy(), num_items_x)
        return validation_recall(eval_rows, ex, ey, data_cfg.max_len, cfg.recall_k)

    history = train_lightgcn(model, graph.users, graph.items, graph.item_ranges, cfg, validate,
                             log_dir=os.path.join(out_dir, "logs"))
    user_emb, item_emb = (t.numpy() for t in model.propagate())
    emb_x, emb_y = padded_item_embeddings(item_emb, num_items_x)
    psg.save_generator(out_dir, emb_x, emb_y, list(graph.user_index), graph.neighbours(), user_emb,
                       model.embeddings.numpy())
    if warm:
        history["warm_start"] = {"from": base_model_uri, **warm[1]}
    return history


def save_untrained_generator(out_dir: str, num_items_x: int, num_items_y: int, dim: int) -> None:
    """Zero item embeddings and no graph users: what the random-pseudo ablation ships."""
    zeros = np.zeros((0, dim), np.float32)
    psg.save_generator(out_dir, np.zeros((num_items_x + 1, dim), np.float32),
                       np.zeros((num_items_y + 1, dim), np.float32), [], [], zeros)


class AddPseudoSequences(beam.DoFn):
    """Adds pseudo_x / pseudo_y to a batch of serialized examples (`add_pseudo`)."""

    def __init__(self, generator_dir: str, max_len: int, pseudo_len: int, source: str, seed: int,
                 approximate_above_items: int, approximate_nprobe: int, approximate_nlist: int):
        self.generator_dir, self.max_len, self.pseudo_len = generator_dir, max_len, pseudo_len
        self.source, self.seed = source, seed
        self.approximate = (approximate_above_items, approximate_nprobe, approximate_nlist)

    def setup(self):
        g = psg.load_generator(self.generator_dir)
        self.emb_x, self.emb_y = g["item_emb_x"], g["item_emb_y"]
        self.index_x, self.index_y = (psg.approximate_index(e, *self.approximate) if self.source == "lightgcn"
                                      else None for e in (self.emb_x, self.emb_y))

    def process(self, batch: List[bytes]):
        rows = [feature_spec.from_example(b) for b in batch]
        yield from (feature_spec.to_example(r) for r in add_pseudo(rows, self))


def add_pseudo(rows: List[Dict], gen) -> List[Dict]:
    """The pseudo-sequences of a batch of rows of any split (`gen` holds the loaded arrays).

    One function for every split and for serving: the user is the fold-in of the row's
    own histories, and recall excludes the items of those histories, so train, eval and
    test inputs are made the same way and no row sees an embedding fitted on its user's
    held-out items. A domain's recall goes through `gen.index_x` / `gen.index_y` (an
    approximate index, `psg.approximate_index`) when `gen` has one, else it is exact.
    """
    hx = psg.left_pad([r[feature_spec.HISTORY_X] for r in rows], gen.max_len)
    hy = psg.left_pad([r[feature_spec.HISTORY_Y] for r in rows], gen.max_len)
    user = psg.fold_in(gen.emb_x, gen.emb_y, hx, hy)
    seen = ([list(r[feature_spec.HISTORY_X]) for r in rows], [list(r[feature_spec.HISTORY_Y]) for r in rows])
    out = [dict(r) for r in rows]
    for d, (hist, emb, name) in enumerate(((hx, gen.emb_x, feature_spec.PSEUDO_X),
                                           (hy, gen.emb_y, feature_spec.PSEUDO_Y))):
        width = max(1, max(len(s) for s in seen[d]))
        k = min(gen.pseudo_len, emb.shape[0])
        if gen.source == "none":  # a baseline's run: the histories alone
            recalled = np.zeros((len(rows), k), np.int64)
        elif gen.source == "random":
            scores = random_row_scores(rows, d, emb.shape[0], gen.seed)
            recalled = psg.top_unseen(scores, psg.left_pad(seen[d], width), k)
        else:
            index = getattr(gen, ("index_x", "index_y")[d], None)
            recalled = psg.recall(user, emb, psg.left_pad(seen[d], width), k, index)
        if k < gen.pseudo_len:
            recalled = tf.pad(recalled, [[0, 0], [0, gen.pseudo_len - k]])
        pseudo = psg.compose_pseudo(hist, recalled, gen.pseudo_len).numpy()
        for i in range(len(out)):
            out[i][name] = [int(v) for v in pseudo[i] if v > 0]
    return out


def random_row_scores(rows: List[Dict], domain: int, width: int, seed: int) -> np.ndarray:
    """Uniform scores per row from a seed of (seed, user, target domain, domain): the w/o PSG
    ablation's random items, the same whatever batch a row lands in."""
    out = np.empty((len(rows), width), np.float32)
    for i, r in enumerate(rows):
        key = int(stable_fraction(seed, r[feature_spec.USER_ID], r[feature_spec.TARGET_DOMAIN], domain) * 2 ** 53)
        out[i] = np.random.default_rng(key).random(width, dtype=np.float32)
    return out


def build_transform(p: beam.Pipeline, in_uri: str, out_uri: str, splits, generator_dir: str, data_cfg,
                    lightgcn_cfg):
    """Beam graph: for every split, read examples, add pseudo-sequences in batches, write."""
    for split in splits:
        (p | f"Read-{split}" >> beam.io.ReadFromTFRecord(feature_spec.split_pattern(in_uri, split))
           | f"Batch-{split}" >> beam.BatchElements(min_batch_size=64, max_batch_size=1024)
           | f"Pseudo-{split}" >> beam.ParDo(AddPseudoSequences(
               generator_dir, data_cfg.max_len, data_cfg.pseudo_len, lightgcn_cfg.pseudo_source, lightgcn_cfg.seed,
               lightgcn_cfg.approximate_above_items, lightgcn_cfg.approximate_nprobe, lightgcn_cfg.approximate_nlist))
           | f"Write-{split}" >> beam.io.WriteToTFRecord(
               os.path.join(out_uri, feature_spec.SPLIT_DIR.format(split), "data"),
               file_name_suffix=feature_spec.RECORD_SUFFIX))


def run_pseudo_sequence_gen(in_uri: str, out_uri: str, splits, data_cfg, lightgcn_cfg, beam_pipeline,
                            base_model_uri: str = "") -> dict:
    """Trains the generator (in this process; warm-started from `base_model_uri`'s bundle when
    given) and runs the Beam transform on `beam_pipeline`."""
    vocab_x, vocab_y = feature_spec.read_vocabs(in_uri)
    tf.io.gfile.makedirs(os.path.join(out_uri, feature_spec.VOCAB_DIR))
    # the vocabularies, the domain names and the leak-touched rows travel with the examples
    vocab = [os.path.join(feature_spec.VOCAB_DIR, n) for n in feature_spec.VOCAB_FILES + (feature_spec.DOMAINS_FILE,)]
    optional = (os.path.join(feature_spec.VOCAB_DIR, feature_spec.DOMAINS_FILE), feature_spec.LEAK_TOUCHED_FILE)
    for name in vocab + [feature_spec.LEAK_TOUCHED_FILE]:
        if name in optional and not tf.io.gfile.exists(os.path.join(in_uri, name)):
            continue  # examples ingested by an earlier version
        tf.io.gfile.copy(os.path.join(in_uri, name), os.path.join(out_uri, name), overwrite=True)
    train_rows = read_split(in_uri, "train")
    eval_rows = read_split(in_uri, "eval") if "eval" in splits else []
    generator_dir = os.path.join(out_uri, GENERATOR_DIR)
    if lightgcn_cfg.pseudo_source != "lightgcn":
        # the w/o PSG ablation and the baselines need no LightGCN: the artifact's layout, zero embeddings
        why = {"random": "w/o PSG ablation", "none": "a baseline: the histories alone"}[lightgcn_cfg.pseudo_source]
        logger.info(f"[psg] pseudo_source={lightgcn_cfg.pseudo_source} ({why}): LightGCN is not trained")
        save_untrained_generator(generator_dir, len(vocab_x), len(vocab_y), lightgcn_cfg.embedding_dim)
        history = {"pseudo_source": lightgcn_cfg.pseudo_source}
    else:
        history = train_generator(train_rows, eval_rows, vocab_x, vocab_y, data_cfg, lightgcn_cfg,
                                  generator_dir, base_model_uri)
    with tf.io.gfile.GFile(os.path.join(generator_dir, "training.json"), "w") as f:
        json.dump(history, f, indent=2)
    with beam_pipeline as p:
        build_transform(p, in_uri, out_uri, splits, generator_dir, data_cfg, lightgcn_cfg)
    logger.info(f"[psg] pseudo-sequences ({lightgcn_cfg.pseudo_source}) written for splits {list(splits)}")
    return history
