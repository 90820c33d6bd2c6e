"""Epoch backups: a training run killed part way resumes from its last finished epoch.

Why: one i2VAE run on the real data can take hours on 2 CPU cores, and `i2vae reproduce`
only skips runs that finished. With `train.backup_dir` set, every
finished epoch leaves the model and optimizer state (a TF checkpoint), the weights of the
best epochs so far and the validation history in that folder; the next run with the same
config and data starts at the next epoch instead of epoch 1.

What a resumed run keeps: weights, Adam moments and step count (so the KL warm-up goes on
where it was), early-stopping state, best weights and the per-epoch history, and the batch
order of the epochs still to come. What it does not: dropout and posterior-sampling noise
restart from the seed, so a resumed run is a valid run of the config but not bit-identical
to an unbroken one. The result records the epochs it resumed at (`resumed_at`) and the
training time spent before the last resume (`seconds_before_resume`, counted into
`i2vae reproduce`'s `seconds`).
"""
from __future__ import annotations

import glob
import hashlib
import io
import json
import logging
import os
import time
from typing import Dict, List, Optional

import numpy as np
import tensorflow as tf

from models.data import write_json_atomically

logger = logging.getLogger(__name__)

STATE = "state.json"
_VALIDATION_FIELDS = ("history", "best", "best_epoch", "wait", "untrained", "best_by_domain",
                      "best_epoch_by_domain", "resumed_at")
_WEIGHT_SLOTS = ("best", "x", "y")  # validation.best_weights and best_weights_by_domain["x" / "y"]


def _differences(saved: Dict, current: Dict, prefix: str = "") -> List[str]:
    """Dotted names of the fields whose values differ (for the mismatch message)."""
    out = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key} ({a!r} in the backup, {b!r} now)")
    return out


# what the Trainer executes besides its config: TFX's cache key holds `run_fn` as a name,
# not its code, and a backup must not resume a run of other code either
TRAINER_CODE = ("models/*.py",)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def code_fingerprint(patterns=TRAINER_CODE, root: str = ROOT) -> str:
    """SHA-256 over the contents of the matching source files (tests excluded), in path order."""
    digest = hashlib.sha256()
    paths = sorted({p for pattern in patterns for p in glob.glob(os.path.join(root, pattern))})
    for path in paths:
        if path.endswith("_test.py"):
            continue
        digest.update(os.path.relpath(path, root).encode() + b"\0")
        with open(path, "rb") as f:
            digest.update(f.read() + b"\0")
    return digest.hexdigest()


class EpochBackup(tf.keras.callbacks.Callback):
    """Writes the backup after every epoch; `restore` loads it before `fit`.

    Must come after `RankingValidation` in the callback list, so the epoch's validation
    result and best weights are in what it saves. `identity` (the config without the
    backup folder, and the training data's size) must match for a backup to be used:
    a backup of another config is an error naming the fields, never silently reused.
    """

    def __init__(self, directory: str, validation, identity: Dict):
        super().__init__()
        self.directory, self.validation, self.identity = directory, validation, identity
        self._supports_tf_logs = True

    # ---------------------------------------------------------------- save
    def on_epoch_end(self, epoch, logs=None):
        self.save(epoch + 1, bool(self.model.stop_training))

    def save(self, epoch: int, stopped: bool) -> None:
        """Checkpoint and weights into `epoch-<n>/`, then `state.json` names it (written last
        and atomically, so a kill mid-save leaves the previous epoch's backup in charge)."""
        name = f"epoch-{epoch}"
        folder = os.path.join(self.directory, name)
        tf.io.gfile.makedirs(folder)
        tf.train.Checkpoint(model=self.model, optimizer=self.model.optimizer).write(os.path.join(folder, "ckpt"))
        sets, slots = [], {}
        for slot, weights in zip(_WEIGHT_SLOTS, self._weight_sets()):
            if weights is None:
                slots[slot] = None
                continue
            index = next((i for i, w in enumerate(sets) if w is weights), None)
            if index is None:
                sets.append(weights)
                index = len(sets) - 1
            slots[slot] = index
        buffer = io.BytesIO()
        np.savez(buffer, **{f"set{i}_{j}": w for i, ws in enumerate(sets) for j, w in enumerate(ws)})
        with tf.io.gfile.GFile(os.path.join(folder, "best_weights.npz"), "wb") as f:
            f.write(buffer.getvalue())
        v = self.validation
        state = {"epoch": epoch, "folder": name, "stopped": stopped, "identity": self.identity,
                 "seconds": v.seconds_before + time.time() - v.start,  # training time up to this backup
                 "weights": {"slots": slots, "sizes": [len(ws) for ws in sets]},
                 "validation": {k: getattr(self.validation, k) for k in _VALIDATION_FIELDS}}
        write_json_atomically(os.path.join(self.directory, STATE), state)
        for old in tf.io.gfile.glob(os.path.join(self.directory, "epoch-*")):
            if os.path.basename(old.rstrip("/")) != name:
                tf.io.gfile.rmtree(old)

    def _weight_sets(self):
        v = self.validation
        return v.best_weights, v.best_weights_by_domain["x"], v.best_weights_by_domain["y"]

    # ------------------------------------------------------------- restore
    def restore(self, probe: Dict) -> Optional[Dict]:
        """Loads the backup, if there is one, into the model, its optimizer and the
        validation callback. `probe` (a small training batch) creates every variable that
        training uses before the checkpoint is read. Returns the saved state (its `epoch`
        is fit's `initial_epoch`; `stopped` means training had ended) or None when there
        is no backup."""
        path = os.path.join(self.directory, STATE)
        if not tf.io.gfile.exists(path):
            return None
        with tf.io.gfile.GFile(path) as f:
            state = json.load(f)
        differ = _differences(state["identity"], self.identity)
        if differ:
            raise ValueError(f"the training backup in {self.directory} was written by another run: "
                             + "; ".join(differ) + ". Delete that folder or set another train.backup_dir.")
        with self.model.distribute_strategy.scope():
            self.model.losses_and_terms(probe)
            self.model.optimizer.build(self.model.trainable_variables)
        folder = os.path.join(self.directory, state["folder"])
        status = tf.train.Checkpoint(model=self.model, optimizer=self.model.optimizer).read(os.path.join(folder, "ckpt"))
        status.assert_existing_objects_matched()
        with tf.io.gfile.GFile(os.path.join(folder, "best_weights.npz"), "rb") as f:
            arrays = np.load(io.BytesIO(f.read()))
            sets = [[arrays[f"set{i}_{j}"] for j in range(n)] for i, n in enumerate(state["weights"]["sizes"])]
        v = self.validation
        for field in _VALIDATION_FIELDS:
            setattr(v, field, state["validation"][field])
        v.resumed_at = list(v.resumed_at) + [state["epoch"]]
        v.seconds_before = state["seconds"]
        slots = state["weights"]["slots"]
        pick = {s: (sets[i] if i is not None else None) for s, i in slots.items()}
        v.best_weights = pick["best"]
        v.best_weights_by_domain = {"x": pick["x"], "y": pick["y"]}
        logger.info(f"[train] resumed from the backup of epoch {state['epoch']} in {self.directory}"
              f"{' (training had ended)' if state['stopped'] else ''}")
        return state


def remove_backup(directory: str) -> None:
    """Removes a backup once its run's outputs are written: only the files a backup
    writes, then the folder if that left it empty."""
    for path in tf.io.gfile.glob(os.path.join(directory, "epoch-*")):
        tf.io.gfile.rmtree(path)
    for name in (STATE, STATE + ".partial"):
        if tf.io.gfile.exists(os.path.join(directory, name)):
            tf.io.gfile.remove(os.path.join(directory, name))
    if tf.io.gfile.isdir(directory) and not tf.io.gfile.listdir(directory):
        tf.io.gfile.rmtree(directory)
