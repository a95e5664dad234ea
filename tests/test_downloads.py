"""The real run's download code, exercised offline: a local dataset path, and a hub that cannot be reached."""

import os
import subprocess
import sys

import pandas as pd
import pytest

from faithdpo.corpus import generate_corpus, synthesize_split
from faithdpo.data import download_dataset


def test_download_dataset_from_a_local_path(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    synthesize_split(str(tmp_path / "src" / "train.parquet"), "train", 5, seed=0)
    synthesize_split(str(tmp_path / "src" / "validation.parquet"), "validation", 4, seed=0)
    download_dataset(str(tmp_path / "out"), str(tmp_path / "src"), None, None, ["train", "validation"])
    got = pd.read_parquet(tmp_path / "out" / "validation.parquet")
    pd.testing.assert_frame_equal(got[["id", "article", "highlights"]], generate_corpus(4, "validation", seed=0))


@pytest.mark.parametrize("layout", ["{split}/0000.parquet", "xsum-{split}.parquet"])
def test_download_dataset_reads_a_parquet_export_by_the_datasets_split_names(tmp_path, monkeypatch, layout):
    """The layouts of a hub Parquet export (revision refs/convert/parquet: default/{split}/0000.parquet
    now, default/xsum-{split}.parquet before), here as a local folder, which datasets resolves by
    the same split patterns: the split named test is fetched as test.parquet, in its own columns."""
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    for split, n in (("train", 3), ("validation", 2), ("test", 4)):
        path = tmp_path / "export" / "default" / layout.format(split=split)
        path.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"document": [f"{split} {i}" for i in range(n)], "summary": "s", "id": [str(i) for i in range(n)]}
                     ).to_parquet(path)
    download_dataset(str(tmp_path / "out"), str(tmp_path / "export"), None, None, ["test"])
    got = pd.read_parquet(tmp_path / "out" / "test.parquet")
    assert list(got.columns) == ["document", "summary", "id"]
    assert list(got["document"]) == [f"test {i}" for i in range(4)]
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["test.parquet"]


def run_offline(code: str, tmp_path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)


def test_unreachable_hub_dataset_says_what_to_do(tmp_path):
    done = run_offline(
        "from faithdpo.data import download_dataset\n"
        "download_dataset('out', 'abisee/cnn_dailymail', '3.0.0', None, ['train'])", tmp_path)
    assert done.returncode != 0
    assert "could not load dataset 'abisee/cnn_dailymail' (config '3.0.0', split 'train') from the hub" in done.stderr
    assert "place train.parquet under out" in done.stderr
    assert not (tmp_path / "out" / "train.parquet").exists()


def test_unreachable_hub_model_leaves_no_directory(tmp_path):
    done = run_offline(
        "from faithdpo.models import download_model\n"
        "download_model('models/qwen', 'Qwen/Qwen2.5-1.5B', None)", tmp_path)
    assert done.returncode != 0
    assert "could not download model 'Qwen/Qwen2.5-1.5B' (revision None) from the hub" in done.stderr
    assert not (tmp_path / "models" / "qwen").exists()
    assert list((tmp_path / "models").iterdir()) == []  # no half-downloaded temporary left either


def test_hub_token_is_never_written_to_logs_or_outputs(tmp_path):
    secret = "hf_faithdpoTestSecret0123456789"
    code = (
        "from faithdpo.logs import setup_logging\n"
        "setup_logging('job.log')\n"
        "from faithdpo.data import download_dataset\n"
        "from faithdpo.models import download_model\n"
        "for fetch in (lambda: download_dataset('out', 'abisee/cnn_dailymail', '3.0.0', None, ['train']),\n"
        "              lambda: download_model('models/qwen', 'Qwen/Qwen2.5-1.5B', 'main')):\n"
        "    try:\n"
        "        fetch()\n"
        "    except RuntimeError as exc:\n"
        "        import logging; logging.getLogger('faithdpo').error('%s', exc)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "HF_TOKEN": secret}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    log = (tmp_path / "job.log").read_text()
    assert "could not load dataset" in log and "could not download model" in log  # the errors were logged
    assert secret not in log + done.stdout + done.stderr
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.stat().st_size < 10_000_000:
            assert secret.encode() not in path.read_bytes(), path
