"""The layers import one way (docs/architecture.md): a new import against them fails here.

    models/      -> models (config is models/config.py, a leaf every layer may import)
    components/  -> models, and the component's own folder
    serving/     -> models, serving
    pipeline/    -> everything: only the pipeline wires the layers together

Every import counts, also one inside a function, which would hide a cycle from the reader.
"""
import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAYERS = ("models", "components", "serving", "pipeline")


def project_imports(path):
    """(line, imported module) for every import of a project module in the file."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            if name.split(".")[0] in LAYERS:
                yield node.lineno, name


def allowed(source: str, imported: str) -> bool:
    """May the module at repo path `source` import the dotted module `imported`?"""
    layer, top = source.split(os.sep)[0], imported.split(".")[0]
    if layer == "pipeline":
        return True
    if layer == "models":
        return top == "models"
    if layer == "serving":
        return top in ("models", "serving")
    if layer == "components":
        own = ".".join(source.split(os.sep)[:2])  # components.<folder>
        return top == "models" or imported == own or imported.startswith(own + ".") or imported == "components"
    return True


def violations(root=ROOT):
    found = []
    for layer in LAYERS:
        for folder, _, files in os.walk(os.path.join(root, layer)):
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    source = os.path.relpath(path, root)
                    found += [f"{source}:{line}: imports {imported}" for line, imported in project_imports(path)
                              if not allowed(source, imported)]
    return found


def test_layers_import_one_way():
    assert violations() == []


@pytest.mark.parametrize("source, imported, ok", [
    ("models/trainer.py", "pipeline.config", False), ("models/trainer.py", "serving.export", False),
    ("models/trainer.py", "models.export", True), ("components/ingest/logic.py", "models.seeding", True),
    ("components/pseudo_sequences/executor.py", "components.ingest.logic", False),
    ("components/ingest/component.py", "components.ingest.executor", True),
    ("serving/server.py", "pipeline.cli", False), ("pipeline/cli.py", "components.ingest.logic", True)])
def test_the_rules(source, imported, ok):
    assert allowed(source.replace("/", os.sep), imported) is ok


def test_a_function_level_import_counts(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "bad.py").write_text("def f():\n    from pipeline import cli\n")
    assert violations(str(tmp_path)) == [f"models{os.sep}bad.py:2: imports pipeline", f"models{os.sep}bad.py:2: "
                                         "imports pipeline.cli"]
