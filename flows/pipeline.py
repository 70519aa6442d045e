"""The `pipeline` flow: every step of lmforge, in order, each a Prefect task."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from tasks.config import LmforgeConfig, load_config
from tasks.crawl.task import crawl_step
from tasks.curate.task import curate_step
from tasks.evaluate.task import evaluate_step
from tasks.extract.task import extract_step
from tasks.register.task import register_step
from tasks.tokenize.task import tokenize_step
from tasks.train.base import start_from_base
from tasks.train.task import train_step


def summarize(config: LmforgeConfig, results: dict[str, Any]) -> dict[str, Any]:
    """The numbers a person wants after a run, plus where each step's output is."""
    evaluated, registered = results["evaluate"].stats, results["register"].stats
    tokens = results["tokenize"].stats
    return {
        "pages_fetched": results["crawl"].stats.get("pages_fetched"),
        "documents_extracted": results["extract"].stats.get("kept"),
        "documents_kept": results["curate"].stats.get("kept"),
        "tokens_train": tokens["splits"].get("train", {}).get("tokens", 0),
        "tokens_val": tokens["splits"].get("val", {}).get("tokens", 0),
        "train_final_loss": results["train"].stats.get("final_loss"),
        "val_loss": evaluated.get("val_loss"),
        "val_perplexity": evaluated.get("perplexity"),
        "samples": evaluated.get("samples"),
        "model_name": registered.get("name"),
        "model_version": registered.get("version"),
        "mlflow_run_id": registered.get("run_id"),
        "tracking_uri": config.mlflow_uri(),
        "steps": {name: {"path": r.path, "skipped": r.skipped} for name, r in results.items()},
    }


@flow(name="pipeline", log_prints=True)
def pipeline(
    config_path: str | None = "configs/demo.toml", overrides: list[str] | None = None
) -> dict:
    """crawl → extract → curate → tokenize → train → evaluate → register."""
    config = load_config(config_path, overrides)
    logger = get_run_logger()
    results: dict[str, Any] = {}
    base = start_from_base(config)  # train.init_from: its shape and tokenizer, "" = none
    if base:
        logger.info("training from %s (%s)", config.train.init_from, base)
    results["crawl"] = crawl_step(config).result()
    results["extract"] = extract_step(config, results["crawl"]).result()
    results["curate"] = curate_step(config, results["extract"]).result()
    results["tokenize"] = tokenize_step(config, results["curate"]).result()
    upstream = list(results.values())
    results["train"] = train_step(config, results["tokenize"], upstream, base).result()
    results["evaluate"] = evaluate_step(config, results["train"], results["tokenize"]).result()
    results["register"] = register_step(config, results["train"], results["evaluate"]).result()
    for name, result in results.items():
        logger.info(
            "%s: %s %s", name, "skipped (complete)" if result.skipped else "ran", result.path
        )
    return summarize(config, results)
