"""Prefect entry point of the tokenize step (BPE training or a given tokenizer, then shards)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect.states import State

from model.files import sha256_file
from model.tokenizer import TOKENIZER_CONFIG
from tasks.common.spark import spark_session
from tasks.common.step import StepResult, run_step
from tasks.common.task import published, step_task
from tasks.config import LmforgeConfig
from tasks.tokenize.bpe import train_tokenizer, use_tokenizer_file
from tasks.tokenize.shards import write_shards


def split_rows(stats: dict[str, Any]) -> list[dict[str, Any]]:
    """Documents and tokens per split (train, val), then the total."""
    rows = [
        {"split": name, "documents": split.get("docs", 0), "tokens": split.get("tokens", 0)}
        for name, split in stats.get("splits", {}).items()
    ]
    rows.append(
        {"split": "all", "documents": stats.get("docs", 0), "tokens": stats.get("tokens", 0)}
    )
    return rows


@step_task("tokenize", hours=12)
def tokenize_step(config: LmforgeConfig, curated: StepResult) -> State:
    """Train (or take `tokenize.tokenizer_file`) a tokenizer, write token shards to
    `<work_dir>/tokenize/`."""
    spark = spark_session(config.spark)
    docs_uri = f"{curated.path}/docs"
    given = config.tokenize.tokenizer_file
    settings: dict[str, Any] = {"tokenize": config.to_dict()["tokenize"]}
    if given and Path(given).is_file():
        # the file's content, not only its path, decides whether the step must run again
        settings["tokenizer_file_sha256"] = sha256_file(given)
        side = Path(given).with_name(TOKENIZER_CONFIG)  # an imported model's end-of-text token
        if side.is_file():
            settings["tokenizer_config_sha256"] = sha256_file(side)

    def build(out: Path) -> dict[str, Any]:
        saved = out / "tokenizer.json"
        if given:
            tokenizer = use_tokenizer_file(given, saved)
        else:
            tokenizer = train_tokenizer(spark, docs_uri, config.tokenize, saved)
        shards = write_shards(spark, docs_uri, saved, config.tokenize, out)
        return {"tokenizer": tokenizer, **shards}

    result = run_step(
        config.run.work_dir,
        "tokenize",
        settings,
        [curated],
        [__name__],
        build,
    )
    stats = result.stats
    numbers = {
        "documents": stats.get("docs", 0),
        "tokens": stats.get("tokens", 0),
        "shards": stats.get("shards", 0),
        "vocabulary size": stats.get("vocab_size", 0),
        "token dtype": stats.get("dtype", ""),
        "tokenizer": "given file" if given else "trained here",
        "seconds": stats.get("seconds", 0.0),
    }
    return published(result, "Tokenize", split_rows(stats), numbers)
