"""Shared fixture: a tiny examples root (vocabularies + generator) for the tiny models of
tests/tiny_models.py, used by suites in tests/ and beside the model code."""
import pytest

from tests.tiny_models import write_examples_root


@pytest.fixture(scope="session")
def examples_root(tmp_path_factory):
    return write_examples_root(tmp_path_factory.mktemp("examples"))
