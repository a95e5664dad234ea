"""Test probe, on PYTHONPATH only in tests/test_workflow.py's run of the test config: records
which Snakemake job imports torch, transformers, trl or peft, to the file named by
FAITHDPO_IMPORT_PROBE ("rule<TAB>module" per line). Python imports ``sitecustomize`` at start-up."""

import os
import sys

HEAVY = {"torch", "transformers", "trl", "peft"}
RECORD = os.environ.get("FAITHDPO_IMPORT_PROBE")


class _Probe:
    """A meta path finder that finds nothing: it only notes who asked for a heavy package."""

    def find_spec(self, name, path=None, target=None):
        if name in HEAVY:
            job = getattr(sys.modules.get("__main__"), "snakemake", None)
            who = getattr(job, "rule", None) or os.path.basename(sys.argv[0] or "python")
            with open(RECORD, "a", encoding="utf-8") as record:
                record.write(f"{who}\t{name}\n")
        return None


if RECORD:
    sys.meta_path.insert(0, _Probe())
