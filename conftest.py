"""Shared fixtures: a tiny examples root (vocabularies + generator) for the tiny models of
tests/tiny_models.py, and the tiny i2VAE exported once for the serving suites (each copies
it, so a suite that adds a version changes only its own copy)."""
import shutil

import pytest

from tests.tiny_models import export_tiny_model, write_examples_root


@pytest.fixture(scope="session")
def examples_root(tmp_path_factory):
    return write_examples_root(tmp_path_factory.mktemp("examples"))


@pytest.fixture(scope="session")
def tiny_serving_model(examples_root, tmp_path_factory):
    """A TF Serving model base path holding the tiny i2VAE as version 1."""
    return export_tiny_model(examples_root, tmp_path_factory.mktemp("tiny_serving_model") / "i2vae")


@pytest.fixture(scope="module")
def base_path(tiny_serving_model, tmp_path_factory):
    """The serving suite's own copy of the tiny model's base path (a suite may add versions)."""
    return str(shutil.copytree(tiny_serving_model, tmp_path_factory.mktemp("serving") / "i2vae"))
