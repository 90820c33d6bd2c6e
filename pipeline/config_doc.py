"""Generates docs/configuration.md from the config dataclasses, so the reference cannot drift.

    python -m pipeline.config_doc            # rewrites docs/configuration.md
    python -m pipeline.config_doc --check    # exit 1 if the file is out of date (the test does this)

A field's description is its entry in the class docstring's `Args:` section, else the
comment at the end of its line in `models/config.py`.
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import os
import re
import sys
from typing import Dict

from models import config

DOC_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "configuration.md")
SECTIONS = [("", config.PipelineConfig), ("data", config.DataConfig), ("lightgcn", config.LightGCNConfig),
            ("model", config.ModelConfig), ("train", config.TrainConfig), ("eval", config.EvalConfig),
            ("serving", config.ServingConfig)]


def _docstring_args(cls) -> Dict[str, str]:
    doc = inspect.getdoc(cls) or ""
    if "Args:" not in doc:
        return {}
    out, current = {}, None
    for line in doc.split("Args:", 1)[1].splitlines():
        m = re.match(r"^\s{2}([\w /]+):\s*(.*)$", line)
        if m:
            names = [n.strip() for n in m.group(1).split("/")]
            current = names
            for n in names:
                out[n] = m.group(2).strip()
        elif current and line.strip():
            for n in current:
                out[n] += " " + line.strip()
    return out


def _line_comments(cls) -> Dict[str, str]:
    """Trailing comments of field lines, and comment lines right above a field."""
    out, above = {}, []
    for line in inspect.getsource(cls).splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            above.append(stripped.lstrip("# "))
            continue
        m = re.match(r"^\s+(\w+):[^#=]*=[^#]*?(?:#\s*(.*))?$", line)
        if m and not stripped.startswith(("def ", "return")):
            text = " ".join(above + ([m.group(2).strip()] if m.group(2) else []))
            if text:
                out[m.group(1)] = text
        above = []
    return out


def _default(field) -> str:
    if field.default is not dataclasses.MISSING:
        value = field.default
    else:
        value = field.default_factory()
    if dataclasses.is_dataclass(value):
        return "(section)"
    return f"`{json.dumps(value)}`"


def render() -> str:
    lines = ["# Configuration reference", "",
             "Generated from `models/config.py` by `python -m pipeline.config_doc`; do not edit by hand.", "",
             "Every run writes its resolved configuration to `config.json` in its output directory. Values come "
             "from the defaults below (the paper's where it gives one), then `--config FILE.json` (nested like "
             "the sections), then `--set section.field=value` (the value is parsed as JSON when it can be). "
             "Unknown fields are an error that names the field.", ""]
    for section, cls in SECTIONS:
        title = f"`{section}`" if section else "top level"
        lines += [f"## {title}: {cls.__name__}", ""]
        summary = (inspect.getdoc(cls) or "").split("\n\n")[0].replace("\n", " ")
        lines += [summary, "", "| field | default | description |", "|---|---|---|"]
        args, comments = _docstring_args(cls), _line_comments(cls)
        for field in dataclasses.fields(cls):
            default = _default(field)
            if default == "(section)":
                continue
            name = f"{section}.{field.name}" if section else field.name
            text = args.get(field.name) or comments.get(field.name, "")
            lines.append(f"| `{name}` | {default} | {text.replace('|', '/')} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipeline.config_doc", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="fail if docs/configuration.md is out of date")
    args = p.parse_args(argv)
    text = render()
    if args.check:
        current = open(DOC_PATH).read() if os.path.exists(DOC_PATH) else ""
        if current != text:
            print(f"{DOC_PATH} is out of date: run python -m pipeline.config_doc", file=sys.stderr)
            return 1
        return 0
    os.makedirs(os.path.dirname(DOC_PATH), exist_ok=True)
    with open(DOC_PATH, "w") as f:
        f.write(text)
    print(DOC_PATH)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
