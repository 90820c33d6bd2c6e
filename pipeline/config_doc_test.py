"""docs/configuration.md is generated from the config dataclasses."""


def test_configuration_reference_is_up_to_date():
    from pipeline import config_doc

    assert config_doc.main(["--check"]) == 0, "run: python -m pipeline.config_doc"
