"""Benchmarks that print figures: training and evaluation speed, and scale.

    i2vae bench speed --run runs/cloth_sport          # s per training epoch and per full test evaluation
    i2vae bench scale --users 50000,200000,800000     # recall and training as users grow, fixed catalogue
    i2vae bench scale --catalogue-items 40000,200000,1000000  # training, serving and recall as the catalogue grows
    i2vae bench trace                                 # graph trace time, with and without autograph
    i2vae bench recall --items 10000,100000,1000000   # exact vs approximate (faiss IVF) top-K recall

Speed runs the paper's settings (batch 512, d=128, T=20, T'=40, attention cross-domain
encoder) on the run's real examples, read as the Trainer reads them, once computing every
padded position (the baseline measured in the same run) and once as the default runs
(encoders computing real positions only, batches trimmed), and reports the ratio. Scale
grows the users at a fixed catalogue and runs each size's recall and training in fresh
processes, so each peak RSS is that phase's own; training streams the size's whole
augmented split as the Trainer does above `train.stream_above_mb`. Trace times the
first call of the train step (tracing plus one step) at the paper's settings, once with
autograph converting the model code (Keras' default, the baseline) and once as we run
it (`do_not_convert`), each in a fresh process. Recall times pseudo-sequence recall of a
fixed set of fold-in users against a growing catalogue, exact (`psg.recall_unseen`) and
through the approximate index (`psg.ApproximateIndex`), and reports recall@K against exact.
"""
from __future__ import annotations

import dataclasses
import glob
import json
import logging
import os
import resource
import subprocess
import sys
import time
from typing import Dict, List

import numpy as np

logger = logging.getLogger(__name__)


def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM, not ru_maxrss: Linux carries ru_maxrss
    over fork + exec, so a child of a big parent would report the parent's peak."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def latest_examples(run_dir: str) -> str:
    found = glob.glob(os.path.join(run_dir, "pipeline_root", "PseudoSequenceGen", "augmented_examples", "*"))
    if not found:
        raise FileNotFoundError(f"{run_dir}: no PseudoSequenceGen output; run the pipeline there first")
    return max(found, key=lambda p: int(os.path.basename(p)))


def run_data_path(run_dir: str) -> str:
    """The data folder a pipeline run read (its config.json's data_path)."""
    path = os.path.join(run_dir, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: not found; pass --authors-data (the paper-format pair folder)")
    with open(path) as f:
        return json.load(f)["data_path"]


SASREC_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "baselines",
                             "sasrec.json")
MAX_EPOCH_VS_SASREC = 3.0  # issue 46: the i2VAE's epoch within 3x SASRec's on the same pair


class _EpochTimer:
    def __init__(self):
        import tensorflow as tf

        class Timer(tf.keras.callbacks.Callback):
            def on_epoch_begin(s, epoch, logs=None):
                s.start = time.perf_counter()

            def on_epoch_end(s, epoch, logs=None):
                self.seconds.append(time.perf_counter() - s.start)

        self.seconds: List[float] = []
        self.callback = Timer()


def _time_epochs(records, variant, num_items, epochs: int, name: str, popularity=None):
    """Trains a fresh model of `variant` for `epochs` epochs; the model and its epoch seconds."""
    from models.trainer import build_model, training_dataset

    model = build_model(num_items, variant, popularity)
    timer = _EpochTimer()
    model.fit(training_dataset(records, variant), epochs=epochs, callbacks=[timer.callback], verbose=0)
    logger.info(f"[bench] {name}: epoch seconds {[round(s, 1) for s in timer.seconds]} (the first includes tracing)")
    return model, timer.seconds


def speed(examples: str, epochs: int = 2) -> Dict:
    """Seconds per training epoch of the paper's model (every padded position vs packed
    encoders and trimmed batches, our default) and per full test evaluation; then the
    epoch of the default recipe (causal encoder, residual state), which must not cost more
    than the paper's model it replaced as the default.

    Training reads the train split the way the Trainer does (in memory, in canonical
    order, seeded shuffle), so the epoch figures are those of a pipeline run."""
    from models import config, data, evaluation, feature_spec, metrics
    from models.trainer import read_canonical

    cfg = config.load_config(overrides=list(config.PAPER_MODEL))  # the authors' model, for the same-run comparison
    num_items = feature_spec.vocab_sizes(examples)
    records, rows = read_canonical([feature_spec.split_pattern(examples, "train")])  # the Trainer's own input path
    out = {"examples": examples, "train_rows": len(records), "num_items": list(num_items),
           "steps_per_epoch": int(np.ceil(len(records) / cfg.train.batch_size)), "epochs": {}}
    for name, fast in (("padded", False), ("packed", True)):
        variant = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, trim_padding=fast),
                                      model=dataclasses.replace(cfg.model, pack_sequences=fast))
        model, out["epochs"][name] = _time_epochs(records, variant, num_items, epochs, name)
    test_rows = data.read_split(examples, "test")
    start = time.perf_counter()
    negatives = metrics.candidate_matrix(test_rows, num_items, cfg.eval.num_negatives, cfg.eval.seed)
    sampling = time.perf_counter() - start
    scorer = evaluation.keras_scorer(model)
    # the first pass traces and warms every batch shape's kernels, as the first epoch's
    # validation does in training; the timed pass is what each later evaluation costs
    evaluation.evaluate_rows(scorer, test_rows, negatives, cfg.data.max_len, cfg.data.pseudo_len)
    start = time.perf_counter()
    evaluation.evaluate_rows(scorer, test_rows, negatives, cfg.data.max_len, cfg.data.pseudo_len)
    out.update(test_rows=len(test_rows), eval_sampling_s=sampling, eval_scoring_ranking_s=time.perf_counter() - start,
               peak_rss_mb=peak_rss_mb())  # before the default recipe's model: the paper model's footprint
    del model
    _, out["epochs"]["default_recipe"] = _time_epochs(records, config.load_config(), num_items, epochs, "default_recipe")
    # issue 46's cost target: the i2VAE's epoch within 3x SASRec's as shipped, on the same rows
    _, out["epochs"]["sasrec"] = _time_epochs(records, config.load_config(SASREC_CONFIG), num_items, epochs, "sasrec",
                                              evaluation.item_popularity(rows, num_items))
    return out


def _steady(seconds: List[float]) -> float:
    """Mean epoch seconds without the first epoch (tracing, loader start-up) when there are more."""
    return float(np.mean(seconds[1:] or seconds))


def print_speed(r: Dict, authors: Dict = None) -> None:
    """Our two variants; with `authors` (experiments/authors_bench.py, run right after ours on
    the same machine) their figures beside ours and the ratio, theirs / ours."""
    full, trim = (_steady(r["epochs"][name]) for name in ("padded", "packed"))
    eval_s = r["eval_sampling_s"] + r["eval_scoring_ranking_s"]
    steps = r["steps_per_epoch"]
    print(f"\nspeed bench: {r['examples']}\n{r['train_rows']} train rows ({steps} steps of 512), "
          f"{r['num_items'][0]}+{r['num_items'][1]} items, {r['test_rows']} test rows; the paper's model and settings; "
          f"steady-state epochs (the first, which traces, left out when there are more)\n")
    print("| measure | ours, every padded position (baseline) | ours, packed and trimmed (default) | "
          "default / baseline |")
    print("|---|---|---|---|")
    print(f"| s per training epoch | {full:.1f} | {trim:.1f} | {trim / full:.2f} |")
    print(f"| s per training step | {full / steps:.2f} | {trim / steps:.2f} | {trim / full:.2f} |")
    print(f"| s per full test evaluation (999 negatives + full ranking) | | {eval_s:.1f} "
          f"(sampling {r['eval_sampling_s']:.1f}, scoring and ranking {r['eval_scoring_ranking_s']:.1f}) | |")
    print(f"| peak RSS (MB, this process) | | {r['peak_rss_mb']:.0f} | |")
    if "default_recipe" in r["epochs"]:
        recipe = _steady(r["epochs"]["default_recipe"])
        print(f"\nthe default recipe (causal encoder + residual state, every history position a target): "
              f"{recipe:.1f} s per training epoch, {recipe / trim:.2f}x the paper's model packed and trimmed above")
    if "sasrec" in r["epochs"]:
        sasrec = _steady(r["epochs"]["sasrec"])
        print(f"SASRec as shipped ({SASREC_CONFIG}): {sasrec:.1f} s per training epoch; the default i2VAE's "
              f"epoch is {recipe / sasrec:.2f}x it (target: at most {MAX_EPOCH_VS_SASREC:.0f}x)")
    if not authors:
        print("\nOurs alone: the authors' code was not run (pass --authors-code DIR to time it in this run).")
        return
    theirs_epoch = _steady(authors["epoch_s"])
    theirs_eval = float(np.mean(authors["eval_s"])) if authors["eval_s"] else float("nan")
    ours_row, theirs_row = trim / r["train_rows"], theirs_epoch / authors["train_rows"]
    print(f"\nthe authors' PyTorch code, same machine, same run, right after ours: {len(authors['epoch_s'])} epoch(s) "
          f"of {authors['train_rows']} train rows, each followed by their test evaluation (999 sampled negatives "
          f"only, {authors['test_rows']} rows); their output: {authors['log']}\n")
    print("| measure | authors' code | ours (the paper's model) | authors / ours |")
    print("|---|---|---|---|")
    print(f"| ms per training row | {1000 * theirs_row:.2f} | {1000 * ours_row:.2f} | {theirs_row / ours_row:.2f}x |")
    print(f"| s per training epoch | {theirs_epoch:.1f} ({authors['train_rows']} rows) | {trim:.1f} "
          f"({r['train_rows']} rows) | {theirs_epoch / trim:.2f}x |")
    print(f"| s per test evaluation | {theirs_eval:.1f} (sampled) | {eval_s:.1f} (sampled and full ranking) | "
          f"{theirs_eval / eval_s:.2f}x |")
    print(f"| peak RSS (MB, largest process) | {authors['peak_rss_mb']:.0f} | {r['peak_rss_mb']:.0f} | "
          f"{authors['peak_rss_mb'] / r['peak_rss_mb']:.2f}x |")


# ------------------------------------------------------------------ scale
SCALE_ITEMS = (40000, 32000)  # the fixed catalogue of the users axis: the largest of the old grown-catalogue runs
TRAIN_STEPS = 20  # training steps timed per size, streamed from that size's whole split


def write_rows(users: int, path: str, items_x: int, items_y: int) -> Dict:
    """Synthetic rows (one per user: X target if the user has X items) as JSON lines, over a
    catalogue of `items_x` + `items_y` items."""
    from components.ingest import synthetic
    from models import feature_spec

    events = synthetic.generate(synthetic.SyntheticConfig(num_users=users, num_items_x=items_x, num_items_y=items_y,
                                                          seed=3))
    seqs: Dict[str, tuple] = {}
    for user, item, domain, _ in events:
        seqs.setdefault(user, ([], []))["xy".index(domain)].append(int(item[1:]) + 1)
    with open(path, "w") as f:
        for u, (x, y) in seqs.items():
            history_x, history_y = (x[:-1], y) if x else ([], y[:-1])
            row = {feature_spec.USER_ID: u, feature_spec.HISTORY_X: history_x, feature_spec.HISTORY_Y: history_y,
                   feature_spec.TARGET_ITEM: x[-1] if x else y[-1], feature_spec.TARGET_DOMAIN: 0 if x else 1,
                   feature_spec.IS_COLD_START: int(not (history_x if x else history_y)),
                   feature_spec.IS_LONG_TAILED: 0}  # the evaluation groups; training does not read them
            f.write(json.dumps(row) + "\n")
    return {"users": users, "rows": len(seqs), "items_x": items_x, "items_y": items_y}


def scale_recall_one(path: str, examples_path: str, items_x: int, items_y: int, batch: int = 1024) -> Dict:
    """Streams the rows file in batches through the pseudo-sequence recall (one Beam worker's
    work: only a batch is held) and writes the augmented rows as GZIP TFRecords, the
    Trainer's input; the writing is not counted in the recall time."""
    import tensorflow as tf

    from components.pseudo_sequences.executor import add_pseudo
    from models import feature_spec

    rng = np.random.default_rng(0)

    class Gen:  # the arrays a trained generator holds; the recall cost does not depend on their values
        emb_x = rng.normal(size=(items_x + 1, 64)).astype(np.float32)
        emb_y = rng.normal(size=(items_y + 1, 64)).astype(np.float32)
        max_len, pseudo_len, source, seed = 20, 40, "lightgcn", 42

    add_pseudo([{feature_spec.USER_ID: "warm", feature_spec.HISTORY_X: [1], feature_spec.HISTORY_Y: [1],
                 feature_spec.TARGET_ITEM: 1, feature_spec.TARGET_DOMAIN: 0}], Gen)
    rss_start = peak_rss_mb()
    count, write_s = 0, 0.0
    start = time.perf_counter()
    with open(path) as f, tf.io.TFRecordWriter(examples_path, options="GZIP") as writer:
        while True:
            rows = [json.loads(line) for _, line in zip(range(batch), f)]
            if not rows:
                break
            out = add_pseudo(rows, Gen)
            count += len(rows)
            written = time.perf_counter()
            for row in out:
                writer.write(feature_spec.to_example(row))
            write_s += time.perf_counter() - written
            if count % (batch * 100) == 0:
                logger.info(f"[bench] recall: {count} rows, {time.perf_counter() - start - write_s:.0f}s, "
                            f"peak RSS {peak_rss_mb():.0f} MB")
    recall_s = time.perf_counter() - start - write_s
    return {"rows": count, "items": items_x + items_y, "recall_s": recall_s, "recall_users_per_s": count / recall_s,
            "rss_before_recall_mb": rss_start, "peak_rss_recall_mb": peak_rss_mb()}


def scale_train_one(examples_path: str, items_x: int, items_y: int, steps: int = TRAIN_STEPS) -> Dict:
    """Trains the default i2VAE `steps` steps on a split streamed as the Trainer streams one
    above `train.stream_above_mb` (`trainer.streamed_train_split`). Peak RSS is this
    process's own."""
    from models import config
    from models.trainer import build_model, streamed_train_split

    cfg = config.load_config(overrides=list(config.PAPER_MODEL))  # the paper's model, as the docs' figures
    num_items = (items_x, items_y)
    train_ds, popularity, _ = streamed_train_split([examples_path], cfg, num_items)
    model = build_model(num_items, cfg, popularity)
    rss_model = peak_rss_mb()
    model.fit(train_ds, epochs=1, steps_per_epoch=1, verbose=0)  # traces
    start = time.perf_counter()
    model.fit(train_ds, epochs=1, steps_per_epoch=steps, verbose=0)
    train_s = time.perf_counter() - start
    return {"train_examples_per_s": steps * cfg.train.batch_size / train_s, "rss_before_training_mb": rss_model,
            "peak_rss_training_mb": peak_rss_mb(), "shuffle_buffer": cfg.train.shuffle_buffer}


def in_fresh_process(call: str, what: str) -> Dict:
    """Runs `call` (a `experiments.bench` function call returning a dict) in a new Python
    process, so its memory and tracing are its own, and returns the dict."""
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
    code = ("import json, logging; logging.basicConfig(level=logging.INFO, format='%(message)s'); "
            f"from experiments import bench; print(json.dumps(bench.{call}))")
    out = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)  # progress: stderr
    if out.returncode != 0:
        raise RuntimeError(f"{what} failed (exit status {out.returncode}; its error is above)")
    return json.loads(out.stdout.strip().splitlines()[-1])


def scale(sizes: List[int], work_dir: str, items=SCALE_ITEMS, train_steps: int = TRAIN_STEPS) -> List[Dict]:
    """Users grown at a fixed catalogue: per size, the recall of every row and then training
    streamed from the whole augmented split, each in a fresh process."""
    results = []
    os.makedirs(work_dir, exist_ok=True)
    items_x, items_y = items
    for users in sizes:
        path = os.path.join(work_dir, f"rows_{users}_{items_x}_{items_y}.jsonl")
        examples = path.replace(".jsonl", ".tfrecord.gz")
        start = time.perf_counter()
        info = write_rows(users, path, items_x, items_y)
        logger.info(f"[bench] {users} users: {info['rows']} rows written in {time.perf_counter() - start:.0f}s")
        r = dict(in_fresh_process(f"scale_recall_one({path!r}, {examples!r}, {items_x}, {items_y})",
                                  f"recall for {users} users"), users=users)
        logger.info(f"[bench] {users} users: recall {r['recall_s']:.1f}s ({r['recall_users_per_s']:.0f} users/s), "
                    f"peak RSS {r['peak_rss_recall_mb']:.0f} MB; training {train_steps} steps streamed from "
                    f"{os.path.getsize(examples) / 2 ** 20:.0f} MB of TFRecords")
        r.update(in_fresh_process(f"scale_train_one({examples!r}, {items_x}, {items_y}, {train_steps})",
                                  f"training for {users} users"))
        r["examples_mb"] = os.path.getsize(examples) / 2 ** 20
        logger.info(f"[bench] {users} users: training {r['train_examples_per_s']:.0f} examples/s, peak RSS "
                    f"{r['peak_rss_training_mb']:.0f} MB")
        for name in (path, examples):
            os.remove(name)
        results.append(r)
    return results


def print_scale(results: List[Dict]) -> None:
    base = results[0]
    print(f"\nscale bench: synthetic data, users grown at a fixed catalogue of {base['items']:,} items, one process "
          "per size and phase; recall = pseudo-sequences (top-40 unseen per domain) for every row, streamed in "
          "batches of 1024 as one Beam worker does; training = the default i2VAE (batch 512), streamed from the "
          f"size's whole augmented split through a {base['shuffle_buffer']:,}-row shuffle buffer\n")
    print("| users | rows | recall s | recall time vs smallest | users vs smallest | peak RSS MB (recall) | "
          "TFRecords MB | training examples/s | peak RSS MB (training) | training RSS vs smallest |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['users']:,} | {r['rows']:,} | {r['recall_s']:.1f} | {r['recall_s'] / base['recall_s']:.1f}x | "
              f"{r['rows'] / base['rows']:.1f}x | {r['peak_rss_recall_mb']:.0f} | {r['examples_mb']:.0f} | "
              f"{r['train_examples_per_s']:.0f} | {r['peak_rss_training_mb']:.0f} | "
              f"{r['peak_rss_training_mb'] / base['peak_rss_training_mb']:.2f}x |")


# ------------------------------------------------------------------ catalogue
CATALOGUE_USERS = 50000  # the fixed users of the catalogue axis
FULL_SOFTMAX_BUDGET_MB = 4096  # the forced full softmax runs where its logits (and their gradient) fit in this


def full_softmax_fits(items: int, batch: int, max_len: int) -> bool:
    """Whether one step's full-softmax logits, at a quarter of a batch's positions (the
    synthetic histories average 5 items), for three cross-entropies (rec, rec_cold, state)
    and their gradients, fit the budget."""
    return 3 * 2 * batch * max_len / 4 * items * 4 / 2 ** 20 <= FULL_SOFTMAX_BUDGET_MB


def catalogue_train_one(examples_path: str, items: int, steps: int, full_softmax: bool) -> Dict:
    """The default recipe (the package's config) `steps` steps on the split, streamed as the
    Trainer streams it: with the automatic switch at `train.full_softmax_max_items`, or
    with the full softmax forced. Peak RSS is this process's own."""
    from models import config
    from models.trainer import build_model, streamed_train_split

    cfg = config.load_config(overrides=[f"train.full_softmax_max_items={items}"] if full_softmax else [])
    num_items = (items, items)
    train_ds, popularity, _ = streamed_train_split([examples_path], cfg, num_items)
    model = build_model(num_items, cfg, popularity)
    sampled = [s is not None for s in model.objective.sampled_retrieval]
    model.fit(train_ds, epochs=1, steps_per_epoch=2, verbose=0)  # traces
    start = time.perf_counter()
    model.fit(train_ds, epochs=1, steps_per_epoch=steps, verbose=0)
    return {"step_ms": 1000 * (time.perf_counter() - start) / steps, "peak_rss_training_mb": peak_rss_mb(),
            "loss": "sampled retrieval" if all(sampled) else "full softmax"}


def catalogue_serve_one(work_dir: str, items: int, requests: int = 200, batch: int = 64) -> Dict:
    """Exports the default i2VAE and a generator at `items` items per domain (random
    weights: the latency does not depend on their values), loads the SavedModel as TF
    Serving would and times its serving signature: p50 / p99 at batch 1, users/s at batch
    64, on synthetic raw-id histories."""
    import shutil

    import tensorflow as tf

    from models import config, export, feature_spec, psg
    from models.trainer import build_model

    cfg = config.load_config()
    rng = np.random.default_rng(0)
    root = os.path.join(work_dir, f"catalogue_{items}")
    os.makedirs(os.path.join(root, feature_spec.VOCAB_DIR), exist_ok=True)
    for name in feature_spec.VOCAB_FILES:
        feature_spec.write_lines(os.path.join(root, feature_spec.VOCAB_DIR, name), [f"i{i}" for i in range(items)])
    dim = cfg.lightgcn.embedding_dim
    psg.save_generator(os.path.join(root, psg.GENERATOR_DIR), *(rng.normal(size=(items + 1, dim)).astype(np.float32)
                                                                for _ in range(2)), [], [], np.zeros((0, dim), np.float32))
    popularity = [rng.integers(0, 50, items + 1).astype(np.float64) for _ in range(2)]
    model = build_model((items, items), cfg, popularity)
    model.score_all({name: tf.zeros([1, 1], tf.int64) for name in (feature_spec.HISTORY_X, feature_spec.HISTORY_Y,
                                                                   feature_spec.PSEUDO_X, feature_spec.PSEUDO_Y)})
    if max(cfg.train.graph_blend_grid) > 0:  # the default blends the generator's graph in (wider tables)
        model.attach_graph_blend(psg.graph_item_embeddings(root))
        model.graph_weight.assign(max(cfg.train.graph_blend_grid))  # any w > 0: the cost does not depend on it
    start = time.perf_counter()
    export.export_saved_model(model, root, popularity, cfg, os.path.join(root, "model"))
    export_s = time.perf_counter() - start
    signature = tf.saved_model.load(os.path.join(root, "model")).signatures["serving_default"]

    def histories(n):
        return tf.constant([[f"i{j}" for j in rng.integers(0, items, 5)] for _ in range(n)])

    singles = [(histories(1), histories(1)) for _ in range(requests + 20)]
    for hx, hy in singles[:20]:
        signature(history_x=hx, history_y=hy)
    seconds = []
    for hx, hy in singles[20:]:
        t = time.perf_counter()
        signature(history_x=hx, history_y=hy)
        seconds.append(time.perf_counter() - t)
    batches = [(histories(batch), histories(batch)) for _ in range(10)]
    signature(history_x=batches[0][0], history_y=batches[0][1])
    t = time.perf_counter()
    for hx, hy in batches:
        signature(history_x=hx, history_y=hy)
    users_per_s = len(batches) * batch / (time.perf_counter() - t)
    ms = 1000 * np.asarray(seconds)
    shutil.rmtree(root)
    return {"serve_p50_ms": float(np.percentile(ms, 50)), "serve_p99_ms": float(np.percentile(ms, 99)),
            "serve_users_per_s": users_per_s, "export_s": export_s, "peak_rss_serving_mb": peak_rss_mb()}


def catalogue(sizes: List[int], work_dir: str, users: int = CATALOGUE_USERS, train_steps: int = TRAIN_STEPS) -> List[Dict]:
    """Items per domain grown at a fixed number of users: per size, the pipeline's recall of
    every row, the default recipe's training steps (automatic switch, and the full softmax
    where it fits), and the serving signature, each in a fresh process."""
    from models import config

    defaults = config.load_config()
    results = []
    os.makedirs(work_dir, exist_ok=True)
    for items in sizes:
        path = os.path.join(work_dir, f"rows_{users}_{items}.jsonl")
        examples = path.replace(".jsonl", ".tfrecord.gz")
        write_rows(users, path, items, items)
        r = dict(in_fresh_process(f"scale_recall_one({path!r}, {examples!r}, {items}, {items})",
                                  f"recall at {items} items"), items_per_domain=items, users=users)
        logger.info(f"[bench] {items} items: recall {r['recall_s']:.1f}s")
        for forced in (False, True):
            if forced and not full_softmax_fits(items, defaults.train.batch_size, defaults.data.max_len):
                r["full_softmax"] = None
                continue
            t = in_fresh_process(f"catalogue_train_one({examples!r}, {items}, {train_steps}, {forced})",
                                 f"training at {items} items")
            r["full_softmax" if forced else "default"] = t
            logger.info(f"[bench] {items} items: {t['loss']}: {t['step_ms']:.0f} ms per step, peak RSS "
                        f"{t['peak_rss_training_mb']:.0f} MB")
        r.update(in_fresh_process(f"catalogue_serve_one({work_dir!r}, {items})", f"serving at {items} items"))
        logger.info(f"[bench] {items} items: serving p50 {r['serve_p50_ms']:.1f} ms, p99 {r['serve_p99_ms']:.1f} ms")
        for name in (path, examples):
            os.remove(name)
        results.append(r)
    return results


def print_catalogue(results: List[Dict]) -> None:
    base = results[0]
    print(f"\ncatalogue bench: synthetic data, {base['users']:,} users, items per domain grown; one process per "
          "size and phase. training = the default recipe (batch 512) streamed from the size's split: 'default' "
          "switches to the sampled retrieval loss above train.full_softmax_max_items, 'full softmax' forces it "
          f"where its logits fit {FULL_SOFTMAX_BUDGET_MB} MB; serving = the SavedModel's serving signature in "
          "process (pseudo-sequence recall, scoring, top-10), batch 1 and 64\n")
    print("| items per domain | recall s | default loss | step ms | step vs smallest | peak RSS MB | RSS vs smallest "
          "| full softmax step ms | full softmax peak RSS MB | serving p50 ms | serving p99 ms | users/s (batch 64) "
          "| serving peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        d, f = r["default"], r["full_softmax"]
        full = f"{f['step_ms']:.0f} | {f['peak_rss_training_mb']:.0f}" if f else "does not fit | –"
        print(f"| {r['items_per_domain']:,} | {r['recall_s']:.1f} | {d['loss']} | {d['step_ms']:.0f} | "
              f"{d['step_ms'] / base['default']['step_ms']:.2f}x | {d['peak_rss_training_mb']:.0f} | "
              f"{d['peak_rss_training_mb'] / base['default']['peak_rss_training_mb']:.2f}x | {full} | "
              f"{r['serve_p50_ms']:.1f} | {r['serve_p99_ms']:.1f} | {r['serve_users_per_s']:.0f} | "
              f"{r['peak_rss_serving_mb']:.0f} |")


# ------------------------------------------------------------------ recall

def synthetic_items(num_items: int, dim: int, rng, per_centre: int = 200, spread: float = 0.5) -> np.ndarray:
    """[N+1, dim] item embeddings (row 0 padding) scattered around N / per_centre centres:
    trained item embeddings group by taste; pure noise would have no cells for an IVF index to find."""
    centres = rng.normal(size=(max(1, num_items // per_centre), dim)).astype(np.float32)
    items = centres[rng.integers(0, len(centres), num_items)]
    items += spread * rng.normal(size=items.shape).astype(np.float32)
    return np.concatenate([np.zeros((1, dim), np.float32), items])


def recall_one(num_items: int, users: int = 2000, dim: int = 64, k: int = 20, history: int = 20,
               nprobes=(16, 64, 128), batch: int = 1024, spread: float = 0.5, seed: int = 0) -> Dict:
    """Exact vs approximate recall of `users` fold-in users (the mean of `history` random items,
    which are their seen items) over `num_items` items, in batches of `batch` as a Beam worker."""
    import tensorflow as tf

    from models import psg

    rng = np.random.default_rng(seed)
    items = synthetic_items(num_items, dim, rng, spread=spread)
    seen = rng.integers(1, num_items + 1, size=(users, history))
    user = items[seen].mean(axis=1)
    psg.recall_unseen(tf.constant(user[:8]), items[:100], seen[:8], k)  # trace the small ops once
    start = time.perf_counter()
    exact = np.concatenate([psg.recall_unseen(user[lo: lo + batch], items, seen[lo: lo + batch], k).numpy()
                            for lo in range(0, users, batch)])
    out = {"items": num_items, "users": users, "dim": dim, "k": k, "exact_s": time.perf_counter() - start,
           "approximate": []}
    start = time.perf_counter()
    index = psg.ApproximateIndex(items, nprobe=nprobes[0])
    build_s = time.perf_counter() - start
    for nprobe in nprobes:
        index.index.nprobe = min(nprobe, index.nlist)
        start = time.perf_counter()
        approx = np.concatenate([psg.recall(user[lo: lo + batch], items, seen[lo: lo + batch], k, index).numpy()
                                 for lo in range(0, users, batch)])
        seconds = time.perf_counter() - start
        hits = sum(len(set(a) & set(e) - {0}) for a, e in zip(approx, exact))
        seen_hits = sum(len(set(a) & set(s) - {0}) for a, s in zip(approx, seen))
        out["approximate"].append({"nprobe": int(index.index.nprobe), "nlist": index.nlist, "build_s": build_s,
                                   "search_s": seconds, "recall_at_k": hits / float((exact > 0).sum()),
                                   "seen_returned": seen_hits})
        print(f"[bench] {num_items:,} items, nprobe {nprobe}: exact {out['exact_s']:.1f}s, approximate "
              f"{seconds:.1f}s (+{build_s:.1f}s build), recall@{k} {out['approximate'][-1]['recall_at_k']:.3f}",
              file=sys.stderr, flush=True)
    return out


def recall(sizes: List[int], users: int = 2000, nprobes=(16, 64, 128), spread: float = 0.5) -> List[Dict]:
    """recall_one per catalogue size, each in a fresh process (its own memory and threads)."""
    return [in_fresh_process(f"recall_one({n}, users={users}, nprobes={tuple(nprobes)!r}, spread={spread})",
                             f"recall run for {n} items") for n in sizes]


def print_recall(results: List[Dict]) -> None:
    r0 = results[0]
    print(f"\nrecall bench: {r0['users']:,} fold-in users (mean of 20 seen items), {r0['dim']}-dim synthetic "
          f"clustered item embeddings, top-{r0['k']} unseen, batches of 1024 users; exact = psg.recall_unseen "
          f"(every item scored), approximate = faiss IndexIVFFlat, inner product, nlist = 4 x sqrt(N); one "
          f"process per size\n")
    print(f"| items | exact ms/user | nlist | nprobe | approximate ms/user | speedup | recall@{r0['k']} vs exact | "
          f"seen items returned | index build s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        exact = 1000 * r["exact_s"] / r["users"]
        for a in r["approximate"]:
            approx = 1000 * a["search_s"] / r["users"]
            print(f"| {r['items']:,} | {exact:.2f} | {a['nlist']} | {a['nprobe']} | {approx:.3f} | "
                  f"{exact / approx:.1f}x | {a['recall_at_k']:.3f} | {a['seen_returned']} | {a['build_s']:.1f} |")


# ------------------------------------------------------------------ trace

TRACE_MODES = ("autograph", "no_conversion")


def trace_one(mode: str, items_x: int = 10000, items_y: int = 10000, steps: int = 3) -> Dict:
    """Seconds of the train step's first call (trace + one step) and of later steps, and the
    loss of the same batch after them, under `mode` (one of TRACE_MODES)."""
    import tensorflow as tf

    from models import config, feature_spec
    from models.loss_terms_model import LossTermsModel
    from models.trainer import build_model

    cfg = config.load_config(overrides=list(config.PAPER_MODEL))  # the paper's model, as the docs' figures
    model = build_model((items_x, items_y), cfg)
    rng = np.random.default_rng(0)
    b, t, tp = cfg.train.batch_size, cfg.data.max_len, cfg.data.pseudo_len
    batch = {feature_spec.HISTORY_X: rng.integers(0, items_x + 1, (b, t)),
             feature_spec.HISTORY_Y: rng.integers(0, items_y + 1, (b, t)),
             feature_spec.PSEUDO_X: rng.integers(1, items_x + 1, (b, tp)),
             feature_spec.PSEUDO_Y: rng.integers(1, items_y + 1, (b, tp)),
             feature_spec.TARGET_DOMAIN: rng.integers(0, 2, b)}
    batch[feature_spec.TARGET_ITEM] = np.where(batch[feature_spec.TARGET_DOMAIN] == 0, rng.integers(1, items_x + 1, b),
                                               rng.integers(1, items_y + 1, b))
    batch = {k: tf.constant(v, tf.int64) for k, v in batch.items()}
    if mode == "autograph":  # the undecorated train step, converted as Keras' fit would
        raw = LossTermsModel.train_step.__wrapped__
        step = tf.function(lambda batch: raw(model, batch))
    elif mode == "no_conversion":
        step = tf.function(model.train_step)
    else:
        raise ValueError(f"mode must be one of {TRACE_MODES}, found {mode!r}")
    start = time.perf_counter()
    float(step(batch)["loss"])
    first_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        float(step(batch)["loss"])
    step_s = (time.perf_counter() - start) / steps
    return {"mode": mode, "first_call_s": first_s, "step_s": step_s, "trace_s": first_s - step_s, "steps": 1 + steps,
            "loss_after": float(model.losses_and_terms(batch, training=False)[0])}


def trace() -> List[Dict]:
    results = []
    for mode in TRACE_MODES:
        results.append(in_fresh_process(f"trace_one({mode!r})", f"trace run ({mode})"))
        print(f"[bench] {mode}: first call {results[-1]['first_call_s']:.1f}s, step {results[-1]['step_s']:.2f}s",
              flush=True)
    return results


def print_trace(results: List[Dict]) -> None:
    base, ours = results
    print("\ntrace bench: i2VAE train step at the paper's settings (batch 512, d=128, T=20, T'=40), synthetic "
          "batch, 10,000 + 10,000 items, one fresh process per mode; trace = first call - later step\n")
    print("| measure | autograph conversion (Keras default, baseline) | no conversion (ours) | ours / baseline |")
    print("|---|---|---|---|")
    for key, name in (("first_call_s", "s first call (trace + step)"), ("trace_s", "s trace"),
                      ("step_s", "s per later step")):
        print(f"| {name} | {base[key]:.2f} | {ours[key]:.2f} | {ours[key] / base[key]:.2f} |")
    print(f"| loss after {ours['steps']} steps | {base['loss_after']:.6f} | {ours['loss_after']:.6f} | |")
