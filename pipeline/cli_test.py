"""The `i2vae` command in-process: every subcommand's help, and the short subcommands for real."""
import json

import pytest

from pipeline import cli

SUBCOMMANDS = ("demo", "run", "synthetic", "reproduce", "kubeflow", "bench", "compare")


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
