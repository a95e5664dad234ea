"""The config schema is the one source of configuration: every key is described there,
docs/configuration.md is generated from it, and the config dataclasses default to its values."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import pytest
import yaml

from faithdpo.checker import Checker
from faithdpo.generation import GenerationConfig
from faithdpo.scoring import ScoringConfig
from faithdpo.training import TrainingConfig

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("config_reference", ROOT / "docs" / "config_reference.py")
reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reference)

SCHEMA = yaml.safe_load(reference.SCHEMA.read_text())
KEYS = dict(reference.schema_keys(SCHEMA))


def test_the_committed_page_is_generated_from_the_schema():
    page = reference.PAGE.read_text() if reference.PAGE.exists() else ""
    assert page == reference.render(SCHEMA), (
        f"docs/configuration.md is out of date with the schema: run `{reference.COMMAND}` and commit the page"
    )


def test_check_mode_names_the_command_when_the_page_is_stale(tmp_path, monkeypatch, capsys):
    page = tmp_path / "configuration.md"
    monkeypatch.setattr(reference, "PAGE", page)
    page.write_text(reference.render(SCHEMA))
    assert reference.main(["--check"]) == 0
    page.write_text(reference.render(SCHEMA).replace("Seed of the data sample", "Seed of the sample"))
    assert reference.main(["--check"]) == 1
    out = capsys.readouterr().out
    assert reference.COMMAND in out and "-  Seed of the sample" in out


def test_every_key_at_every_level_has_a_description():
    assert len(KEYS) > 100  # the walk reaches nested keys and the experiments' entries
    assert "scoring.checker.tiny.epochs" in KEYS and "experiments.<name>.training" in KEYS
    missing = [key for key, node in KEYS.items() if not str(node.get("description", "")).strip()]
    assert not missing, f"schema keys without a description: {missing}"


# Each config dataclass whose fields are config keys. A field is the schema key
# `{prefix}.{field}` unless `renamed` says otherwise; `not_keys` are fields that are no
# config key, and `schema_only` (a key, or an object and all its keys) are keys under the
# prefix that no field holds, each with the reason.
MIRRORS = {
    "TrainingConfig": dict(
        cls=TrainingConfig, prefix="training",
        renamed={"seed": "seed", "trust_remote_code": "model.trust_remote_code"},
        not_keys={},
        schema_only={"seeds": "one train_dpo job per seed, which gets it as `seed`"},
    ),
    "GenerationConfig": dict(
        cls=GenerationConfig, prefix="generation",
        renamed={"seed": "seed", "trust_remote_code": "model.trust_remote_code", "chat": "prompt.chat"},
        not_keys={
            "num_return_sequences": "its default is evaluation's one greedy summary a prompt; candidate "
                                    "generation gets generation.candidates.num_return_sequences",
            "do_sample": "greedy unless the workflow asks for candidates: no config key",
            "temperature": "sampling only: the workflow passes generation.candidates.* to candidate generation",
            "top_p": "sampling only: the workflow passes generation.candidates.* to candidate generation",
            "top_k": "sampling only: the workflow passes generation.candidates.* to candidate generation",
            "dtype": "None: the device's precision, for candidates; evaluation gets generation.eval_dtype",
        },
        schema_only={
            "candidates": "passed to candidate generation as num_return_sequences, temperature, top_p, top_k",
            "eval_batch_size": "passed to evaluation as batch_size",
            "eval_dtype": "passed to evaluation as dtype",
            "shards": "a Snakemake scatter: each job gets its shard, not the count",
        },
    ),
    "ScoringConfig": dict(
        cls=ScoringConfig, prefix="scoring", renamed={}, not_keys={},
        schema_only={"checker": "the checker's own settings (faithdpo.checker), apart so that changing them "
                                "reruns no regex + NER step"},
    ),
    "Checker": dict(
        cls=Checker, prefix="scoring.checker", renamed={},
        not_keys={"tokenizer": "the loaded tokenizer", "model": "the loaded model",
                  "max_length": "the loaded model's window, read from its config"},
        schema_only=None,  # a loaded checker: the rules read its other keys
    ),
}


def field_default(field: dataclasses.Field):
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def plain(value):
    """Tuples as the lists YAML gives."""
    return [plain(v) for v in value] if isinstance(value, (list, tuple)) else value


@pytest.mark.parametrize("name", MIRRORS)
def test_dataclass_defaults_are_the_schema_defaults(name):
    mirror = MIRRORS[name]
    fields = {f.name: f for f in dataclasses.fields(mirror["cls"])}
    assert set(mirror["not_keys"]) <= set(fields), "not_keys names a field the dataclass lacks"
    differ = {}
    for field_name, field in fields.items():
        if field_name in mirror["not_keys"]:
            continue
        key = mirror["renamed"].get(field_name, f"{mirror['prefix']}.{field_name}")
        assert key in KEYS, f"{name}.{field_name}: no schema key {key}; map it in `renamed` or list it in `not_keys`"
        if plain(field_default(field)) != plain(KEYS[key].get("default")):
            differ[field_name] = (field_default(field), KEYS[key].get("default"))
    assert not differ, f"{name} defaults differ from the schema's (dataclass, schema): {differ}"


@pytest.mark.parametrize("name", [n for n, m in MIRRORS.items() if m["schema_only"] is not None])
def test_every_schema_key_has_its_dataclass_field(name):
    mirror = MIRRORS[name]
    prefix = mirror["prefix"] + "."
    held = {mirror["renamed"].get(f.name, prefix + f.name) for f in dataclasses.fields(mirror["cls"])}
    apart = tuple(prefix + key for key in mirror["schema_only"])
    orphans = [key for key, node in KEYS.items()
               if key.startswith(prefix) and "properties" not in node and key not in held
               and not any(key == a or key.startswith(a + ".") for a in apart)]
    assert not orphans, f"schema keys that {name} has no field for: {orphans}; add one or list it in schema_only"
