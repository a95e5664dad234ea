"""Write docs/configuration.md, the configuration reference, from the config schema.

workflow/schemas/config.schema.yaml is the one source of the configuration: every key's type,
range, default and description live there, and every run validates its config against it.
This script renders that file as a page people can read, so that the page never tells a
different story from the schema. Edit the schema, then rerun:

    .venv/bin/python docs/config_reference.py           # rewrite docs/configuration.md
    .venv/bin/python docs/config_reference.py --check   # exit 1, with a diff, if the page is stale

tests/test_config_docs.py runs the check.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
PAGE = ROOT / "docs" / "configuration.md"
COMMAND = ".venv/bin/python docs/config_reference.py"

INTRO = f"""\
# Configuration reference

A run reads `config/config.yaml` (the real experiment), and a config file given with
`--configfile` is laid over it key by key: `config/demo.yaml` (the offline demo) and
`.test/config.yaml` (the workflow tests) set only what differs. The merged config is checked
against `workflow/schemas/config.schema.yaml` at the start of every run, so an unknown key, a
wrong type or an out-of-range value stops the run before any job, and a key left unset takes
the default listed here. To change a key for one run, use `--config` for top-level keys
(`--config seed=1 outdir=results/seed1`) and nested text values
(`--config 'model={{source: tiny}}'`); Snakemake reads values inside `{{...}}` as text, so for a
nested number, boolean or list write the keys to a small YAML file and add it:
`snakemake --cores 4 --configfile my.yaml`. This page is generated from the schema: edit the
descriptions there, not here, then run `{COMMAND}`.
"""


def children(node: dict, path: str = ""):
    """The direct keys of an object node: (dotted path, schema node). An experiment's keys
    (``additionalProperties``) appear under ``experiments.<name>``."""
    prefix = f"{path}." if path else ""
    for name, child in (node.get("properties") or {}).items():
        yield prefix + name, child
    if isinstance(node.get("additionalProperties"), dict):
        yield from children(node["additionalProperties"], f"{prefix}<name>")


def schema_keys(node: dict, path: str = ""):
    """Every key the schema defines, at every level, depth first: (dotted path, schema node)."""
    for key, child in children(node, path):
        yield key, child
        yield from schema_keys(child, key)


def value(v) -> str:
    """A default or an allowed value, as it would be written in the YAML config."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return re.sub(r"e([-+])0*(\d)", r"e\1\2", repr(v))  # 5e-06 -> 5e-6
    if isinstance(v, str):
        return v if re.fullmatch(r"[\w./-]+", v) else json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {value(x)}" for k, x in v.items()) + "}"
    return str(v)


BOUNDS = {"minimum": "at least", "exclusiveMinimum": "above", "maximum": "at most", "exclusiveMaximum": "below"}
PLURAL = {"string": "strings", "integer": "integers", "number": "numbers", "boolean": "booleans", "object": "objects"}


def kind(node: dict) -> str:
    """The type of a key in words: its JSON type(s), allowed values and bounds."""
    if "anyOf" in node:
        return " or ".join(kind(option) for option in node["anyOf"])
    if "enum" in node:
        return "one of " + ", ".join(f"`{value(v)}`" for v in node["enum"])
    types = node.get("type", [])
    types = [types] if isinstance(types, str) else types
    words = []
    for t in types:
        if t == "array":
            items = node.get("items", {})
            if "enum" in items:
                words.append("a list of " + ", ".join(f"`{value(v)}`" for v in items["enum"]))
            else:
                words.append("a list of " + PLURAL.get(items.get("type"), "values"))
        else:
            words.append(t)
    text = " or ".join(words)
    bounds = [f"{word} {value(node[b])}" for b, word in BOUNDS.items() if b in node]
    if "pattern" in node:
        bounds.append(f"must match `{node['pattern']}`")
    return ", ".join([text, *bounds])


def description(node: dict) -> str:
    return " ".join(str(node.get("description", "")).split())


def entry(key: str, node: dict, required: bool) -> list[str]:
    if required:
        default = "required, no default"
    else:
        default = f"default `{value(node['default'])}`" if "default" in node else "optional, no default"
    return [f"- **`{key}`** · {kind(node)} · {default}", "", f"  {description(node)}", ""]


def is_group(node: dict) -> bool:
    return "properties" in node or isinstance(node.get("additionalProperties"), dict)


def group(key: str, node: dict, level: int) -> list[str]:
    """A heading for an object key, its description, its plain keys, then its objects."""
    lines = [f"{'#' * level} `{key}`", "", description(node), ""]
    required = set(node.get("required", []))
    keys = dict(children(node, key))
    for child_key, child in keys.items():
        if not is_group(child):
            lines += entry(child_key, child, child_key.rsplit(".", 1)[-1] in required)
    for child_key, child in keys.items():
        if is_group(child):
            lines += group(child_key, child, min(level + 1, 6))
    return lines


def render(schema: dict) -> str:
    top = dict(children(schema))
    groups = [key for key, node in top.items() if is_group(node)]
    contents = ", ".join(["[Top-level keys](#top-level-keys)", *(f"[`{key}`](#{key})" for key in groups)])
    lines = [INTRO, f"Sections: {contents}.", "", "## Top-level keys", ""]
    for key, node in top.items():
        if not is_group(node):
            lines += entry(key, node, key in schema.get("required", []))
    for key in groups:
        lines += group(key, top[key], 2)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/configuration.md is out of date")
    args = parser.parse_args(argv)
    text = render(yaml.safe_load(SCHEMA.read_text()))
    if not args.check:
        PAGE.write_text(text)
        print(f"wrote {PAGE.relative_to(ROOT)}")
        return 0
    current = PAGE.read_text() if PAGE.exists() else ""
    if current == text:
        return 0
    diff = difflib.unified_diff(current.splitlines(), text.splitlines(), "docs/configuration.md (committed)",
                                "docs/configuration.md (from the schema)", lineterm="", n=1)
    print(f"docs/configuration.md is out of date with {SCHEMA.relative_to(ROOT)}; run `{COMMAND}`.",
          *list(diff)[:60], sep="\n")
    return 1


if __name__ == "__main__":
    sys.exit(main())
