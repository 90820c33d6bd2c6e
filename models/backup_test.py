"""Epoch backups (`train.backup_dir`): a training run killed after an epoch resumes at the
next one with the saved weights, optimizer state and validation history; and the training
code's fingerprint that keys the Trainer's cache."""
import json
import logging
import math
import os
import shutil

import pytest

from models import backup, config, evaluation, feature_spec, metrics
from models.trainer import RankingValidation, build_model, epoch_backup, read_canonical, train_model, training_dataset
from tests.epoch_runs import TP, T, write_examples

EPOCHS, STOP_AFTER = 3, 1


class Killed(Exception):
    """Stands in for the process dying right after an epoch's backup was written."""


def tiny_config(backup_dir, *extra):
    return config.load_config(overrides=[
        "model.embedding_dim=8", "model.latent_dim=4", "model.num_heads=2", "model.num_blocks=1",
        f"data.max_len={T}", f"data.pseudo_len={TP}", f"train.epochs={EPOCHS}", "train.batch_size=32",
        "train.learning_rate=0.02", "eval.num_negatives=20", "train.early_stopping_patience=9",
        "train.seed=3", "train.kl_anneal_epochs=3", f"train.backup_dir={json.dumps(backup_dir)}", *extra])


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory):
    """A run stopped by `Killed` right after epoch STOP_AFTER's backup (shared: the tests
    that go on from it work on copies of its backup)."""
    tmp_path = tmp_path_factory.mktemp("killed")
    root = write_examples(str(tmp_path / "examples"))
    cfg = tiny_config(str(tmp_path / "backup"))
    save = backup.EpochBackup.save

    def save_then_die(self, epoch, stopped):
        save(self, epoch, stopped)
        if epoch == STOP_AFTER:
            raise Killed()

    train, val = [feature_spec.split_pattern(root, "train")], [feature_spec.split_pattern(root, "eval")]
    backup.EpochBackup.save = save_then_die
    try:
        with pytest.raises(Killed):
            train_model(train, val, root, cfg, str(tmp_path / "logs"))
    finally:
        backup.EpochBackup.save = save
    with open(os.path.join(cfg.train.backup_dir, backup.STATE)) as f:
        state = json.load(f)
    return root, cfg, train, val, state


def copy_of_backup(cfg, tmp_path):
    """The same config with a copy of the killed run's backup (the folder is not part of
    the backup's identity, so the copy resumes like the original)."""
    shutil.copytree(cfg.train.backup_dir, tmp_path / "backup")
    return tiny_config(str(tmp_path / "backup"))


@pytest.mark.slow  # about a minute or more: run by `make test-slow`
def test_a_killed_run_resumes_at_the_next_epoch_and_finishes(killed_run, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    root, cfg, train, val, state = killed_run
    cfg = copy_of_backup(cfg, tmp_path)
    assert state["epoch"] == STOP_AFTER and not state["stopped"]
    assert sorted(os.listdir(cfg.train.backup_dir)) == [f"epoch-{STOP_AFTER}", backup.STATE]  # older epochs removed
    model, history, _ = train_model(train, val, root, cfg, str(tmp_path / "logs2"))
    assert f"resumed from the backup of epoch {STOP_AFTER}" in caplog.text
    assert history["resumed_at"] == [STOP_AFTER] and history["epochs_run"] == EPOCHS
    assert history["seconds_before_resume"] == pytest.approx(state["seconds"], abs=0.1) and state["seconds"] > 0
    assert [e["epoch"] for e in history["history"]] == list(range(EPOCHS + 1))
    saved = state["validation"]["history"]
    assert json.dumps(history["history"][:STOP_AFTER + 1], default=float) == json.dumps(saved, default=float)
    steps = math.ceil(len(read_canonical(train)[1]) / cfg.train.batch_size)
    assert int(model.optimizer.iterations.numpy()) == EPOCHS * steps  # Adam's step went on, not restarted
    # the returned model holds the selected epoch's weights, whichever side of the kill it was on
    rows = read_canonical(val)[1]
    negatives = metrics.candidate_matrix(rows, (40, 30), cfg.eval.num_negatives, cfg.eval.seed)
    got = evaluation.evaluate_rows(evaluation.keras_scorer(model), rows, negatives, T, TP, [10])[cfg.eval.select_on]
    ndcg = sum(got[d]["all"]["NDCG@10"] for d in metrics.DOMAINS) / 2
    # at the decoder weight validation kept after training (the default grid); at weight 1
    # the selected epoch scores as it did during training
    calibration = history["decoder_weight"]
    assert calibration["val_ndcg"]["1.0"] == pytest.approx(history["history"][history["best_epoch"]]["val_ndcg"],
                                                            abs=1e-6)
    assert ndcg == pytest.approx(calibration["val_ndcg"][str(calibration["selected"])], abs=1e-6)


@pytest.mark.slow  # trains the killed run (killed_run); `make test-slow`
def test_restored_weights_and_optimizer_are_the_saved_epochs(killed_run):
    """A fresh model restored from the backup scores validation exactly as the model did at
    the saved epoch, and Adam's step count is that epoch's."""
    root, cfg, train, val, state = killed_run
    records, train_rows = read_canonical(train)
    rows = read_canonical(val)[1]
    model = build_model((40, 30), cfg)
    validation = RankingValidation(rows, (40, 30), cfg.data, cfg.eval, cfg.train.early_stopping_patience)
    run_backup = epoch_backup(cfg, validation, len(train_rows))
    run_backup.set_model(model)
    probe = training_dataset(records[:2], cfg).take(1).get_single_element()
    assert run_backup.restore(probe)["epoch"] == STOP_AFTER
    steps = math.ceil(len(train_rows) / cfg.train.batch_size)
    assert int(model.optimizer.iterations.numpy()) == STOP_AFTER * steps
    got = evaluation.evaluate_rows(evaluation.keras_scorer(model), rows, validation.negatives["val"], T, TP,
                                   [10])[cfg.eval.select_on]
    saved = state["validation"]["history"][STOP_AFTER]["metrics"]
    for d in metrics.DOMAINS:
        assert got[d]["all"]["NDCG@10"] == pytest.approx(saved[d]["all"]["NDCG@10"], abs=1e-6)
    assert validation.history == state["validation"]["history"] and validation.resumed_at == [STOP_AFTER]


@pytest.mark.slow  # trains the killed run (killed_run); `make test-slow`
def test_a_backup_of_another_config_is_refused_naming_the_field(killed_run, tmp_path):
    root, cfg, train, val, _ = killed_run
    other = tiny_config(cfg.train.backup_dir, "train.learning_rate=0.01")
    with pytest.raises(ValueError, match=r"written by another run: train\.learning_rate \(0\.02 in the backup, "
                                         r"0\.01 now\)\. Delete that folder"):
        train_model(train, val, root, other, str(tmp_path / "logs3"))


def test_remove_backup_removes_only_the_backups_files(tmp_path):
    folder = tmp_path / "backup"
    (folder / "epoch-3").mkdir(parents=True)
    (folder / "epoch-3" / "ckpt.index").write_text("x")
    (folder / backup.STATE).write_text("{}")
    (folder / "notes.txt").write_text("the user's")
    backup.remove_backup(str(folder))
    assert os.listdir(folder) == ["notes.txt"]
    (folder / "notes.txt").unlink()
    (folder / backup.STATE).write_text("{}")
    backup.remove_backup(str(folder))
    assert not folder.exists()


def test_code_fingerprint_follows_the_training_code_not_its_tests(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "i2vae.py").write_text("LATENTS = 6\n")
    (tmp_path / "models" / "i2vae_test.py").write_text("def test(): pass\n")
    before = backup.code_fingerprint(root=str(tmp_path))
    (tmp_path / "models" / "i2vae_test.py").write_text("def test(): assert True\n")
    assert backup.code_fingerprint(root=str(tmp_path)) == before  # tests do not train anything
    (tmp_path / "models" / "i2vae.py").write_text("LATENTS = 7\n")
    assert backup.code_fingerprint(root=str(tmp_path)) != before  # a changed model must miss the Trainer cache
