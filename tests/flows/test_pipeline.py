"""End to end at tiny size: the real pipeline flow on a real Prefect server, Spark, the
`deepspeed` launcher and MLflow; then a re-run that must skip every finished step."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from tokenizers import Tokenizer

from flows.pipeline import pipeline
from model.token_format import read_documents

pytestmark = pytest.mark.e2e

TINY = [
    # depth 1: the front page and the module pages it links (deeper links are mostly 404s)
    "crawl.site_modules=30",
    "crawl.max_pages=40",
    "crawl.max_depth=1",
    "tokenize.vocab_size=512",
    "tokenize.val_fraction=0.3",
    "model.n_layer=2",
    "model.n_head=2",
    "model.n_embd=64",
    "model.block_size=64",
    "train.steps=30",
    "train.micro_batch=8",
    "train.log_every=5",
    "train.eval_every=15",
    "train.eval_batches=2",
    "train.warmup_steps=5",
    "evaluate.max_batches=4",
    "evaluate.max_new_tokens=12",
    "tracking.model_name=tiny-e2e",
    # pydoc pages, not prose: the demo's curate filters (configs/demo.toml says why)
    'curate.filters=["length", "links", "gopher_quality", "fineweb", "toxicity", "pii"]',
]


@pytest.fixture(scope="module")
def tiny_run(prefect_api, spark, tmp_path_factory):
    work_dir = tmp_path_factory.mktemp("e2e")
    overrides = [*TINY, f"run.work_dir={work_dir}"]
    first = pipeline(config_path=None, overrides=overrides)
    return work_dir, overrides, first


def test_every_step_ran_and_published_its_output(tiny_run):
    _, _, summary = tiny_run
    assert list(summary["steps"]) == [
        "crawl",
        "extract",
        "curate",
        "tokenize",
        "train",
        "evaluate",
        "register",
    ]
    for step in summary["steps"].values():
        assert not step["skipped"]
        assert (Path(step["path"]) / "_SUCCESS").is_file()
        assert json.loads((Path(step["path"]) / "stats.json").read_text())
    assert summary["pages_fetched"] == 31  # the front page + 30 module pages
    assert 0 < summary["documents_kept"] <= summary["documents_extracted"]


def test_shards_decode_back_to_the_curated_text(tiny_run):
    _, _, summary = tiny_run
    curated = pq.read_table(Path(summary["steps"]["curate"]["path"]) / "docs").to_pydict()
    token_dir = Path(summary["steps"]["tokenize"]["path"])
    tokenizer = Tokenizer.from_file(str(token_dir / "tokenizer.json"))
    eot = tokenizer.token_to_id("<|endoftext|>")
    decoded = []
    for shard in sorted(token_dir.glob("*.bin")):
        for doc in read_documents(shard):  # each without its end-of-text separator
            assert eot not in doc
            decoded.append(tokenizer.decode(doc, skip_special_tokens=False))
    assert sorted(decoded) == sorted(curated["text"])


def test_training_loss_goes_down_and_model_is_exported(tiny_run):
    _, _, summary = tiny_run
    train_dir = Path(summary["steps"]["train"]["path"])
    records = [json.loads(line) for line in (train_dir / "metrics.jsonl").open()]
    losses = [r["train_loss"] for r in records if "train_loss" in r]
    assert len(losses) >= 3
    assert losses[-1] < losses[0] - 0.5
    for name in ("model.safetensors", "config.json", "tokenizer.json"):
        assert (train_dir / "model" / name).is_file()
    assert summary["val_perplexity"] > 1 and len(summary["samples"]) == 3


def test_run_and_model_version_exist_in_mlflow(tiny_run):
    from mlflow import MlflowClient

    work_dir, _, summary = tiny_run
    client = MlflowClient(summary["tracking_uri"])
    assert summary["tracking_uri"] == f"sqlite:///{work_dir / 'mlflow.db'}"
    run = client.get_run(summary["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert {"train_loss", "lr", "val_loss", "eval_perplexity"} <= set(run.data.metrics)
    assert run.data.params["model.n_layer"] == "2"
    assert run.data.tags["lmforge.fingerprint.tokenize"]
    version = client.get_model_version("tiny-e2e", str(summary["model_version"]))
    assert version.run_id == summary["mlflow_run_id"]
    assert version.tags["lmforge.manifest_sha256"] == run.data.tags["lmforge.manifest_sha256"]


def test_rerun_skips_every_finished_step(tiny_run):
    _, overrides, first = tiny_run
    second = pipeline(config_path=None, overrides=overrides)
    assert all(step["skipped"] for step in second["steps"].values())
    assert second["model_version"] == first["model_version"]
    assert second["steps"] == {k: {**v, "skipped": True} for k, v in first["steps"].items()}
