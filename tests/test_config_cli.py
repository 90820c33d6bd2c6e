"""Config loading/overrides and the CLI's short subcommands."""
import json

import pytest

from pipeline import cli
from pipeline import config as C


def test_defaults_are_the_papers():
    cfg = C.PipelineConfig()
    assert (cfg.data.max_len, cfg.data.pseudo_len) == (20, 40)
    assert (cfg.model.embedding_dim, cfg.model.num_heads) == (128, 4)
    assert (cfg.train.batch_size, cfg.train.learning_rate) == (512, 8e-4)
    assert (cfg.train.lambda_t, cfg.train.lambda_a, cfg.train.noise_a, cfg.train.noise_b) == (0.001, 0.005, 0.8, 0.8)
    assert (cfg.lightgcn.num_layers, cfg.lightgcn.embedding_dim) == (3, 64)
    assert cfg.eval.num_negatives == 999


def test_file_then_overrides_and_round_trip(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"train": {"epochs": 7}, "model": {"cross_encoder": "mlp"}}))
    cfg = C.load_config(str(path), ["train.epochs=3", "lightgcn.user_embedding=fold_in"])
    assert cfg.train.epochs == 3 and cfg.model.cross_encoder == "mlp" and cfg.lightgcn.user_embedding == "fold_in"
    written = C.write_config(cfg, str(tmp_path / "run"))
    assert C.from_dict(json.load(open(written))) == cfg


@pytest.mark.parametrize("override", ["train.epoch=3", "nosection.x=1", "train.epochs"])
def test_unknown_fields_are_named(override):
    with pytest.raises(ValueError, match="train.epoch|nosection|must look like"):
        C.load_config(None, [override])


def test_cli_help_and_synthetic(tmp_path, capsys):
    for command in ("demo", "run", "synthetic"):
        with pytest.raises(SystemExit) as done:
            cli.main([command, "--help"])
        assert done.value.code == 0
        assert "--out" in capsys.readouterr().out
    out = tmp_path / "s.csv"
    assert cli.main(["synthetic", "--out", str(out), "--users", "40"]) == 0
    assert out.read_text().splitlines()[0] == "user_id,item_id,domain,timestamp"
