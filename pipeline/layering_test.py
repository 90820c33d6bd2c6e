"""The layers import one way (docs/architecture.md): a new import against them fails here.

    models/      -> models (config is models/config.py, a leaf every layer may import)
    components/  -> models, and the component's own folder
    serving/     -> models, serving
    pipeline/    -> models, components, serving, pipeline: it wires the layers together
    experiments/ -> everything but tests: the reproduction study and the benchmarks
    tests/       -> everything: end-to-end suites and the helpers tests share
A unit test (`*_test.py`) may also import the shared test helpers in tests/.

Every import counts, also one inside a function (which would hide a cycle from the reader)
and a relative one.
"""
import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAYERS = ("models", "components", "serving", "pipeline", "experiments", "tests")
BELOW_PIPELINE = ("models", "components", "serving", "pipeline")


def project_imports(path, root=ROOT):
    """(line, imported module) for every import of a project module in the file."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative: resolved against the file's own package
                package = os.path.relpath(os.path.dirname(path), root).split(os.sep)
                base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
                module = ".".join(base + ([module] if module else []))
            names = [module] + [f"{module}.{alias.name}" for alias in node.names]
        for name in names:
            if name.split(".")[0] in LAYERS:
                yield node.lineno, name


def allowed(source: str, imported: str) -> bool:
    """May the module at repo path `source` import the dotted module `imported`?"""
    layer, top = source.split(os.sep)[0], imported.split(".")[0]
    if top == "tests" and layer != "tests":
        return source.endswith("_test.py")
    if layer in ("experiments", "tests"):
        return True
    if layer == "pipeline":
        return top in BELOW_PIPELINE
    if layer == "models":
        return top == "models"
    if layer == "serving":
        return top in ("models", "serving")
    if layer == "components":
        own = ".".join(source.split(os.sep)[:2])  # components.<folder>
        return top == "models" or imported == own or imported.startswith(own + ".") or imported == "components"
    return True


def violations(root=ROOT):
    """Every import against the rules, and how many files were read."""
    found, scanned = [], 0
    for layer in LAYERS:
        for folder, _, files in os.walk(os.path.join(root, layer)):
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    source = os.path.relpath(path, root)
                    scanned += 1
                    found += [f"{source}:{line}: imports {imported}" for line, imported in project_imports(path, root)
                              if not allowed(source, imported)]
    return found, scanned


def test_layers_import_one_way():
    found, scanned = violations()
    assert found == [] and scanned > 100, (found, scanned)


@pytest.mark.parametrize("source, imported, ok", [
    ("models/trainer.py", "pipeline.config", False), ("models/trainer.py", "serving.export", False),
    ("models/trainer.py", "models.export", True), ("components/ingest/logic.py", "models.seeding", True),
    ("components/pseudo_sequences/executor.py", "components.ingest.logic", False),
    ("components/ingest/component.py", "components.ingest.executor", True),
    ("serving/server.py", "pipeline.cli", False), ("pipeline/cli.py", "components.ingest.logic", True),
    ("pipeline/cli.py", "experiments.commands", False), ("pipeline/local_runner.py", "tests.tiny_models", False),
    ("experiments/reproduce.py", "pipeline.local_runner", True), ("experiments/bench.py", "tests.tiny_models", False),
    ("experiments/bench_test.py", "tests.reproduce_testing", True), ("models/i2vae_test.py", "tests.tiny_models", True),
    ("tests/test_serving.py", "experiments.bench", True)])
def test_the_rules(source, imported, ok):
    assert allowed(source.replace("/", os.sep), imported) is ok


def test_a_function_level_import_counts(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "bad.py").write_text("def f():\n    from pipeline import cli\n")
    assert violations(str(tmp_path))[0] == [f"models{os.sep}bad.py:2: imports pipeline",
                                            f"models{os.sep}bad.py:2: imports pipeline.cli"]


def test_a_relative_import_counts(tmp_path):
    (tmp_path / "serving").mkdir()
    (tmp_path / "serving" / "bad.py").write_text("from ..pipeline import cli\nfrom . import client\n")
    assert violations(str(tmp_path)) == ([f"serving{os.sep}bad.py:1: imports pipeline",
                                          f"serving{os.sep}bad.py:1: imports pipeline.cli"], 1)
