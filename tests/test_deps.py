import re
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

import faithdpo
from faithdpo.deps import import_graph, module_closure
from workflow_helpers import DEMO, REPO, job_inputs, rule_blocks, snakemake

PACKAGE = Path(faithdpo.__file__).parent


def names(paths):
    return sorted(Path(p).stem for p in paths)


def test_closure_follows_imports_lazy_ones_included():
    # training imports launch, trackers and io at the top, models and gpu_memory inside
    # functions; models imports io. Not cost: a change to how the reports present cost must not
    # retrain. train_dpo adds train_worker (each launched process), which imports logs. chat:
    # the end-of-turn token of a chat run's pairs (prompt.chat).
    assert names(module_closure(PACKAGE, ["training"])) == ["chat", "gpu_memory", "io", "launch", "models",
                                                            "trackers", "training"]
    assert names(module_closure(PACKAGE, ["training", "train_worker"])) == [
        "chat", "gpu_memory", "io", "launch", "logs", "models", "trackers", "train_worker", "training"]
    # real model loading, apart from the demo's tiny-model builder
    assert names(module_closure(PACKAGE, ["models"])) == ["io", "models"]
    assert names(module_closure(PACKAGE, ["tiny_model"])) == ["io", "tiny_model"]
    assert names(module_closure(PACKAGE, ["report"])) == ["agreement", "cost", "diagnostics", "figures", "io",
                                                          "quality", "report", "stats", "verdicts"]
    # the comparison re-decides the verdicts, and never needs the report's figures
    assert names(module_closure(PACKAGE, ["comparison"])) == ["comparison", "cost", "io", "quality", "stats",
                                                              "verdicts"]


def test_the_checker_and_regex_ner_never_rerun_each_other():
    # editing regex + NER scoring reruns no checker step, and the reverse
    assert "scoring" not in names(module_closure(PACKAGE, ["checker"]))
    assert "checker" not in names(module_closure(PACKAGE, ["scoring"]))


def test_no_import_cycle_between_package_modules():
    """Each module can be read after the ones it imports: no two modules import each other, not
    even through others (lazy imports count, as they do for the rules' inputs)."""
    try:
        order = list(TopologicalSorter(import_graph(PACKAGE)).static_order())
    except CycleError as error:
        pytest.fail(f"import cycle: {' -> '.join(error.args[1])}")
    assert {"training", "launch", "train_worker"} <= set(order)


def rule_modules() -> dict[str, list[str]]:
    """The package modules each rule declares as inputs: the closure of the entry modules it
    names in ``package_modules(...)`` (workflow/rules/*.smk), whatever the config."""
    modules = {}
    for rule, block in rule_blocks().items():
        call = re.search(r"package_modules\(([^)]*)\)", block)
        if call:
            modules[rule] = names(module_closure(PACKAGE, re.findall(r'"(\w+)"', call.group(1))))
    return modules


# The GPU steps and the shard and adapter merges: the costly steps of a real run.
GPU_AND_MERGE = {"generate_candidates", "generate_eval", "merge_candidates", "merge_eval", "train_dpo",
                 "merge_adapter", "check_eval", "check_candidates"}


def test_each_module_is_an_input_of_the_rules_that_run_it_alone():
    """The demo's builders are inputs of their own rules only; the command line's modules and the
    parse-time ones of none. So editing the tiny model's builder reruns no step of a real run."""
    modules = rule_modules()
    assert GPU_AND_MERGE <= modules.keys()
    assert {rule for rule, mods in modules.items() if "tiny_model" in mods} == {"build_tiny_model"}
    assert {rule for rule, mods in modules.items() if "tiny_checker" in mods} == {"build_tiny_checker"}
    assert {rule for rule, mods in modules.items() if "corpus" in mods} == {"synthesize_corpus", "build_tiny_checker"}
    assert not any({"tiny_model", "tiny_checker", "corpus"} & set(modules[rule]) for rule in GPU_AND_MERGE)
    declared = set().union(*modules.values())
    # tiny_chat writes the committed demo/tiny-qwen2-chat, run by hand (python -m faithdpo.tiny_chat)
    assert {path.stem for path in PACKAGE.glob("*.py")} - declared == {
        "__init__", "cli", "label_agreement", "config_check", "deps", "tiny_chat"}


# Modules a script may import without declaring them: logs only sets up the job's log file, which
# no output depends on. The downloads declare no module: a download reruns when its source does.
UNDECLARED = {"logs"}
DOWNLOADS = {"download_dataset", "download_model", "download_checker"}


def test_each_rule_declares_every_module_its_script_imports():
    modules, scripts = rule_modules(), {}
    for rule, block in rule_blocks().items():
        script = re.search(r'script:\s*"([^"]+)"', block)
        if script and rule not in DOWNLOADS:
            scripts[rule] = REPO / "workflow" / "rules" / script.group(1)
    assert {"generate_candidates", "check_eval", "train_dpo"} <= scripts.keys()
    for rule, script in scripts.items():
        imported = set(re.findall(r"^from faithdpo\.(\w+) import", script.read_text(), flags=re.M))
        assert imported - UNDECLARED <= set(modules.get(rule, ())), (rule, imported - set(modules.get(rule, ())))


def test_the_cli_label_agreement_is_no_input_of_scoring():
    assert "label_agreement" not in names(module_closure(PACKAGE, ["scoring"]))
    assert "label_agreement" in names(module_closure(PACKAGE, ["cli"]))


TINY_MODEL = "faithdpo/tiny_model.py"


@pytest.mark.slow  # Snakemake dry runs
@pytest.mark.parametrize("config", [[], DEMO, [*DEMO, "--config", "model={source: tiny}"]],
                         ids=["real", "demo", "demo-tiny-rebuilt"])
def test_no_generation_or_merge_job_declares_the_tiny_model_module(config):
    """What each job of the real config and of the demo declares, as Snakemake plans it (the jobs
    up to the pairs checkpoint; rule_modules covers training and the adapter merge): the tiny
    model's module is an input of build_tiny_model alone, where the demo rebuilds it."""
    inputs = job_inputs(snakemake(REPO, "-n", "--forceall", *config).stdout)
    assert {job.split("[")[0] for job in inputs} >= {"generate_candidates", "generate_eval", "merge_candidates",
                                                    "merge_eval", "check_eval"}
    declaring = {job for job, files in inputs.items() if TINY_MODEL in files}
    assert declaring == ({"build_tiny_model"} if "--config" in config else set())
    assert all("faithdpo/models.py" in inputs[job] for job in inputs if job.startswith("generate_"))


def test_closure_of_an_unknown_module_fails():
    with pytest.raises(FileNotFoundError, match="nosuch"):
        module_closure(PACKAGE, ["nosuch"])


def test_closure_sees_a_new_import(tmp_path):
    (tmp_path / "a.py").write_text("def f():\n    from faithdpo.b import g\n")
    (tmp_path / "b.py").write_text("import faithdpo.c\n")
    (tmp_path / "c.py").write_text("x = 1\n")
    assert names(module_closure(tmp_path, ["a"])) == ["a", "b", "c"]
