"""The `pipeline` flow: every step of lmforge, in order, each a Prefect task."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from flows.outputs import STEPS
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
    """The numbers a person wants after a run, plus where each step's output is; a step that
    did not run (`until`) leaves its numbers None."""
    stats = {name: results[name].stats if name in results else {} for name in STEPS}
    splits = stats["tokenize"].get("splits", {})
    return {
        "pages_fetched": stats["crawl"].get("pages_fetched"),
        "documents_extracted": stats["extract"].get("kept"),
        "documents_kept": stats["curate"].get("kept"),
        "tokens_train": splits.get("train", {}).get("tokens", 0),
        "tokens_val": splits.get("val", {}).get("tokens", 0),
        "train_final_loss": stats["train"].get("final_loss"),
        "val_loss": stats["evaluate"].get("val_loss"),
        "val_perplexity": stats["evaluate"].get("perplexity"),
        "samples": stats["evaluate"].get("samples", []),
        "model_name": stats["register"].get("name"),
        "model_version": stats["register"].get("version"),
        "mlflow_run_id": stats["register"].get("run_id"),
        "tracking_uri": config.mlflow_uri(),
        "steps": {name: {"path": r.path, "skipped": r.skipped} for name, r in results.items()},
    }


@flow(name="pipeline", log_prints=True)
def pipeline(
    config_path: str | None = "configs/demo.toml",
    overrides: list[str] | None = None,
    until: str = "register",
) -> dict:
    """crawl → extract → curate → tokenize → train → evaluate → register, stopping after the
    step `until` names (e.g. "tokenize": the data steps only)."""
    if until not in STEPS:
        raise ValueError(f"pipeline: until={until!r} is not a step; use one of {', '.join(STEPS)}")
    config = load_config(config_path, overrides)
    logger = get_run_logger()
    results: dict[str, Any] = {}
    wanted = STEPS[: STEPS.index(until) + 1]
    base = start_from_base(config) if "train" in wanted else None
    if base:
        logger.info("training from %s (%s)", config.train.init_from, base)
    results["crawl"] = crawl_step(config).result()
    if "extract" in wanted:
        results["extract"] = extract_step(config, results["crawl"]).result()
    if "curate" in wanted:
        results["curate"] = curate_step(config, results["extract"]).result()
    if "tokenize" in wanted:
        results["tokenize"] = tokenize_step(config, results["curate"]).result()
    upstream = list(results.values())
    if "train" in wanted:
        results["train"] = train_step(config, results["tokenize"], upstream, base).result()
    if "evaluate" in wanted:
        tokens = results["tokenize"]
        results["evaluate"] = evaluate_step(config, results["train"], tokens).result()
    if "register" in wanted:
        trained, evaluated = results["train"], results["evaluate"]
        results["register"] = register_step(config, trained, evaluated).result()
    for name, result in results.items():
        logger.info(
            "%s: %s %s", name, "skipped (complete)" if result.skipped else "ran", result.path
        )
    return summarize(config, results)
