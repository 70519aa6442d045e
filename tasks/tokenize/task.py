"""Prefect entry point of the tokenize step (BPE training, then sharded token files)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.common.spark import spark_session
from tasks.common.step import StepResult, run_step
from tasks.config import LmforgeConfig
from tasks.tokenize.bpe import train_tokenizer
from tasks.tokenize.shards import write_shards


@task(name="tokenize", cache_policy=NO_CACHE)
def tokenize_step(config: LmforgeConfig, curated: StepResult) -> StepResult:
    """Train the tokenizer on the curated text and write token shards to `<work_dir>/tokenize/`."""
    spark = spark_session(config.spark)
    docs_uri = f"{curated.path}/docs"

    def build(out: Path) -> dict[str, Any]:
        tokenizer = train_tokenizer(spark, docs_uri, config.tokenize, out / "tokenizer.json")
        shards = write_shards(spark, docs_uri, out / "tokenizer.json", config.tokenize, out)
        return {"tokenizer": tokenizer, **shards}

    return run_step(
        config.run.work_dir,
        "tokenize",
        {"tokenize": config.to_dict()["tokenize"]},
        [curated],
        ["tasks/tokenize", "model/token_format.py"],
        build,
    )
