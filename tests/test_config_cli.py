"""Config loading/overrides and the CLI's short subcommands."""
import json

import pytest

from models import config
from pipeline import cli


def test_defaults_are_the_papers():
    cfg = config.PipelineConfig()
    assert (cfg.data.max_len, cfg.data.pseudo_len) == (20, 40)
    assert (cfg.model.embedding_dim, cfg.model.num_heads) == (128, 4)
    assert (cfg.train.batch_size, cfg.train.learning_rate) == (512, 8e-4)
    assert (cfg.train.lambda_t, cfg.train.lambda_a, cfg.train.noise_a, cfg.train.noise_b) == (0.001, 0.005, 0.8, 0.8)
    assert (cfg.lightgcn.num_layers, cfg.lightgcn.embedding_dim) == (3, 64)
    assert cfg.eval.num_negatives == 999


def test_file_then_overrides_and_round_trip(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"train": {"epochs": 7}, "model": {"cross_encoder": "mlp"}}))
    cfg = config.load_config(str(path), ["train.epochs=3", "lightgcn.pseudo_source=random"])
    assert cfg.train.epochs == 3 and cfg.model.cross_encoder == "mlp" and cfg.lightgcn.pseudo_source == "random"
    written = config.write_config(cfg, str(tmp_path / "run"))
    assert config.from_dict(json.load(open(written))) == cfg


@pytest.mark.parametrize("override", ["train.epoch=3", "nosection.x=1", "train.epochs"])
def test_unknown_fields_are_named(override):
    with pytest.raises(ValueError, match="train.epoch|nosection|must look like"):
        config.load_config(None, [override])


@pytest.mark.parametrize("field, allowed", [
    ("data.on_bad_rows", "'stop' or 'skip'"), ("lightgcn.pseudo_source", "'lightgcn' or 'random'"), ("model.kind", "one of ('i2vae', 'sasrec', "),
    ("model.cross_encoder", "'attention' or 'mlp'"), ("model.pooling", "one of ('mean', 'last', 'mean_last')"),
    ("train.epoch_selection", "'mean' or 'per_domain'"), ("train.reconstruction", "one of ('sampled_softmax', 'softmax', 'bce')"),
    ("train.distribute", "one of ('none', 'mirrored', 'multi_worker')"),
    ("eval.bless_against", "'popularity' or 'none'")])
def test_a_value_outside_its_choices_names_the_field_and_the_choices(field, allowed):
    with pytest.raises(ValueError) as err:
        config.load_config(None, [f'{field}="typo"'])
    assert str(err.value).startswith(f"{field} must be {allowed}") and str(err.value).endswith("found 'typo'")


def test_no_sampled_negatives_is_refused_when_the_config_loads():
    with pytest.raises(ValueError) as err:
        config.load_config(None, ["eval.num_negatives=0"])
    assert str(err.value) == "eval.num_negatives must be >= 1, found 0"


SUBCOMMANDS = ("demo", "run", "synthetic", "reproduce", "kubeflow", "bench")


def test_every_subcommand_has_help_with_defaults(capsys):
    for command in SUBCOMMANDS:
        with pytest.raises(SystemExit) as done:
            cli.main([command, "--help"])
        assert done.value.code == 0
        text = capsys.readouterr().out
        assert text.startswith(f"usage: i2vae {command}") and "--" in text
        if command in ("demo", "run", "kubeflow"):
            assert "--config" in text and "--set" in text and "--beam-arg" in text
    for command in ("serve", "recommend", "metadata", "config-doc"):  # the serving tools' own command lines
        with pytest.raises(SystemExit) as done:
            cli.main([command, "--help"])
        assert done.value.code == 0 and "usage:" in capsys.readouterr().out
    with pytest.raises(SystemExit) as done:
        cli.main(["--help"])
    top = capsys.readouterr().out
    for command in SUBCOMMANDS + ("serve", "recommend", "metadata", "config-doc"):
        assert command in top


def test_short_subcommands_for_real(tmp_path, capsys):
    out = tmp_path / "s.csv"
    assert cli.main(["synthetic", "--out", str(out), "--users", "40"]) == 0
    assert out.read_text().splitlines()[0] == "user_id,item_id,domain,timestamp"
    spec = tmp_path / "kfp" / "p.json"
    assert cli.main(["kubeflow", "--image", "img:1", "--pipeline-root", "gs://b/r", "--data", "gs://b/d",
                     "--output", str(spec), "--set", "train.epochs=4", "--beam-arg=--runner=FlinkRunner"]) == 0
    compiled = json.load(open(spec))
    assert compiled["runtimeConfig"]["parameters"]["epochs"] == {"intValue": "4"}
    assert "--runner=FlinkRunner" in json.dumps(compiled["pipelineSpec"]["deploymentSpec"])
    written = json.load(open(tmp_path / "kfp" / "config.json"))  # the resolved config beside the output
    assert written["train"]["epochs"] == 4 and written["beam_args"] == ["--runner=FlinkRunner"]
    results = tmp_path / "results"
    (results / "cloth_sport" / "runs").mkdir(parents=True)
    assert cli.main(["reproduce", "--pair", "cloth_sport", "--report-only", "--results", str(results)]) == 0
    assert (results / "cloth_sport.md").exists()
    capsys.readouterr()
    assert cli.main(["reproduce", "--pair", "cloth_sport", "--only", "nope", "--results", str(results)]) == 2
    assert capsys.readouterr().err.startswith("error: unknown config setting(s) ['nope'] in --only")


def test_configuration_reference_is_up_to_date():
    from pipeline import config_doc

    assert config_doc.main(["--check"]) == 0, "run: python -m pipeline.config_doc"
