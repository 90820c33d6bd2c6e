"""Warm start from the served model, with a catalogue and user base that have changed.

A scheduled retraining sees yesterday's items and users again plus some new ones, and
some items are gone. Index numbers are not stable across runs (the vocabulary is rebuilt
from the data), so rows are carried over by raw id: a row whose id both runs know keeps
its trained values, a new id keeps its fresh initialisation, an id that is gone is
dropped.

The Trainer writes a bundle next to the SavedModel of its Model artifact
(`<model uri>/warm_start/`): the trainable weights in model order, which of them are item
tables of which domain, both vocabularies, the config's model section, and the
pseudo-sequence generator's LightGCN layer-0 embeddings with its user ids. A later run gets
the served model's artifact from TFX's Resolver and reads the bundle back
(`warm_start_model`, `warm_start_lightgcn`). The SavedModel that TF Serving loads is
unchanged by it.
"""
from __future__ import annotations

import io
import json
import logging
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from models import config, feature_spec, psg

logger = logging.getLogger(__name__)

BUNDLE_DIR = "warm_start"
MANIFEST = "manifest.json"
WEIGHTS = "weights.npz"
GENERATOR = "generator.npz"


def bundle_dir(model_uri: str) -> str:
    """The bundle of a Model artifact (its uri; TFX's Trainer writes the SavedModel under it)."""
    return os.path.join(model_uri, BUNDLE_DIR)


def id_counts(old_ids: Sequence[str], new_ids: Sequence[str]) -> Dict[str, int]:
    """How many ids both lists hold (carried), only the new one (added), only the old (dropped)."""
    old, new = set(old_ids), set(new_ids)
    return {"carried": len(old & new), "added": len(new - old), "dropped": len(old - new)}


def carry_rows(old_rows: np.ndarray, old_ids: Sequence[str], new_rows: np.ndarray,
               new_ids: Sequence[str]) -> Tuple[np.ndarray, Dict[str, int]]:
    """`new_rows` with each row whose id is in `old_ids` replaced by that old row.

    `old_ids[i]` names `old_rows[i]`, `new_ids[j]` names `new_rows[j]`. Returns the rows and
    the counts carried, added, dropped (`id_counts`)."""
    where = {raw: i for i, raw in enumerate(old_ids)}
    out = np.array(new_rows, copy=True)
    new_index = [j for j, raw in enumerate(new_ids) if raw in where]
    if new_index:
        out[new_index] = old_rows[[where[new_ids[j]] for j in new_index]]
    return out, id_counts(old_ids, new_ids)


def _write_npz(path: str, arrays: Dict[str, np.ndarray]) -> None:
    buffer = io.BytesIO()  # np.savez wants a seekable file; GFile (gs://) is not
    np.savez(buffer, **arrays)
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(buffer.getvalue())


def _read_npz(path: str) -> Dict[str, np.ndarray]:
    with tf.io.gfile.GFile(path, "rb") as f:
        with np.load(io.BytesIO(f.read())) as z:
            return {k: z[k] for k in z.files}


def _item_domains(model) -> List[Optional[int]]:
    """Per trainable variable: the domain whose item table it is (rows = item indices, row 0
    padding), or None."""
    embeddings = model.item_embeddings() if hasattr(model, "item_embeddings") else ()  # i2VAE, SASRec
    tables = {table.ref(): d for d, table in enumerate(embeddings)}
    return [tables.get(v.ref()) for v in model.trainable_variables]


def save_bundle(model, cfg, examples_root: str, model_uri: str) -> str:
    """Writes the bundle of a trained model: its weights, vocabularies and generator."""
    out = bundle_dir(model_uri)
    tf.io.gfile.makedirs(out)
    variables = model.trainable_variables
    _write_npz(os.path.join(out, WEIGHTS), {f"v{i}": v.numpy() for i, v in enumerate(variables)})
    vocab_x, vocab_y = feature_spec.read_vocabs(examples_root)
    for name, vocab in zip(feature_spec.VOCAB_FILES, (vocab_x, vocab_y)):
        feature_spec.write_lines(os.path.join(out, name), vocab)
    generator = psg.load_generator(os.path.join(examples_root, psg.GENERATOR_DIR))
    if "layer0" in generator:
        _write_npz(os.path.join(out, GENERATOR), {"layer0": generator["layer0"], "user_ids": generator["user_ids"]})
    manifest = {"model_kind": cfg.model.kind, "model": config.to_dict(cfg)["model"],
                "variables": [{"name": v.name, "shape": list(v.shape), "item_domain": d}
                              for v, d in zip(variables, _item_domains(model))]}
    with tf.io.gfile.GFile(os.path.join(out, MANIFEST), "w") as f:
        json.dump(manifest, f, indent=2)
    return out


def read_vocabs(model_uri: str) -> Tuple[List[str], List[str]]:
    """The vocabularies (raw item ids in index order) a Model artifact was trained on."""
    vocab_x, vocab_y = (feature_spec.read_vocab(os.path.join(bundle_dir(model_uri), name))
                        for name in feature_spec.VOCAB_FILES)
    return vocab_x, vocab_y


def model_kind(model_uri: str) -> str:
    """The `model.kind` a Model artifact with a bundle was trained as."""
    with tf.io.gfile.GFile(os.path.join(bundle_dir(model_uri), MANIFEST)) as f:
        return json.load(f)["model_kind"]


def has_bundle(base_model_uri: Optional[str]) -> bool:
    return bool(base_model_uri) and tf.io.gfile.exists(os.path.join(bundle_dir(base_model_uri), MANIFEST))


def warm_start_model(model, cfg, examples_root: str, base_model_uri: str) -> Optional[Dict[str, int]]:
    """Loads the base model's bundle into the built `model`: every trainable weight, item
    tables carried by raw item id. Returns the item rows' counts (summed over both domains),
    or None, with the reason logged, when the base model is of another kind or shape."""
    directory = bundle_dir(base_model_uri)
    with tf.io.gfile.GFile(os.path.join(directory, MANIFEST)) as f:
        manifest = json.load(f)
    variables = model.trainable_variables
    saved = manifest["variables"]
    if manifest["model_kind"] != cfg.model.kind or manifest["model"] != config.to_dict(cfg)["model"]:
        logger.info(f"[train] not warm-started: the served model ({base_model_uri}) is a {manifest['model_kind']} "
                    f"with other model settings than this {cfg.model.kind}; training from scratch")
        return None
    domains = _item_domains(model)
    mismatch = len(saved) != len(variables) or any(
        s["item_domain"] != d or (d is None and list(v.shape) != s["shape"]) for s, v, d in zip(saved, variables, domains))
    if mismatch:
        logger.info(f"[train] not warm-started: the served model's weights ({base_model_uri}) do not match this "
                    "model's; training from scratch")
        return None
    weights = _read_npz(os.path.join(directory, WEIGHTS))
    old_vocabs, new_vocabs = read_vocabs(base_model_uri), feature_spec.read_vocabs(examples_root)
    counts = {"carried": 0, "added": 0, "dropped": 0}
    for i, (variable, domain) in enumerate(zip(variables, domains)):
        value = weights[f"v{i}"]
        if domain is not None:  # row 0 is padding (kept), rows 1.. are the vocabulary's items
            rows, carried = carry_rows(value[1:], old_vocabs[domain], variable.numpy()[1:], new_vocabs[domain])
            value = np.concatenate([value[:1], rows])
            for key in counts:
                counts[key] += carried[key]
        variable.assign(value)
    logger.info(f"[train] warm-started from {base_model_uri}: {counts['carried']} item rows carried over, "
                f"{counts['added']} added, {counts['dropped']} dropped; {len(variables)} weights")
    return counts


def warm_start_lightgcn(layer0: np.ndarray, user_ids: Sequence[str], vocab_x: Sequence[str],
                        vocab_y: Sequence[str], base_model_uri: str) -> Optional[Tuple[np.ndarray, Dict]]:
    """The generator LightGCN's layer-0 embeddings ([users, X items, Y items] rows) with every
    user and item the served model's generator knew carried over by raw id. Returns the rows
    and the counts per node type, or None when the bundle has no generator or another size."""
    path = os.path.join(bundle_dir(base_model_uri), GENERATOR)
    if not tf.io.gfile.exists(path):
        logger.info(f"[psg] not warm-started: {base_model_uri} has no generator embeddings")
        return None
    saved = _read_npz(path)
    if saved["layer0"].shape[1] != layer0.shape[1]:
        logger.info("[psg] not warm-started: the served generator has another embedding size")
        return None
    old_x, old_y = read_vocabs(base_model_uri)
    old_users, new_users = [str(u) for u in saved["user_ids"]], [str(u) for u in user_ids]
    old_items = [f"x:{i}" for i in old_x] + [f"y:{i}" for i in old_y]
    new_items = [f"x:{i}" for i in vocab_x] + [f"y:{i}" for i in vocab_y]
    rows, _ = carry_rows(saved["layer0"], [f"user:{u}" for u in old_users] + old_items, layer0,
                         [f"user:{u}" for u in new_users] + new_items)
    counts = {"users": id_counts(old_users, new_users), "items": id_counts(old_items, new_items)}
    logger.info(f"[psg] LightGCN warm-started from {base_model_uri}: users {counts['users']['carried']} carried, "
                f"{counts['users']['added']} added, {counts['users']['dropped']} dropped; items "
                f"{counts['items']['carried']} carried, {counts['items']['added']} added, "
                f"{counts['items']['dropped']} dropped")
    return rows, counts
