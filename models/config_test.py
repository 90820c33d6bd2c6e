"""Config loading and overrides: the paper's defaults, files, `--set`, and errors naming the field."""
import dataclasses
import json
import pathlib
import re

import pytest

from models import config


def test_defaults_are_the_papers():
    cfg = config.PipelineConfig()
    assert (cfg.data.max_len, cfg.data.pseudo_len) == (20, 40)
    assert (cfg.model.embedding_dim, cfg.model.num_heads) == (128, 4)
    assert cfg.train.batch_size == 512
    # the learning rate and the generator's size are the selected candidate's; the paper's model restores the paper's
    paper = config.load_config(None, list(config.PAPER_MODEL))
    assert (cfg.train.learning_rate, paper.train.learning_rate) == (2e-3, 8e-4)
    assert (cfg.train.lambda_t, cfg.train.lambda_a, cfg.train.noise_a, cfg.train.noise_b) == (0.001, 0.005, 0.8, 0.8)
    assert (cfg.lightgcn.num_layers, cfg.lightgcn.embedding_dim, paper.lightgcn.embedding_dim) == (3, 128, 64)
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
    ("data.on_bad_rows", "'stop' or 'skip'"), ("lightgcn.pseudo_source", "one of ('lightgcn', 'random', 'none')"), ("model.kind", "one of ('i2vae', 'sasrec', "),
    ("model.cross_encoder", "'attention' or 'mlp'"), ("model.pooling", "one of ('mean', 'last', 'mean_last')"),
    ("train.epoch_selection", "'mean' or 'per_domain'"), ("train.reconstruction", "one of ('sampled_softmax', 'softmax', 'bce')"),
    ("train.distribute", "one of ('none', 'mirrored', 'multi_worker')"),
    ("eval.bless_against", "'popularity' or 'none'")])
def test_a_value_outside_its_choices_names_the_field_and_the_choices(field, allowed):
    with pytest.raises(ValueError) as err:
        config.load_config(None, [f'{field}="typo"'])
    assert str(err.value).startswith(f"{field} must be {allowed}") and str(err.value).endswith("found 'typo'")


def test_only_the_i2vae_reads_pseudo_sequences_so_only_its_run_trains_a_generator():
    assert config.load_config(None, []).pseudo_sequences() == "lightgcn"
    assert config.load_config(None, ['lightgcn.pseudo_source="random"']).pseudo_sequences() == "random"
    for kind in ("sasrec", "lightgcn", "popularity"):
        assert config.load_config(None, [f'model.kind="{kind}"']).pseudo_sequences() == "none"


def test_no_sampled_negatives_is_refused_when_the_config_loads():
    with pytest.raises(ValueError) as err:
        config.load_config(None, ["eval.num_negatives=0"])
    assert str(err.value) == "eval.num_negatives must be >= 1, found 0"


def test_xla_with_the_causal_encoder_is_refused_when_the_config_loads():
    """The causal i2VAE's positions are data-dependent, which XLA cannot compile: say so at load."""
    with pytest.raises(ValueError) as err:
        config.load_config(None, ["train.jit_compile=true"])
    assert str(err.value).startswith('train.jit_compile=true cannot compile the causal i2VAE (model.encoder="causal"')
    assert config.load_config(None, ["train.jit_compile=true", 'model.encoder="bidirectional"']).train.jit_compile
    assert config.load_config(None, ["train.jit_compile=true", 'model.kind="sasrec"']).train.jit_compile


def test_every_setting_is_read_by_the_code():
    """A setting nothing reads is a promise the product does not keep (three tuning-range fields were)."""
    root = pathlib.Path(__file__).resolve().parent.parent
    code = "".join(path.read_text() for folder in ("components", "experiments", "models", "pipeline", "serving")
                   for path in (root / folder).rglob("*.py")
                   if not path.name.endswith("_test.py") and path != root / "models" / "config.py")
    sections = [section for section in dataclasses.fields(config.PipelineConfig)
                if dataclasses.is_dataclass(section.default_factory)]
    unread = [f"{section.name}.{setting.name}" for section in sections
              for setting in dataclasses.fields(section.default_factory) if not re.search(rf"\b{setting.name}\b", code)]
    assert unread == []
